"""Damaged checkpoints: real files deleted or truncated in every item; one line, then fallback."""
import glob
import json
import logging
import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow as tf
import toy_run

from synthetic_pretraining.checkpointing import integrity
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import cli
from synthetic_pretraining import train

pytestmark = pytest.mark.e2e


def _write_checkpoint(step_dir: str, step: int) -> None:
  """A training checkpoint as the trainer lays it out: params, opt_state, meta, data_iterator."""
  rng = np.random.default_rng(step)
  params = {"encoder": {"kernel": rng.normal(size=(256, 256)).astype(np.float32)},
            "decoder": {"scale": rng.normal(size=(256,)).astype(np.float32)}}
  opt_state = {"v": rng.normal(size=(256, 256)).astype(np.float32), "count": np.int32(step)}
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  checkpointer.save(step_dir, ocp.args.Composite(
      params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
      meta=ocp.args.JsonSave({"step": step})))
  iterator = iter(tf.data.Dataset.range(100).batch(4))
  next(iterator)
  tf.train.Checkpoint(iterator=iterator).write(os.path.join(step_dir, "data_iterator",
                                                            "process_0"))
  # The prefetcher's batches taken but not yet handed out (prefetch.PENDING_SUFFIX).
  np.savez(os.path.join(step_dir, "data_iterator", "process_0.pending.npz"),
           **{"0/inputs": rng.integers(0, 100, size=(64, 512), dtype=np.int32),
              "0/targets": rng.integers(0, 100, size=(64, 512), dtype=np.int32)})


@pytest.fixture(scope="module")
def template(tmp_path_factory):
  root = tmp_path_factory.mktemp("template")
  for step in (1, 2):
    _write_checkpoint(str(root / f"checkpoint_{step}"), step)
  return root


@pytest.fixture
def model_dir(template, tmp_path):
  target = tmp_path / "run"
  shutil.copytree(template, target)
  return target


def _largest_file(directory) -> str:
  files = [f for f in glob.glob(os.path.join(directory, "**", "*"), recursive=True)
           if os.path.isfile(f) and "/d/" in f]
  return max(files, key=os.path.getsize)


def _truncate(path) -> None:
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


DAMAGE = {
    "params_data_deleted": ("params", lambda d: os.remove(_largest_file(d / "params"))),
    "params_data_truncated": ("params", lambda d: _truncate(_largest_file(d / "params"))),
    "params_metadata_truncated": ("params", lambda d: _truncate(d / "params" / "_METADATA")),
    "params_manifest_deleted": ("params", lambda d: os.remove(d / "params" / "manifest.ocdbt")),
    "opt_state_data_deleted": ("opt_state", lambda d: os.remove(_largest_file(d / "opt_state"))),
    "opt_state_data_truncated": ("opt_state",
                                 lambda d: _truncate(_largest_file(d / "opt_state"))),
    "opt_state_metadata_deleted": ("opt_state", lambda d: os.remove(d / "opt_state" / "_METADATA")),
    "meta_truncated": ("meta", lambda d: _truncate(d / "meta" / "metadata")),
    "meta_deleted": ("meta", lambda d: os.remove(d / "meta" / "metadata")),
    "iterator_index_deleted": ("data_iterator",
                               lambda d: os.remove(d / "data_iterator" / "process_0.index")),
    "iterator_data_truncated": ("data_iterator", lambda d: _truncate(
        glob.glob(str(d / "data_iterator" / "process_0.data-*"))[0])),
    "iterator_pending_truncated": ("pending", lambda d: _truncate(
        d / "data_iterator" / "process_0.pending.npz")),
    "item_deleted": ("opt_state", lambda d: shutil.rmtree(d / "opt_state")),
    "step_dir_empty": ("checkpoint_2", lambda d: [shutil.rmtree(p) if p.is_dir() else p.unlink()
                                                  for p in d.iterdir()]),
}


