"""AOT compilation of the real train and decode steps: the CPU mesh always, TPU slices with libtpu."""
import glob
import importlib.util
import json
import os
import re

import gin
import pytest

from synthetic_pretraining import gin_utils
from synthetic_pretraining import precompile
from synthetic_pretraining import resources

# Module default; tests of another kind say so themselves.
pytestmark = pytest.mark.e2e

TINY = ["--gin_file=gin/models/t5_1_0/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
        "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 8}"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
needs_libtpu = pytest.mark.skipif(
    not HAS_LIBTPU, reason="libtpu (the optional 'tpu' extra: pip install -e '.[tpu]') is not "
    "installed, so TPU topologies cannot be described; the CPU mesh test covers the same path")
FIELDS = {"step", "params", "optimizer_state", "arguments", "outputs", "aliased", "temporaries",
          "generated_code", "total", "hbm", "flops", "compile_seconds", "fits"}


def _run(tmp_path, capsys, *args):
  code = precompile.main(["--output", str(tmp_path), *args])
  out, err = capsys.readouterr()
  return code, out, err


def _table(tmp_path, topology):
  with open(tmp_path / f"precompile_{topology}.json") as f:
    return json.load(f)


def test_cpu_mesh_table_and_a_budget_that_cannot_fit(tmp_path, capsys):
  # The 8 fake CPU devices as a 4 x 2 mesh with FSDP and scan+remat: the same code path as TPU.
  code, out, err = _run(tmp_path, capsys, "--topology=cpu", "--hbm_gib=0.001", *TINY,
                        "--gin.partitioning.PjitPartitioner.num_partitions=2",
                        "--gin.partitioning.PjitPartitioner.fsdp=True",
                        "--gin.network.T5Config.scan_layers=True",
                        "--gin.network.T5Config.remat_policy='full'")
  assert code == precompile.EXIT_DOES_NOT_FIT
  assert len(err.strip().splitlines()) == 1 and "more than its 0.00 GiB" in err
  table = _table(tmp_path, "cpu")
  assert table["devices"] == 8 and table["mesh"] == {"data": 4, "model": 2}
  assert table["fsdp"] and table["scan_layers"] and table["remat_policy"] == "full"
  assert [s["step"] for s in table["steps"]] == ["train", "decode"]
  train, decode = table["steps"]
  assert set(train) == FIELDS and not train["fits"]
  # The tiny model's float32 parameters, sharded: each device holds less than all of them.
  assert 0 < train["params"] < 4 * table["num_params"]
  assert train["optimizer_state"] > 0 and decode["optimizer_state"] == 0
  # XLA counts the arguments itself (padding of uneven shards aside, the same bytes).
  assert train["arguments"] >= 0.95 * (train["params"] + train["optimizer_state"])
  assert train["flops"] > decode["flops"] > 0
  assert train["total"] >= train["arguments"] + train["temporaries"] - train["aliased"]
  assert "train" in out and "decode" in out
  assert (tmp_path / "precompile_cpu.txt").read_text().strip() == out.strip()


def test_bad_topology_is_one_line(tmp_path, capsys):
  code, _, err = _run(tmp_path, capsys, "--topology=v9-8", *TINY)
  assert code == 1 and len(err.strip().splitlines()) == 1 and "--topology='v9-8'" in err


@pytest.mark.unit
def test_supported_topologies_are_listed_in_help(capsys):
  with pytest.raises(SystemExit):
    precompile.main(["--help"])
  out = capsys.readouterr().out
  assert "v4-{8,16,32,64,128" in out and "v5e-{4,8" in out and "v3-{8,16,32" in out


@needs_libtpu
def test_tpu_slice_compiles_the_cpu_model(tmp_path, capsys):
  code, _, err = _run(tmp_path, capsys, "--topology=v4-8", *TINY, "--no_decode")
  assert code == 0, err
  table = _table(tmp_path, "v4-8")
  assert table["devices"] == 4 and table["device_kind"] == "TPU v4"
  train, = table["steps"]
  assert train["hbm"] == 32 * 2**30 and train["fits"] and train["flops"] > 0


@needs_libtpu
def test_a_model_larger_than_the_chip_fails_with_one_line(tmp_path, capsys):
  # A one-layer model whose 32128 x 131072 embedding alone (16.1 GB) fills a v5e chip's 16 GiB.
  code, _, err = _run(tmp_path, capsys, "--topology=v5e-4", *TINY, "--no_decode",
                      "--gin.network.T5Config.emb_dim=131072",
                      "--gin.network.T5Config.num_encoder_layers=1",
                      "--gin.network.T5Config.num_decoder_layers=1")
  assert code == precompile.EXIT_DOES_NOT_FIT
  assert len(err.strip().splitlines()) == 1 and "on v5e-4, more than its 16.00 GiB" in err


@pytest.mark.parametrize("path", sorted(glob.glob(resources.path("gin/scale/*.gin"))))
@pytest.mark.unit
def test_scale_gin_files_follow_their_model_and_run_files(path):
  with open(path) as f:
    text = f.read()
  model_file = re.search(r"MODEL: (gin/models/\S+\.gin)", text).group(1)
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


@pytest.mark.unit
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


@pytest.mark.unit
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
