"""Tasks on data shipped with the package (data/), for CPU runs without any network.

* `squad_offline` (train, validation, test): SQuAD-format questions (data/squad_offline, see its
  README for origin and licence) with T5's SQuAD preprocessing and metrics, like
  `squad_v010_allanswers`: `question: <q> context: <c>` -> the first answer; EM and F1 over all
  answers.
* `squad_window` (the same splits and questions): each context cut to a window of W words
  (`squad_window.words`, default 16) that contains the first answer, the answer's offset inside
  the window drawn per question from `squad_window.seed`. Short enough for a CPU-sized model
  trained from random init to learn to find answers in a few thousand steps; EM is its headline
  metric (the whole window already scores high F1 and no EM).
* `natural_text`: the New York Times, Reddit and Amazon passages of data/natural_text, trained with T5
  span corruption (noise density 0.15, mean span 3): natural pre-training at CPU scale, sharing no
  passage with squad_offline. VALIDATION_PASSAGES passages chosen at random (a fixed seed, across
  the three registers) are its validation split.

Every reader of these tasks (our binaries, `seqio.get_dataset`, t5x) gets their records in a seeded
random order (`file_source.permuted`): training reads a fresh permutation each epoch from the
data seed, evaluation one fixed permutation, so neither a batch nor an evaluation subset follows
the files' order (sorted by article, grouped by register).
"""
import functools
import json
import os
import random
import re
from typing import Dict, List, Tuple

import gin
import numpy as np
import seqio
import tensorflow as tf

from synthetic_pretraining import errors
from synthetic_pretraining.data import metrics
from synthetic_pretraining import resources
from synthetic_pretraining.synthetic import file_source
from synthetic_pretraining.synthetic import registry
from synthetic_pretraining.synthetic import span_corruption
from synthetic_pretraining.tasks import natural

DATA = resources.path("data")
SQUAD_OFFLINE = "squad_offline"
SQUAD_WINDOW = "squad_window"
NATURAL_TEXT = "natural_text"
SQUAD_SPLITS = ("train", "validation", "test")
VALIDATION_PASSAGES = 100
VALIDATION_SEED = 0  # which natural_text passages are held out


def _read_lines(path: str):
  if not os.path.exists(path):
    raise errors.MissingInputError(f"{path} is missing: the offline data ships with the package "
                            "(scripts/make_offline_data.py derives it); reinstall it.")
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f if line.strip()]


@functools.lru_cache(maxsize=None)
def squad_questions(split: str) -> Tuple[dict, ...]:
  """The questions of a squad_offline split in file order: dicts with id, title, question,
  context and answers (the distinct answer texts)."""
  path = os.path.join(DATA, SQUAD_OFFLINE, f"{split}.jsonl")
  out = []
  for number, line in enumerate(_read_lines(path), 1):
    try:
      paragraph = json.loads(line)
      for qa in paragraph["qas"]:
        out.append({"id": qa["id"], "title": paragraph.get("title", ""),
                    "question": qa["question"], "context": paragraph["context"],
                    "answers": list(qa["answers"])})
    except (ValueError, KeyError) as e:
      raise ValueError(f"{path}: line {number} is not a SQuAD paragraph record ({e}).") from e
  return tuple(out)


def _squad_records(questions, shuffle: bool, seed) -> tf.data.Dataset:
  return file_source.permuted(
      {"id": [q["id"] for q in questions], "question": [q["question"] for q in questions],
       "context": [q["context"] for q in questions],
       "answers": {"text": tf.ragged.constant([q["answers"] for q in questions])}},
      len(questions), shuffle=shuffle, seed=seed)


