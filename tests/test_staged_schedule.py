"""Staged schedules (`trainer.train.stages`, gin/runs/stage_pretrain.gin): one dataset for the first
steps, another after, in one MODEL_DIR; resumed bitwise before, at and after the switch; the
stage in the metrics; each stage's tokens in run.json."""
import json
import os
import shutil

import numpy as np
import pytest
import toy_run
import toy_tasks
from records import metric_records

from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining import train
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.training import run_record
from synthetic_pretraining.training import stages

pytestmark = pytest.mark.e2e

SWITCH, STEPS = 3, 6
# The toy task stands for the synthetic stage (its 97-example twin, under another data seed)
# and for the text after it (the toy task itself).
FIRST = toy_tasks.UNEVEN_TASK


def _args(model_dir, steps, *extra):
  return toy_run.args(model_dir, steps, f"--gin.STAGE1_TASK='{FIRST}'",
                      f"--gin.STAGE1_STEPS={SWITCH}", "--gin.STAGE1_SEED=5", "--gin.LOG_PERIOD=1",
                      "--gin.EVAL_PERIOD=100", "--gin.CHECKPOINT_PERIOD=100", *extra,
                      run="stage_pretrain")


def _params(model_dir, step):
  return inspect_checkpoint.load(orbax_format.step_dir(model_dir, step))[1]


