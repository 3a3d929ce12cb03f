"""The paper's six downstream tasks as SeqIO tasks, with the paper's metrics.

* `cnndm_10k`, `mtop`, `webqsp`, `retrosynthesis`, `code_translation`: the authors' layout,
  `<DATA_DIR>/finetuning_data/<task>/{train,valid,test}.txt` (splits train, validation, test),
  one `input<TAB>target` per line. DATA_DIR is `natural.data_dir.path` in gin (local or gs://),
  or the environment variable SYNTHETIC_PRETRAINING_DATA_DIR.
* `squad_v010_allanswers`: TFDS `squad/v1.1:3.0.0` prepared in the TFDS data directory, with T5's
  preprocessing (`question: <q> context: <c>` -> the first answer; all answers are scored).

Nothing is read at import. Missing data is an error when a dataset is built, naming the path
expected and where the data comes from; TFDS is never asked to download.
"""
import os
from typing import Optional

import gin
import seqio
import tensorflow as tf

from synthetic_pretraining import errors
from synthetic_pretraining.data import metrics
from synthetic_pretraining import paths
from synthetic_pretraining.synthetic import file_source
from synthetic_pretraining.synthetic import registry

DATA_DIR_ENV = "SYNTHETIC_PRETRAINING_DATA_DIR"
SPLIT_FILES = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
TSV_TASKS = {"cnndm_10k": metrics.rouge, "mtop": metrics.exact_match_f1,
             "webqsp": metrics.exact_match_f1, "retrosynthesis": metrics.exact_match_f1,
             "code_translation": metrics.exact_match_f1}
SQUAD = "squad_v010_allanswers"
SQUAD_TFDS = ("squad", "v1.1", "3.0.0")
TASK_ORIGINS = {
    "cnndm_10k": "CNN/DailyMail article<TAB>summary, lower-cased, 10K training examples",
    "mtop": "MTOP utterance<TAB>logical form, UnifiedSKG's text-to-text version",
    "webqsp": "WebQuestionsSP question<TAB>logical form, UnifiedSKG's text-to-text version",
    "retrosynthesis": "USPTO-50K single-step retrosynthesis, product SMILES<TAB>reactant SMILES",
    "code_translation": "CodeXGLUE code_trans, Java<TAB>C#",
}
DATA_ORIGIN = ("the files the paper's authors prepared (see their repository's "
               "copy_all_data_to_gcs.py); the format is one `input<TAB>target` per line")


def _data_dir(path: Optional[str] = None) -> str:
  """DATA_DIR of the downstream tasks.

  gin/experiments/finetune/*.gin bind it to the DATA_DIR macro (`--gin.DATA_DIR="'gs://b/d'"`);
  with other configs, `--gin.natural.data_dir.path=...` after a gin file that imports this module
  (gin/experiments/finetune/data_dir.gin), or the environment variable.

  Args:
    path: a local directory or gs:// prefix; None falls back to $SYNTHETIC_PRETRAINING_DATA_DIR.

  Returns:
    The directory that holds finetuning_data/.

  Raises:
    FileNotFoundError: neither is set (raised only when a dataset is built).
  """
  path = path or os.environ.get(DATA_DIR_ENV)
  if not path:
    raise errors.MissingInputError(
        "The downstream tasks read <DATA_DIR>/finetuning_data/<task>/{train,valid,test}.txt, "
        f"{DATA_ORIGIN}. Set DATA_DIR: --gin.DATA_DIR=\"'/path/to/data'\" with "
        "gin/experiments/finetune/*.gin, --gin.natural.data_dir.path=\"'/path/to/data'\" (after "
        f"--gin_file=gin/experiments/finetune/data_dir.gin), or ${DATA_DIR_ENV}.")
  return path


try:
  data_dir = gin.configurable("data_dir", module="natural")(_data_dir)
except ValueError:
  # This file imported a second time (importlib.reload, or under another module name): gin
  # refuses a second configurable of the same name, and the first one behaves the same.
  data_dir = gin.get_configurable("natural.data_dir")


