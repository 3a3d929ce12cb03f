"""The training loop's spine: periodic actions, t5x's metric names and run files, honest timing,
a NaN stop, and real signals at every point of a step (the rerun ends bitwise equal)."""
import os
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_run
import toy_tasks
from records import metric_records

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining.model import models
from synthetic_pretraining import train

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T5X_TRAIN_METRICS = ("loss", "cross_ent_loss", "cross_ent_loss_per_all_target_tokens", "z_loss",
                     "accuracy", "learning_rate", "timing/steps_per_second",
                     "timing/seqs_per_second", "timing/target_tokens_per_second")


_args = toy_run.args


@pytest.fixture(scope="module")
def periodic_run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("periodic") / "run")
  assert train.main(_args(model_dir, 7, "--gin.LOG_PERIOD=2", "--gin.EVAL_PERIOD=3",
                          "--gin.CHECKPOINT_PERIOD=5", "--gin.RANDOM_SEED=7")) == 0
  return model_dir


def test_each_action_fires_at_its_period_and_all_at_the_end(periodic_run):
  assert [r["step"] for r in metric_records(periodic_run, "train")] == [2, 4, 6, 7]
  assert [r["step"] for r in metric_records(periodic_run, "eval")] == [3, 6, 7]
  assert orbax_format.checkpoint_steps(periodic_run) == [5, 7]


def test_train_records_carry_t5x_metric_names(periodic_run):
  records = metric_records(periodic_run, "train")
  for record in records:
    assert set(T5X_TRAIN_METRICS) <= set(record), set(T5X_TRAIN_METRICS) - set(record)
  assert "timing/compilation_seconds" in records[0]
  assert [r["step"] for r in records if "timing/checkpoint_seconds" in r] == [6]
  first = records[0]
  # t5x's `loss` is the step's summed loss; per token it is what the log line shows.
  assert first["loss"] > first["loss_per_nonpadding_target_token"] > 0
  assert first["cross_ent_loss"] == pytest.approx(first["loss"] - first["z_loss"])
  assert first["learning_rate"] > 0
  assert metric_records(periodic_run, "eval")[0]["accuracy"] >= 0


def test_random_seed_is_t5x_name_for_the_seed(periodic_run):
  config = open(os.path.join(periodic_run, "config.gin")).read()
  assert "RANDOM_SEED = 7" in config


def test_model_info_lists_every_variable_and_the_total(periodic_run):
  lines = open(os.path.join(periodic_run, "model-info.txt")).read().splitlines()
  _, params = inspect_checkpoint.load(periodic_run)
  params = dict(params)
  assert len(lines) == len(params) + 1
  sizes = {}
  for line in lines[:-1]:
    fields = line.split()
    assert fields[0] == "Variable" and "logical_axes" in line and "partition_spec" in line
    sizes[fields[1]] = int(fields[3].replace(",", ""))
  assert sizes == {name: value.size for name, value in params.items()}
  assert lines[-1] == f"Total number of parameters: {sum(sizes.values()):,d}"


def test_config_is_written_to_tensorboard_as_text(periodic_run):
  events = os.listdir(os.path.join(periodic_run, "train"))
  blob = b"".join(open(os.path.join(periodic_run, "train", e), "rb").read() for e in events)
  assert b"config" in blob and b"TRAIN_STEPS" in blob


def test_decoding_compiles_once_across_inference_evals(tmp_path, monkeypatch):
  traces = []
  original = models.EncoderDecoderModel.predict_batch

  def counting(self, *args, **kwargs):
    traces.append(1)  # runs once per trace: a compiled call does not re-enter Python
    return original(self, *args, **kwargs)

  monkeypatch.setattr(models.EncoderDecoderModel, "predict_batch", counting)
  model_dir = str(tmp_path / "finetune")
  assert train.main(_args(model_dir, 6, "--gin.EVAL_PERIOD=2", "--gin.NUM_DECODES=1",
                          "--gin.EVALUATOR_NUM_EXAMPLES=8", "--gin.INFER_EVAL_SPLIT='validation'",
                          run="finetune")) == 0
  assert [r["step"] for r in metric_records(model_dir, "infer")] == [2, 4, 6]
  assert len(traces) == 1
  names = sorted(os.listdir(os.path.join(model_dir, "inference_eval")))
  assert f"{toy_tasks.TOY_TASK}-000002.jsonl" in names
  assert f"{toy_tasks.TOY_TASK}-metrics.jsonl" in names


