"""Tasks on data shipped with the package (data/), for CPU runs without any network.

* `squad_offline` (train, validation, test): SQuAD-format questions (data/squad_offline, see its
  README for origin and licence) with T5's SQuAD preprocessing and metrics, like
  `squad_v010_allanswers`: `question: <q> context: <c>` -> the first answer; EM and F1 over all
  answers.
* `natural_text`: the New York Times, Reddit and Amazon passages of data/natural_text, trained with T5 span
  corruption (noise density 0.15, mean span 3): natural pre-training at CPU scale, sharing no
  passage with squad_offline. Its last VALIDATION_PASSAGES passages are the validation split.
"""
import json
import os

import seqio
import tensorflow as tf

from synthetic_pretraining import errors
from synthetic_pretraining.data import metrics
from synthetic_pretraining import resources
from synthetic_pretraining.synthetic import registry
from synthetic_pretraining.synthetic import span_corruption
from synthetic_pretraining.tasks import natural

DATA = resources.path("data")
SQUAD_OFFLINE = "squad_offline"
NATURAL_TEXT = "natural_text"
VALIDATION_PASSAGES = 100


def _read_lines(path: str):
  if not os.path.exists(path):
    raise errors.MissingInputError(f"{path} is missing: the offline data ships with the package "
                            "(scripts/make_offline_data.py derives it); reinstall it.")
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f if line.strip()]


def _squad_dataset(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  del shuffle_files, seed  # one small file per split; seqio shuffles examples
  path = os.path.join(DATA, SQUAD_OFFLINE, f"{split}.jsonl")
  ids, questions, contexts, answers = [], [], [], []
  for number, line in enumerate(_read_lines(path), 1):
    try:
      paragraph = json.loads(line)
      for qa in paragraph["qas"]:
        ids.append(qa["id"])
        questions.append(qa["question"])
        contexts.append(paragraph["context"])
        answers.append(qa["answers"])
    except (ValueError, KeyError) as e:
      raise ValueError(f"{path}: line {number} is not a SQuAD paragraph record ({e}).") from e
  return tf.data.Dataset.from_tensor_slices({
      "id": ids, "question": questions, "context": contexts,
      "answers": {"text": tf.ragged.constant(answers)}})


def _natural_text(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  del shuffle_files, seed
  directory = os.path.join(DATA, NATURAL_TEXT)
  files = sorted(f for f in os.listdir(directory) if f.endswith(".txt")) if os.path.isdir(directory) else []
  if not files:
    raise errors.MissingInputError(f"No passages in {directory}: the offline data ships with the "
                            "package (scripts/make_offline_data.py derives it); reinstall it.")
  passages = [p for f in files for p in _read_lines(os.path.join(directory, f))]
  chosen = passages[-VALIDATION_PASSAGES:] if split == "validation" else passages[:-VALIDATION_PASSAGES]
  return tf.data.Dataset.from_tensor_slices({"targets": chosen})


def register(vocabulary: seqio.Vocabulary) -> None:
  """Registers (or replaces) squad_offline and natural_text for `vocabulary`."""
  for name in (SQUAD_OFFLINE, NATURAL_TEXT):
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      SQUAD_OFFLINE,
      source=seqio.FunctionDataSource(_squad_dataset, splits=("train", "validation", "test")),
      preprocessors=[natural.squad_inputs, registry.TOKENIZE,
                     seqio.preprocessors.append_eos_after_trim],
      postprocess_fn=natural.squad_postprocess, output_features=registry.output_features(vocabulary),
      metric_fns=[metrics.squad])
  seqio.TaskRegistry.add(
      NATURAL_TEXT, source=seqio.FunctionDataSource(_natural_text, splits=("train", "validation")),
      preprocessors=[registry.TOKENIZE, span_corruption.span_corruption,
                     seqio.preprocessors.append_eos_after_trim],
      output_features=registry.output_features(vocabulary), metric_fns=[])


registry.follow_vocabulary(__name__, register)
