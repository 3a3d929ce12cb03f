"""Report labels: both statistics-only routes are one method; one seed shows no spread; runs that
differ in steps, batch or lengths are named."""
import json
import os

import numpy as np

import pytest

from synthetic_pretraining import report
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.report import render
from synthetic_pretraining.training import run_record

pytestmark = pytest.mark.unit

SCHEME = "per_param_grouping___init_scale"


class _GinRouteInitializer:  # what gin/init/*.gin configures (stats_init.StatisticsInitializer)
  def __init__(self, checkpoint):
    self.scheme, self.checkpoint, self.stats_file = SCHEME, checkpoint, None


def test_stats_init_checkpoint_and_gin_init_route_are_one_method(tmp_path):
  source = str(tmp_path / "pretrain" / "set")
  made = str(tmp_path / "init")  # what `python -m synthetic_pretraining.stats_init` writes
  orbax_format.save_params(made, {"encoder": {"kernel": np.zeros((2, 2), np.float32)}},
                           {"stats_init": {"scheme": SCHEME, "source": source, "groups": 1}})
  via_checkpoint = run_record.describe_init(made, "all", None)
  via_gin = run_record.describe_init(None, "all", _GinRouteInitializer(source))
  assert via_checkpoint["kind"] == via_gin["kind"] == "statistics"
  methods = set()
  for init in (via_checkpoint, via_gin):
    record = run_record.RunRecord(task="squad", seed=0, train_steps=10, batch_size=8,
                                  lengths={"inputs": 8, "targets": 8}, init=init)
    methods.add(record.method(lambda path: "set" if path == source else None))
  assert methods == {f"stats:{SCHEME}(set)"}


def test_one_seed_has_no_spread():
  assert render._pm(12.345, 0.0, 1) == "12.35"  # pylint: disable=protected-access
  assert render._pm(12.345, 1.0, 2) == "12.35 ± 1.00"  # pylint: disable=protected-access


def test_runs_that_differ_in_steps_or_lengths_are_named(tmp_path):
  for name, steps, lengths in (("a", 100, 64), ("b", 200, 64), ("c", 100, 32)):
    folder = tmp_path / name
    folder.mkdir()
    (folder / run_record.FILENAME).write_text(json.dumps({
        "task": "squad", "seed": 0, "train_steps": steps, "batch_size": 8,
        "lengths": {"inputs": lengths, "targets": 8}, "init": {"kind": "random"},
        "version": run_record.VERSION}))
  notes = report.setting_differences([str(tmp_path / n) for n in "abc"])
  assert len(notes) == 2, notes
  assert "TRAIN_STEPS" in notes[0] and "100 (a, c)" in notes[0] and "200 (b)" in notes[0]
  assert "TASK_FEATURE_LENGTHS" in notes[1]
