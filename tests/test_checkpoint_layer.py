"""The checkpoint layer: one resolver for every path, and a step's state committed as one unit.

The kill test sends a real SIGKILL to a training process while it writes the data position of
a checkpoint (after the parameters were handed to orbax): the step must not appear, and the
rerun must end bitwise equal to an uninterrupted run.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import toy_tasks
from reference import T5X_TINY

from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ("--gin.CHECKPOINT_PERIOD=3", "--gin.EVAL_PERIOD=1000", "--gin.LOG_PERIOD=3")


def _args(model_dir, steps, *extra):
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/pretrain.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.MODEL_DIR='{model_dir}'",
          f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=8",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 10, 'targets': 10}",
          "--gin.network.T5Config.emb_dim=32", "--gin.network.T5Config.mlp_dim=64",
          "--gin.network.T5Config.num_encoder_layers=1",
          "--gin.network.T5Config.num_decoder_layers=1", *COMMON, *extra]


def _assert_same_params(dir_a, dir_b):
  _, a = inspect_checkpoint.load(dir_a)
  _, b = inspect_checkpoint.load(dir_b)
  a, b = dict(a), dict(b)
  assert sorted(a) == sorted(b)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("whole") / "run")
  assert train.main(_args(model_dir, 9)) == 0
  return model_dir


def test_resolver_classifies_every_kind_of_path(whole_run, tmp_path):
  latest = resolver.resolve(whole_run)
  assert (latest.kind, latest.step, latest.step_dir) == (
      "ours", 9, orbax_format.step_dir(whole_run, 9))
  step6 = resolver.resolve(orbax_format.step_dir(whole_run, 6))
  assert (step6.kind, step6.step) == ("ours", 6)
  t5x = resolver.resolve(T5X_TINY)
  assert t5x.kind == "t5x_msgpack" and "token_embedder/embedding" in t5x.source.metadata()
  stats = tmp_path / "stats.json"
  stats.write_text("{}")
  assert resolver.resolve(str(stats), allow_stats=True).kind == "stats"
  with pytest.raises(FileNotFoundError, match="statistics file, not a checkpoint"):
    resolver.resolve(str(stats))
  with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
    resolver.resolve(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="nothing exists there"):
    resolver.resolve(str(tmp_path / "missing"))


_KILL_WHILE_SAVING_POSITION = textwrap.dedent("""
    import os, signal, sys
    from synthetic_pretraining import train
    from synthetic_pretraining.checkpointing import orbax_format
    original = orbax_format.DataIteratorHandler.save
    def save_then_die(self, directory, args):
      if "checkpoint_6" in str(directory):
        os.kill(os.getpid(), signal.SIGKILL)  # parameters are already being written by orbax
      return original(self, directory, args)
    orbax_format.DataIteratorHandler.save = save_then_die
    sys.exit(train.main(sys.argv[1:]))
""")


def test_kill_at_the_commit_point_leaves_no_step_without_its_data_position(whole_run, tmp_path):
  model_dir = str(tmp_path / "killed")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "tests"), REPO]))
  killed = subprocess.run([sys.executable, "-c", _KILL_WHILE_SAVING_POSITION,
                           *_args(model_dir, 9)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
  assert killed.returncode == -9, killed.stderr[-2000:]
  assert orbax_format.checkpoint_steps(model_dir) == [3]  # step 6 was never committed
  assert train.main(_args(model_dir, 9)) == 0
  _assert_same_params(orbax_format.step_dir(whole_run, 9), orbax_format.step_dir(model_dir, 9))


def _to_legacy_layout(model_dir, step):
  """Moves a step's data position to where runs before this layout kept it."""
  item = os.path.join(orbax_format.step_dir(model_dir, step), orbax_format.ITERATOR_ITEM)
  legacy = os.path.join(model_dir, "data_iterators", f"step_{step}")
  shutil.copytree(item, legacy)
  shutil.rmtree(item)


def test_run_directory_of_the_previous_layout_still_resumes(whole_run, tmp_path):
  model_dir = str(tmp_path / "legacy")
  assert train.main(_args(model_dir, 6)) == 0
  _to_legacy_layout(model_dir, 6)
  assert train.main(_args(model_dir, 9)) == 0
  _assert_same_params(orbax_format.step_dir(whole_run, 9), orbax_format.step_dir(model_dir, 9))


def test_step_without_any_data_position_fails_with_one_line(tmp_path, capsys):
  model_dir = str(tmp_path / "lost")
  assert train.main(_args(model_dir, 3)) == 0
  shutil.rmtree(os.path.join(orbax_format.step_dir(model_dir, 3), orbax_format.ITERATOR_ITEM))
  capsys.readouterr()
  assert train.main(_args(model_dir, 6)) == 1
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
  assert len(errors) == 1
  assert "cannot resume exactly" in errors[0] and "checkpoint_3" in errors[0]