def _run_json(model_dir):
  with open(os.path.join(model_dir, "run.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("staged") / "whole")
  assert train.main(_args(model_dir, STEPS)) == 0
  return model_dir


def test_records_name_the_stage_and_run_json_counts_each_stages_tokens(whole):
  records = metric_records(whole, "train")
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  assert [r["stage"] for r in records] == [0] * SWITCH + [1] * (STEPS - SWITCH)
  assert [r["task"] for r in records] == [FIRST] * SWITCH + [toy_tasks.TOY_TASK] * (STEPS - SWITCH)
  assert all(r["stage_task"] == r["task"] for r in records)
  # The end of a stage is checkpointed: the model after the synthetic stage is kept.
  assert orbax_format.checkpoint_steps(whole) == [SWITCH, STEPS]
  evals = metric_records(whole, "eval")  # eval stays on the configured (last stage's) task
  assert [(r["task"], r["stage"]) for r in evals] == [(toy_tasks.TOY_TASK, 1)]

  record = run_record.read(whole)
  assert record.task == f"{FIRST}->{toy_tasks.TOY_TASK}"
  first, second = record.stages
  assert (first["task"], first["start_step"], first["end_step"], first["steps"]) == (
      FIRST, 0, SWITCH, SWITCH)
  assert (second["task"], second["start_step"], second["end_step"], second["steps"]) == (
      toy_tasks.TOY_TASK, SWITCH, None, STEPS - SWITCH)
  for stage, steps in ((first, records[:SWITCH]), (second, records[SWITCH:])):
    # The loss's own count of real target tokens (LOG_PERIOD=1: one step per record) ...
    assert stage["target_tokens"] == sum(int(r["num_tokens"]) for r in steps)
    # ... and a toy target reverses its input: inputs and targets are as long, padding aside.
    assert stage["tokens"] == 2 * stage["target_tokens"]
  assert records[SWITCH - 1]["tokens_seen"] == first["tokens"]
  assert records[-1]["tokens_seen"] == first["tokens"] + second["tokens"]
  assert records[-1][f"tokens_seen/{toy_tasks.TOY_TASK}"] == second["tokens"]
  assert records[-1][f"tokens_seen/{FIRST}"] == first["tokens"]
  assert f"tokens_seen/{toy_tasks.TOY_TASK}" not in records[SWITCH - 1]
  # Each stage read its own data: the first stage's seed is not the run's.
  assert first["target_tokens"] != second["target_tokens"] or (
      records[0]["loss"] != records[SWITCH]["loss"])


def _assert_same_run(model_dir, whole):
  for (name, x), (other, y) in zip(_params(model_dir, STEPS), _params(whole, STEPS)):
    assert name == other
    assert np.array_equal(x, y), name
  losses = lambda d: [(r["step"], r["stage"], r["loss"]) for r in metric_records(d, "train")]
  assert losses(model_dir) == losses(whole)  # one record per step, none repeated
  assert _run_json(model_dir)["stages"] == _run_json(whole)["stages"]  # no token counted twice


def test_runs_stopped_before_and_after_the_switch_resume_bitwise(whole, tmp_path):
  parts = str(tmp_path / "parts")
  assert train.main(_args(parts, SWITCH - 1)) == 0  # stopped inside the first stage
  assert run_record.read(parts).stages[1]["steps"] == 0
  assert train.main(_args(parts, SWITCH + 1)) == 0  # resumed there, stopped after the switch
  saved = os.path.join(orbax_format.step_dir(parts, SWITCH + 1), orbax_format.ITERATOR_ITEM,
                       "process_0" + stages.STAGE_SUFFIX)
  assert json.load(open(saved))["stage"] == 1
  # A copy resumes from the checkpoint at the switch itself (the second stage's first position).
  boundary = str(tmp_path / "boundary")
  shutil.copytree(parts, boundary)
  shutil.rmtree(orbax_format.step_dir(boundary, SWITCH + 1))
  assert train.main(_args(parts, STEPS)) == 0
  _assert_same_run(parts, whole)
  assert train.main(_args(boundary, STEPS)) == 0
  _assert_same_run(boundary, whole)


def test_a_resumed_run_refuses_another_schedule(whole, tmp_path, capsys):
  moved = str(tmp_path / "moved")
  shutil.copytree(whole, moved)
  shutil.rmtree(orbax_format.step_dir(moved, STEPS))
  # The checkpoint at step 3 saved the second stage's position; step 4 would now be in the first.
  assert train.main(_args(moved, STEPS, f"--gin.STAGE1_STEPS={SWITCH + 2}")) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert "saved in stage 2" in err[-1] and "resume with the schedule" in err[-1]
  # Without any schedule, the one stage's position would be read as the whole run's.
  assert train.main(toy_run.args(moved, STEPS)) == 1
  assert "holds a staged run" in capsys.readouterr().err.strip().splitlines()[-1]
  assert orbax_format.checkpoint_steps(moved) == [SWITCH]


@pytest.mark.parametrize("binding, message", [
    ("STAGE1_STEPS=0", "steps must be a positive integer, got 0"),
    ("STAGE1_TOKENS=100", "exactly one of steps and tokens"),
    ("STAGE1_TASK='toy_revers'", "Did you mean 'toy_reverse'"),
    ("stage2/stages.Stage.steps=2", "leave its steps and tokens unset"),
])
def test_a_schedule_that_cannot_run_stops_in_one_line_before_model_dir_exists(
    tmp_path, capsys, binding, message):
  model_dir = tmp_path / "never"
  assert train.main(_args(str(model_dir), STEPS, f"--gin.{binding}")) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert message in err[-1], err
  assert not model_dir.exists()


def test_a_token_budget_is_converted_to_steps_of_token_slots():
  cfg = pipeline.DatasetConfig(FIRST, {"inputs": 10, "targets": 10}, batch_size=8)
  scheduled = stages.schedule([stages.Stage(cfg, tokens=161), stages.Stage()], cfg)
  assert [(s.start, s.end) for s in scheduled] == [(0, 2), (2, None)]  # 160 slots a step
  assert stages.stage_at(scheduled, 1).index == 0 and stages.stage_at(scheduled, 2).index == 1


def test_the_stage_gin_file_pre_pretrains_a_decoder_only_model_on_shuffle_dyck(tmp_path):
  """gin/runs/stage_pretrain.gin as documented: shuffle_dyck, then natural_text."""
  model_dir = str(tmp_path / "lm")
  assert train.main([
      "--gin_file=gin/models/decoder_only/cpu.gin", "--gin_file=gin/runs/stage_pretrain.gin",
      "--gin.STAGE1_STEPS=2", "--gin.TRAIN_STEPS=4", f"--gin.MODEL_DIR='{model_dir}'",
      "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 32}",
      "--gin.LOG_PERIOD=1", "--gin.EVAL_PERIOD=2", "--gin.EVAL_STEPS=1",
      "--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32"]) == 0
  records = metric_records(model_dir, "train")
  assert [(r["stage"], r["task"]) for r in records] == [
      (0, "shuffle_dyck"), (0, "shuffle_dyck"), (1, "natural_text"), (1, "natural_text")]
  evals = metric_records(model_dir, "eval")
  assert [(r["step"], r["task"], r["stage"]) for r in evals] == [
      (2, "natural_text", 0), (4, "natural_text", 1)]
  assert evals[0]["tokens_seen"] == records[1]["tokens_seen"]  # loss vs tokens, from the records
  record = run_record.read(model_dir)
  assert record.task == "shuffle_dyck->natural_text"
  dyck, text = record.stages
  assert dyck["steps"] == text["steps"] == 2
  # A prefix LM reads its prefix and is scored on the targets only.
  assert dyck["tokens"] > dyck["target_tokens"] > 0 and text["tokens"] > text["target_tokens"] > 0
  assert orbax_format.checkpoint_steps(model_dir) == [2, 4]
