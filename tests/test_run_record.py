"""run.json: the trainer's record of what a run was, written and read back."""
import dataclasses
import json

import gin
import pytest

from synthetic_pretraining.data import pipeline
from synthetic_pretraining.training import run_record
from synthetic_pretraining.stats_init import initializers

pytestmark = pytest.mark.unit


def _cfg():
  return pipeline.DatasetConfig(mixture_or_task_name="squad_offline",
                            task_feature_lengths={"inputs": 512, "targets": 32}, batch_size=16)


def test_written_and_read_back(tmp_path):
  gin.bind_parameter("run_label.label", "stats(set)")
  stats = initializers.StatisticsInitializer(scheme="per_param_grouping___init_scale",
                                             checkpoint=str(tmp_path / "pretrain" / "set"))
  written = run_record.write(str(tmp_path / "run"), train_dataset_cfg=_cfg(), seed=3,
                             total_steps=700, param_initializer=stats)
  read = run_record.read(str(tmp_path / "run"))
  assert read == written
  assert dataclasses.asdict(read) == {
      "task": "squad_offline", "seed": 3, "train_steps": 700, "batch_size": 16,
      "lengths": {"inputs": 512, "targets": 32}, "label": "stats(set)", "version": 1,
      "init": {"kind": "statistics", "scheme": "per_param_grouping___init_scale",
               "source": str(tmp_path / "pretrain" / "set")}, "stages": None}
  # A run without stages writes no `stages` key at all (its run.json is what it always was).
  assert "stages" not in json.loads((tmp_path / "run" / "run.json").read_text())


def test_a_staged_run_records_its_stages(tmp_path):
  stages = [{"task": "shuffle_dyck", "split": "train", "start_step": 0, "end_step": 5,
             "steps": 5, "tokens": 700, "target_tokens": 600},
            {"task": "natural_text", "split": "train", "start_step": 5, "end_step": None,
             "steps": 2, "tokens": 300, "target_tokens": 80}]
  run_record.write(str(tmp_path), train_dataset_cfg=_cfg(), seed=1, total_steps=7,
                   task="shuffle_dyck->natural_text", stages=stages)
  read = run_record.read(str(tmp_path))
  assert (read.task, read.stages) == ("shuffle_dyck->natural_text", stages)


def test_initialisations_are_described():
  assert run_record.describe_init(None, "all", None) == {"kind": "random"}
  assert run_record.describe_init("/ckpt", "all_but_embedding", None) == {
      "kind": "checkpoint", "path": "/ckpt", "load": "all_but_embedding"}
  custom = initializers.CustomValueInitializer(constants={"pre_attn_ln": 0.4})
  described = run_record.describe_init("/ckpt", "all", custom)
  assert described["kind"] == "custom" and described["constants"] == {"pre_attn_ln": 0.4}
  assert described["base"] == {"kind": "checkpoint", "path": "/ckpt", "load": "all"}
  record = run_record.RunRecord("t", 1, 1, 1, {}, described)
  assert record.method() == "custom:pre_attn_ln=0.4"


def test_missing_and_malformed_records(tmp_path):
  assert run_record.read(str(tmp_path)) is None
  (tmp_path / "run.json").write_text('{"task": "t"}')
  with pytest.raises(ValueError, match="run.json: not a run record \\(missing batch_size"):
    run_record.read(str(tmp_path))
