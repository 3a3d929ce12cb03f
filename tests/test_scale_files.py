"""The scale tables without compiling: --help's topology list, the shipped gin/scale/ files against
their model and run files, and benchmarks/precompile_table.py's fallback and writer logic."""
import glob
import importlib.util
import os
import re

import gin
import pytest

from synthetic_pretraining import gin_utils
from synthetic_pretraining import precompile
from synthetic_pretraining import resources

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_supported_topologies_are_listed_in_help(capsys):
  with pytest.raises(SystemExit):
    precompile.main(["--help"])
  out = capsys.readouterr().out
  assert "v4-{8,16,32,64,128" in out and "v5e-{4,8" in out and "v3-{8,16,32" in out


@pytest.mark.parametrize("path", sorted(glob.glob(resources.path("gin/scale/*.gin"))))
def test_scale_gin_files_follow_their_model_and_run_files(path):
  with open(path) as f:
    text = f.read()
  model_file = re.search(r"MODEL: (gin/models/\S+\.gin)", text).group(1)
  # The run file binds trainer.train: its module must be registered when this test runs alone.
  from synthetic_pretraining.training import trainer  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  gin_utils.parse([model_file, "gin/runs/pretrain.gin", path],
                  ["MIXTURE_OR_TASK_NAME = 'x'", "MODEL_DIR = '/tmp/x'", "TRAIN_STEPS = 1"])
  config = gin.query_parameter("%MODEL").scoped_configurable_fn().config
  # The scale file's settings survive the run file (which sets num_partitions itself).
  assert config.scan_layers == ("scan_layers = True" in text)
  partitions = int(re.search(r"num_partitions = (\d+)", text).group(1))
  assert gin.query_parameter("partitioning.PjitPartitioner.num_partitions") == partitions


def _table_script():
  """benchmarks/precompile_table.py, which measures the memory table and writes gin/scale/."""
  path = os.path.join(REPO, "benchmarks", "precompile_table.py")
  spec = importlib.util.spec_from_file_location("precompile_table", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _fake_row(table, model, slice_name, cfg, fits):
  key = table.row_key(model, slice_name, cfg)
  step = {"total": 20 * 2**30 if not fits else 10 * 2**30, "hbm": 16 * 2**30, "fits": fits}
  return key, {"key": key, "status": "fits" if fits else "does not fit", "steps": [step]}


def test_memory_table_tries_the_leanest_setting_after_one_that_does_not_fit():
  table = _table_script()
  first, lean = table.settings("t5_1_0/base", "v3-8")
  assert (first["remat_policy"], first["fsdp"]) == ("none", False)
  assert (lean["remat_policy"], lean["fsdp"], lean["num_partitions"]) == ("full", True, 1)
  assert len(table.settings("t5_1_0/large", "v3-8")) == 1  # already the leanest
  # The data axis never exceeds the batch of 128 (v5e-256 has 256 chips).
  assert all(256 // cfg["num_partitions"] <= 128 for cfg in table.settings("t5_1_0/small", "v5e-256"))

  results = dict([_fake_row(table, "t5_1_0/base", "v3-8", first, fits=False)])
  assert [rec for _, rec in table.tried(results, "t5_1_0/base", "v3-8")][1] is None
  # v3-8's lean setting not computed yet: v4-32 is the smallest known, with v3-8 unknown.
  results.update([_fake_row(table, "t5_1_0/base", "v4-32", table.settings("t5_1_0/base", "v4-32")[0], True)])
  assert table.smallest_slice(results, "t5_1_0/base")[0::2] == ("v4-32", ["v3-8"])
  results.update([_fake_row(table, "t5_1_0/base", "v3-8", lean, fits=True)])
  assert table.smallest_slice(results, "t5_1_0/base") == ("v3-8", lean, [])
  text = table.scale_gin(results, "t5_1_0/base", "v3-8")
  assert "remat_policy = 'full'" in text and "fsdp = True" in text and "10.00 of 16 GiB" in text


def test_scale_gin_files_are_written_from_the_measured_table():
  table = _table_script()
  results = table.load_results(os.path.join(REPO, "benchmarks", "precompile_table.jsonl"))
  written = {}
  for model in table.MODELS:
    for slice_name in table.SLICES:
      path = table.scale_gin_path(model, slice_name)
      if os.path.exists(os.path.join(REPO, path)):
        written[path] = table.scale_gin(results, model, slice_name)  # raises unless it fits
    slice_name, _, unknown = table.smallest_slice(results, model)
    if slice_name and not unknown:  # each model's known smallest slice has its file
      assert table.scale_gin_path(model, slice_name) in written
  assert sorted(written) == sorted(
      os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "gin", "scale", "*.gin")))
  for path, text in written.items():
    with open(os.path.join(REPO, path)) as f:
      assert f.read() == text, f"{path} differs from what precompile_table.py writes"
