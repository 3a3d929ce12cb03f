"""AOT compilation of the real train and decode steps: the CPU mesh always, TPU slices with libtpu."""
import importlib.util
import json
import os

import pytest

from synthetic_pretraining import precompile

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