class DownstreamTsvSource(file_source.AuthorsFileSource):
  """`input<TAB>target` text files under DATA_DIR, located when a dataset is built."""

  def __init__(self, task: str):
    # Evaluation subsets (EVALUATOR_NUM_EXAMPLES) are drawn across the file, not its head.
    super().__init__({split: None for split in SPLIT_FILES}, text=True, eval_order="permuted")
    self.task = task

  def path(self, split: str) -> str:
    if split not in SPLIT_FILES:
      raise ValueError(f"Task {self.task!r} has splits {list(SPLIT_FILES)}, not {split!r}.")
    return paths.join(data_dir(), "finetuning_data", self.task, SPLIT_FILES[split])

  def list_shards(self, split: str):
    path = self.path(split)
    if not paths.exists(path):
      raise errors.MissingInputError(
          f"Task {self.task!r}, split {split!r}: {path} does not exist. It holds "
          f"{TASK_ORIGINS[self.task]}: {DATA_ORIGIN}. Put the files there or point DATA_DIR "
          "elsewhere (docs/finetuning.md).")
    return [path]


@seqio.map_over_dataset
def squad_inputs(example):
  """T5's SQuAD preprocessing; the answers stay for scoring."""
  inputs = tf.strings.join(["question:", example["question"], "context:", example["context"]],
                           separator=" ")
  answers = example["answers"]["text"]
  return {"inputs": inputs, "targets": answers[0], "answers": answers}


def squad_postprocess(output: str, example=None, is_target: bool = False):
  """Targets become all gold answers (decoded), predictions stay strings."""
  if is_target and example is not None and "answers" in example:
    return [a.decode("utf-8") if isinstance(a, bytes) else str(a) for a in example["answers"]]
  return output


def tfds_data_dir() -> str:
  """The TFDS data directory (TFDS_DATA_DIR, else ~/tensorflow_datasets)."""
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def squad_tfds_directory() -> str:
  """The prepared TFDS squad/v1.1:3.0.0; a one-line MissingInputError when it is not there."""
  directory = paths.join(tfds_data_dir(), *SQUAD_TFDS)
  if not paths.exists(paths.join(directory, "dataset_info.json")):
    raise errors.MissingInputError(
        f"Task {SQUAD!r} needs TFDS squad/v1.1:3.0.0 prepared in {directory} (set TFDS_DATA_DIR). "
        "Prepare it where the network is reachable: python -c \"import tensorflow_datasets as "
        "tfds; tfds.builder('squad/v1.1:3.0.0').download_and_prepare()\". Offline, use the "
        "shipped task 'squad_offline'.")
  return directory


class SquadTfdsSource(seqio.FunctionDataSource):
  """TFDS squad/v1.1:3.0.0, never downloaded; `check_split` lets a binary's pre-flight refuse a
  run before it creates MODEL_DIR when the dataset is not prepared."""

  def check_split(self, split: str) -> None:  # pylint: disable=unused-argument
    squad_tfds_directory()


def _squad_dataset(split: str, shuffle_files: bool, seed=None):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  builder = tfds.builder_from_directory(squad_tfds_directory())
  return builder.as_dataset(split=split, shuffle_files=shuffle_files,
                            read_config=tfds.ReadConfig(shuffle_seed=seed))


def register(vocabulary: seqio.Vocabulary) -> None:
  """Registers (or replaces) the downstream tasks for `vocabulary`."""
  features = registry.output_features(vocabulary)
  for name, metric in TSV_TASKS.items():
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name, source=DownstreamTsvSource(name),
        preprocessors=[registry.TOKENIZE, seqio.preprocessors.append_eos_after_trim],
        output_features=features, metric_fns=[metric])
  if SQUAD in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(SQUAD)
  seqio.TaskRegistry.add(
      SQUAD, source=SquadTfdsSource(_squad_dataset, splits=("train", "validation")),
      preprocessors=[squad_inputs, registry.TOKENIZE, seqio.preprocessors.append_eos_after_trim],
      postprocess_fn=squad_postprocess, output_features=features, metric_fns=[metrics.squad])


registry.follow_vocabulary(__name__, register)
