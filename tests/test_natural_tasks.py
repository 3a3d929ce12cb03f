"""Downstream tasks: the TSV layout under DATA_DIR, clear errors, metrics wiring."""
import importlib
import os

import gin
import numpy as np
import pytest
import seqio

import synthetic_pretraining.tasks  # noqa: F401
from synthetic_pretraining.training import inference
from synthetic_pretraining.data import metrics
from synthetic_pretraining import resources
from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.tasks import natural

pytestmark = pytest.mark.unit


def _write(root, task, **splits):
  directory = root / "finetuning_data" / task
  directory.mkdir(parents=True, exist_ok=True)
  for split, text in splits.items():
    (directory / natural.SPLIT_FILES[split]).write_text(text)


def test_all_six_tasks_are_registered_with_the_papers_metrics():
  for name, metric in natural.TSV_TASKS.items():
    assert seqio.get_mixture_or_task(name).metric_fns == [metric]
  assert seqio.get_mixture_or_task(natural.SQUAD).metric_fns == [metrics.squad]


def test_tsv_task_reads_the_authors_layout(tmp_path):
  _write(tmp_path, "mtop", train="play a song\t[IN:PLAY_MUSIC ]\nwake me at 7\t[IN:CREATE_ALARM ]\n",
         validation="x\ty\n", test="stop\t[IN:STOP ]\n")
  gin.bind_parameter("natural.data_dir.path", str(tmp_path))
  vocab = vocabularies.configured_vocabulary()
  ds = seqio.get_mixture_or_task("mtop").get_dataset(None, split="train", shuffle=False)
  got = [(vocab.decode(x["inputs"][:-1].tolist()), vocab.decode(x["targets"][:-1].tolist()),
          int(x["targets"][-1])) for x in ds.as_numpy_iterator()]
  # Unshuffled reads of a downstream task follow one fixed permutation (evaluation subsets span
  # the file), so compare as sets.
  assert sorted(got) == [("play a song", "[IN:PLAY_MUSIC ]", vocab.eos_id),
                         ("wake me at 7", "[IN:CREATE_ALARM ]", vocab.eos_id)]
  test = list(seqio.get_mixture_or_task("mtop").get_dataset(None, split="test", shuffle=False))
  assert len(test) == 1


def test_a_malformed_line_is_reported_by_file_and_line(tmp_path):
  _write(tmp_path, "webqsp", train="q1\ta1\nq2 without a tab\nq3\ta3\n")
  gin.bind_parameter("natural.data_dir.path", str(tmp_path))
  ds = seqio.get_mixture_or_task("webqsp").get_dataset(None, split="train", shuffle=False)
  with pytest.raises(Exception, match=r"webqsp/train\.txt: line.*2"):
    list(ds.as_numpy_iterator())


def test_missing_data_is_a_clear_error_at_use_time(tmp_path, monkeypatch):
  monkeypatch.delenv(natural.DATA_DIR_ENV, raising=False)
  task = seqio.get_mixture_or_task("cnndm_10k")  # registering read nothing
  with pytest.raises(FileNotFoundError, match="natural.data_dir.path"):
    task.get_dataset(None, split="train")
  gin.bind_parameter("natural.data_dir.path", str(tmp_path))
  with pytest.raises(FileNotFoundError,
                     match=r"finetuning_data/cnndm_10k/valid\.txt does not exist\. It holds CNN"):
    task.get_dataset(None, split="validation")
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError, match="squad/v1.1:3.0.0 prepared in"):
    seqio.get_mixture_or_task(natural.SQUAD).get_dataset(None, split="validation")


def test_data_dir_is_set_with_the_data_dir_macro_of_the_paper_configs(tmp_path):
  _write(tmp_path, "retrosynthesis", test="CCO\tCC.O\n")
  # The paper's finetuning configs include this file; its import makes the binding parse even
  # before the task module was imported, as in `python -m synthetic_pretraining.train`.
  gin.parse_config_files_and_bindings(
      [resources.path("gin/experiments/finetune/data_dir.gin")],
      [f"DATA_DIR = '{tmp_path}'"])
  assert natural.data_dir() == str(tmp_path)
  ds = seqio.get_mixture_or_task("retrosynthesis").get_dataset(None, split="test", shuffle=False)
  assert len(list(ds)) == 1


def test_registration_is_idempotent(tmp_path):
  before = seqio.get_mixture_or_task("code_translation")
  module = importlib.reload(natural)  # a second import must neither fail nor re-register
  assert seqio.get_mixture_or_task("code_translation") is before
  gin.bind_parameter("natural.data_dir.path", str(tmp_path))
  assert module.data_dir() == str(tmp_path)


def test_squad_scores_against_all_answers():
  task = seqio.get_mixture_or_task(natural.SQUAD)
  vocab = vocabularies.configured_vocabulary()
  example = {"inputs": np.array(vocab.encode("question: q context: c") + [1]),
             "targets": np.array(vocab.encode("Denver Broncos") + [1]),
             "answers": np.array([b"Denver Broncos", b"The Denver Broncos"])}
  got, _ = inference.score_task(task, [example], [vocab.encode("the Denver Broncos")])
  assert got["em"] == 100.0 and got["sequence_accuracy"] == 0.0