def test_logged_throughput_counts_compute_not_dispatch(tmp_path, monkeypatch):
  """Each step sleeps 0.25 s on the device side; dispatch alone would report far more."""
  delay = 0.25
  original = models.EncoderDecoderModel.loss_and_metrics

  def slow(self, params, batch, dropout_rng=None):
    loss, sums = original(self, params, batch, dropout_rng)
    # A host callback inside the compiled step, its result kept in the step's outputs.
    pause = jax.pure_callback(lambda: (time.sleep(delay), np.float32(0))[1],
                              jax.ShapeDtypeStruct((), jnp.float32))
    return loss, dict(sums, num_steps=sums["num_steps"] + pause)

  monkeypatch.setattr(models.EncoderDecoderModel, "loss_and_metrics", slow)
  model_dir = str(tmp_path / "timed")
  started = time.perf_counter()
  assert train.main(_args(model_dir, 8, "--gin.LOG_PERIOD=4", "--gin.EVAL_PERIOD=1000",
                          "--gin.CHECKPOINT_PERIOD=1000")) == 0
  wall = time.perf_counter() - started
  records = metric_records(model_dir, "train")
  for record in records:
    assert record["timing/steps_per_second"] <= 1.0 / delay * 1.05, record
  seconds = sum(4 / r["timing/steps_per_second"] for r in records)
  assert 8 * delay <= seconds * 1.05 and seconds <= wall
  assert records[-1]["tokens_per_second"] == pytest.approx(
      records[-1]["timing/steps_per_second"] * 8 * 20)


def test_nan_loss_stops_with_one_line_naming_the_step_and_last_good_checkpoint(tmp_path, capsys):
  model_dir = str(tmp_path / "nan")
  code = train.main(_args(model_dir, 8, "--gin.CHECKPOINT_PERIOD=1", "--gin.EVAL_PERIOD=1000",
                          "--gin.optimizers.create_learning_rate_scheduler.factors='constant'",
                          "--gin.optimizers.create_learning_rate_scheduler.base_learning_rate=1e38"))
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
  assert code == 1 and len(errors) == 1, errors
  assert "NaN or inf at step" in errors[0] and "Last good checkpoint" in errors[0]
  bad_step = int(errors[0].split("at step ")[1].split(";")[0])
  assert orbax_format.checkpoint_steps(model_dir) and max(orbax_format.checkpoint_steps(model_dir)) < bad_step
  assert all(s < bad_step for s in (r["step"] for r in metric_records(model_dir, "train")))