def _squad_dataset(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  return _squad_records(squad_questions(split), shuffle_files, seed)


# squad_window ------------------------------------------------------------------------------------

def _squad_window(words: int = 16, seed: int = 0) -> Tuple[int, int]:
  """The window of `squad_window`: (words, seed).

  Args:
    words: W, the number of context words kept around the answer (an answer longer than W is
      kept whole); at least 1.
    seed: draws each question's answer offset inside its window (the same for every run and
      split reader, so all methods see the same windows).
  """
  if isinstance(words, bool) or not isinstance(words, int) or words < 1:
    from synthetic_pretraining import cli  # pylint: disable=import-outside-toplevel
    raise cli.UsageError(f"squad_window.words must be a positive integer, got {words!r}.")
  return words, int(seed)


try:
  squad_window = gin.configurable("squad_window", module="offline")(_squad_window)
except ValueError:  # imported a second time (see tasks/natural.py)
  squad_window = gin.get_configurable("offline.squad_window")


def answer_window(context: str, answer: str, words: int, rng: random.Random) -> Tuple[str, int]:
  """(window, offset): `words` whitespace-separated words of `context` around the first
  occurrence of `answer`, joined by single spaces, and the answer's first word's position in it.

  The window starts anywhere that keeps the whole answer inside it and stays inside the context
  (uniformly, from `rng`); a context of at most `words` words is kept whole, an answer of more
  than `words` words is the window alone.

  Raises:
    ValueError: the answer is not in the context.
  """
  start_char = context.find(answer)
  if start_char < 0 or not answer.strip():
    raise ValueError(f"answer {answer!r:.80} is not in its context")
  spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
  end_char = start_char + len(answer.rstrip())
  start_char += len(answer) - len(answer.lstrip())
  first = next(i for i, (_, end) in enumerate(spans) if end > start_char)
  last = max(i for i, (start, _) in enumerate(spans) if start < end_char)
  if len(spans) <= words:
    begin, size = 0, len(spans)
  elif last - first + 1 >= words:
    begin, size = first, last - first + 1
  else:
    begin = rng.randint(max(0, last - words + 1), min(first, len(spans) - words))
    size = words
  window = " ".join(context[s:e] for s, e in spans[begin:begin + size])
  return window, first - begin


def window_questions(split: str, words: int, seed: int) -> List[dict]:
  """squad_offline's questions of `split` with each context cut to its window (`answer_window`
  around the first answer, an offset drawn from `seed` and the question id) and the answers'
  whitespace collapsed; 'offset' is the answer's word position in the window."""
  out = []
  for q in squad_questions(split):
    answers = [" ".join(a.split()) for a in q["answers"]]
    try:
      window, offset = answer_window(q["context"], q["answers"][0], words,
                                     random.Random(f"{seed}:{q['id']}"))
    except ValueError as e:
      raise ValueError(f"squad_offline {split}, question {q['id']}: {e}.") from e
    out.append(dict(q, context=window, answers=answers, offset=offset))
  return out


def _squad_window_dataset(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  words, window_seed = squad_window()
  return _squad_records(window_questions(split, words, window_seed), shuffle_files, seed)


# natural_text ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def natural_passages() -> Dict[str, Tuple[str, ...]]:
  """{'train', 'validation'}: the natural_text passages of each split, in file order."""
  directory = os.path.join(DATA, NATURAL_TEXT)
  files = sorted(f for f in os.listdir(directory) if f.endswith(".txt")) if os.path.isdir(directory) else []
  if not files:
    raise errors.MissingInputError(f"No passages in {directory}: the offline data ships with the "
                            "package (scripts/make_offline_data.py derives it); reinstall it.")
  passages = [p for f in files for p in _read_lines(os.path.join(directory, f))]
  held_out = set(np.random.default_rng(VALIDATION_SEED).permutation(len(passages))
                 [:VALIDATION_PASSAGES].tolist())
  return {"train": tuple(p for i, p in enumerate(passages) if i not in held_out),
          "validation": tuple(p for i, p in enumerate(passages) if i in held_out)}


def _natural_text(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  chosen = natural_passages()[split]
  return file_source.permuted({"targets": list(chosen)}, len(chosen), shuffle=shuffle_files,
                              seed=seed)


def register(vocabulary: seqio.Vocabulary) -> None:
  """Registers (or replaces) squad_offline, squad_window and natural_text for `vocabulary`."""
  for name in (SQUAD_OFFLINE, SQUAD_WINDOW, NATURAL_TEXT):
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
  for name, function in ((SQUAD_OFFLINE, _squad_dataset), (SQUAD_WINDOW, _squad_window_dataset)):
    seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(function, splits=SQUAD_SPLITS),
        preprocessors=[natural.squad_inputs, registry.TOKENIZE,
                       seqio.preprocessors.append_eos_after_trim],
        postprocess_fn=natural.squad_postprocess,
        output_features=registry.output_features(vocabulary), metric_fns=[metrics.squad])
  seqio.TaskRegistry.add(
      NATURAL_TEXT, source=seqio.FunctionDataSource(_natural_text, splits=("train", "validation")),
      preprocessors=[registry.TOKENIZE, span_corruption.span_corruption,
                     seqio.preprocessors.append_eos_after_trim],
      output_features=registry.output_features(vocabulary), metric_fns=[])


registry.follow_vocabulary(__name__, register)
