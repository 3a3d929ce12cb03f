"""Damaged checkpoints: real files deleted or truncated in every item; one line, then fallback."""
import glob
import logging
import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow as tf

from synthetic_pretraining import checkpoint_integrity
from synthetic_pretraining import cli


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
    "item_deleted": ("opt_state", lambda d: shutil.rmtree(d / "opt_state")),
    "step_dir_empty": ("checkpoint_2", lambda d: [shutil.rmtree(p) if p.is_dir() else p.unlink()
                                                  for p in d.iterdir()]),
}


def test_intact_checkpoints_pass(model_dir):
  for step in (1, 2):
    assert checkpoint_integrity.verify_checkpoint(model_dir / f"checkpoint_{step}") is None


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_is_named_in_one_line_and_the_run_falls_back(case, model_dir, caplog):
  item, damage = DAMAGE[case]
  newest = model_dir / "checkpoint_2"
  damage(newest)
  problem = checkpoint_integrity.verify_checkpoint(newest)
  assert problem is not None and "\n" not in problem and len(problem) < 700, problem
  assert str(newest) in problem and item in problem, problem
  assert checkpoint_integrity.verify_checkpoint(model_dir / "checkpoint_1") is None

  step_dir_of = lambda step: str(model_dir / f"checkpoint_{step}")
  with caplog.at_level(logging.WARNING):
    assert checkpoint_integrity.newest_intact_step([1, 2], step_dir_of) == 1
  assert problem in caplog.text and "older intact checkpoint of step 1" in caplog.text

  with pytest.raises(checkpoint_integrity.CheckpointDamagedError) as error:
    checkpoint_integrity.newest_intact_step([1, 2], step_dir_of, fallback=False)
  assert problem in cli.one_line(error.value) and "RESTORE_FALLBACK" in str(error.value)


def test_never_a_silent_restart_when_every_checkpoint_is_damaged(model_dir):
  for step in (1, 2):
    _truncate(_largest_file(model_dir / f"checkpoint_{step}" / "params"))
  with pytest.raises(checkpoint_integrity.CheckpointDamagedError, match="None of the 2"):
    checkpoint_integrity.newest_intact_step(
        [1, 2], lambda step: str(model_dir / f"checkpoint_{step}"))
  assert checkpoint_integrity.newest_intact_step([], str) is None  # a fresh run starts at 0