# A signal sent at a chosen point of the loop, in a real process; the handler sees a real signal.
_SIGNAL_AT = textwrap.dedent("""
    import os, signal, sys
    from synthetic_pretraining import train
    from synthetic_pretraining.checkpointing import orbax_format
    from synthetic_pretraining.data import prefetch
    from synthetic_pretraining.training import evaluation
    from synthetic_pretraining.training import compiled_steps
    point, signame, at = sys.argv[1], sys.argv[2], 4
    send = lambda: os.kill(os.getpid(), getattr(signal, signame))
    calls = {"n": 0}
    def after(fn, when=lambda *a: True):
      def wrapped(*args, **kwargs):
        result = fn(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == at:
          send()
        return result
      return wrapped
    def before(fn):
      def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
          send()
        return fn(*args, **kwargs)
      return wrapped
    if point == "batch_taken":  # the loop takes its batch (the prefetch thread reads ahead)
      prefetch.DevicePrefetcher.__next__ = after(prefetch.DevicePrefetcher.__next__)
    elif point == "step_done":
      compiled_steps.Trainer.train_step = after(compiled_steps.Trainer.train_step)
    elif point == "saving":
      orbax_format.TrainingCheckpoints.save = before(orbax_format.TrainingCheckpoints.save)
    elif point == "evaluating":
      evaluation.evaluate = before(evaluation.evaluate)
    sys.exit(train.main(sys.argv[3:]))
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("uninterrupted") / "run")
  assert train.main(_args(model_dir, 8, *_SIGNAL_FLAGS)) == 0
  return model_dir


_SIGNAL_FLAGS = ("--gin.CHECKPOINT_PERIOD=3", "--gin.EVAL_PERIOD=2", "--gin.LOG_PERIOD=1")


@pytest.mark.parametrize("point,signame", [("batch_taken", "SIGINT"), ("step_done", "SIGTERM"),
                                           ("saving", "SIGTERM"), ("evaluating", "SIGINT")])
def test_signal_saves_the_last_finished_step_and_the_rerun_is_bitwise_equal(
    uninterrupted, tmp_path, point, signame):
  model_dir = str(tmp_path / "run")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "tests"), REPO]))
  started = time.perf_counter()
  stopped = subprocess.run([sys.executable, "-c", _SIGNAL_AT, point, signame,
                            *_args(model_dir, 8, *_SIGNAL_FLAGS)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
  assert stopped.returncode == {"SIGINT": 130, "SIGTERM": 143}[signame], stopped.stderr[-3000:]
  last = stopped.stderr.strip().splitlines()[-1]
  assert last.startswith(f"Stopped by {signame} at step ") and "Rerun the same command" in last
  step = int(last.split("at step ")[1].split(";")[0])
  assert orbax_format.checkpoint_steps(model_dir)[-1] == step
  assert metric_records(model_dir, "train")[-1]["step"] == step  # the last record was flushed
  print(f"{point}/{signame}: stopped at step {step}, process ran {time.perf_counter() - started:.1f} s")
  assert train.main(_args(model_dir, 8, *_SIGNAL_FLAGS)) == 0
  _, a = inspect_checkpoint.load(orbax_format.step_dir(uninterrupted, 8))
  _, b = inspect_checkpoint.load(orbax_format.step_dir(model_dir, 8))
  for (name, x), (_, y) in zip(a, b):
    np.testing.assert_array_equal(x, y, err_msg=name)
  losses = lambda d: {r["step"]: r["loss"] for r in metric_records(d, "train")}
  assert losses(model_dir) == losses(uninterrupted)


def test_an_action_from_gin_runs_at_its_period_without_editing_the_loop(tmp_path):
  model_dir = str(tmp_path / "run")
  extra = ("--gin.trainer.train.actions = [@extra/actions.TeacherForcedEval()]",
           "--gin.extra/actions.TeacherForcedEval.dataset_cfg = @extra/data.DatasetConfig()",
           f"--gin.extra/data.DatasetConfig.mixture_or_task_name = '{toy_tasks.UNEVEN_TASK}'",
           "--gin.extra/data.DatasetConfig.task_feature_lengths = %TASK_FEATURE_LENGTHS",
           "--gin.extra/data.DatasetConfig.split = 'validation'",
           "--gin.extra/data.DatasetConfig.batch_size = 8",
           "--gin.extra/data.DatasetConfig.shuffle = False",
           "--gin.extra/actions.TeacherForcedEval.period = 2",
           "--gin.extra/actions.TeacherForcedEval.steps = 1")
  assert train.main(_args(model_dir, 5, "--gin.EVAL_PERIOD=1000", "--gin.CHECKPOINT_PERIOD=1000",
                          *extra)) == 0
  extra_evals = [r for r in metric_records(model_dir, "eval")
                 if r["task"] == toy_tasks.UNEVEN_TASK]
  assert [r["step"] for r in extra_evals] == [2, 4, 5]
  assert all(r["split"] == "validation" and r["accuracy"] >= 0 for r in extra_evals)
  # The built-in eval still runs at its own period (here only at the end), and the checkpoint
  # of the last step comes after every record of that step.
  builtin = [r["step"] for r in metric_records(model_dir, "eval") if r["task"] == toy_tasks.TOY_TASK]
  assert builtin == [5]
  assert orbax_format.checkpoint_steps(model_dir) == [5]