def test_intact_checkpoints_pass(model_dir):
  for step in (1, 2):
    assert integrity.verify_checkpoint(model_dir / f"checkpoint_{step}") is None


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_is_named_in_one_line_and_the_run_falls_back(case, model_dir, caplog):
  item, damage = DAMAGE[case]
  newest = model_dir / "checkpoint_2"
  damage(newest)
  problem = integrity.verify_checkpoint(newest)
  assert problem is not None and "\n" not in problem and len(problem) < 700, problem
  assert str(newest) in problem and item in problem, problem
  assert integrity.verify_checkpoint(model_dir / "checkpoint_1") is None

  step_dir_of = lambda step: str(model_dir / f"checkpoint_{step}")
  with caplog.at_level(logging.WARNING):
    assert integrity.newest_intact_step([1, 2], step_dir_of) == 1
  assert problem in caplog.text and "older intact checkpoint of step 1" in caplog.text

  with pytest.raises(integrity.CheckpointDamagedError) as error:
    integrity.newest_intact_step([1, 2], step_dir_of, fallback=False)
  assert problem in cli.one_line(error.value) and "RESTORE_FALLBACK" in str(error.value)


def test_never_a_silent_restart_when_every_checkpoint_is_damaged(model_dir):
  for step in (1, 2):
    _truncate(_largest_file(model_dir / f"checkpoint_{step}" / "params"))
  with pytest.raises(integrity.CheckpointDamagedError, match="None of the 2") as error:
    integrity.newest_intact_step(
        [1, 2], lambda step: str(model_dir / f"checkpoint_{step}"))
  line = cli.one_line(error.value)  # both named, and what to do, in one line
  assert "step 2: " in line and "step 1: " in line and "INITIAL_CHECKPOINT_PATH" in line, line
  assert integrity.newest_intact_step([], str) is None  # a fresh run starts at 0


def _train_args(model_dir, steps, *extra):
  return toy_run.args(model_dir, steps, "--gin.CHECKPOINT_PERIOD=2", "--gin.EVAL_PERIOD=1000",
                      "--gin.LOG_PERIOD=1", *extra, model=toy_run.NARROW, lengths=(12, 12),
                      batch=16, eval_steps=1)


def test_training_resumes_from_the_newest_intact_checkpoint(tmp_path, capsys):
  model_dir = tmp_path / "run"
  assert train.main(_train_args(model_dir, 4)) == 0
  assert orbax_format.checkpoint_steps(str(model_dir)) == [2, 4]
  with open(model_dir / "metrics.jsonl") as f:
    first_run = [r for r in map(json.loads, f) if r["kind"] == "train"]
  _truncate(_largest_file(model_dir / "checkpoint_4" / "opt_state"))
  capsys.readouterr()

  # Without fallback: one line naming the damaged item, and nothing is touched.
  assert train.main(_train_args(model_dir, 6, "--gin.RESTORE_FALLBACK=False")) == 1
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and f"{model_dir}/checkpoint_4/opt_state cannot be read" in errors[0]
  assert orbax_format.checkpoint_steps(str(model_dir)) == [2, 4]

  # With fallback (the default): step 2, whole, then on; the damaged step is kept aside.
  assert train.main(_train_args(model_dir, 6)) == 0
  err = capsys.readouterr().err
  assert "Skipping a damaged checkpoint" in err
  assert orbax_format.checkpoint_steps(str(model_dir)) == [2, 4, 6]
  assert (model_dir / "checkpoint_4.damaged").is_dir()
  # metrics.jsonl: the first run's records past step 2 were dropped on resume (one warning),
  # so every step has one record.
  assert err.count("record(s) past it") == 1, err[-3000:]
  with open(model_dir / "metrics.jsonl") as f:
    records = [r for r in map(json.loads, f) if r["kind"] == "train"]
  assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
  resumed = records[2:]
  # Parameters, optimizer state and data position all from step 2: steps 3 and 4 repeat exactly.
  assert [r["loss"] for r in resumed[:2]] == [r["loss"] for r in first_run[2:]]
