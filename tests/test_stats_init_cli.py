"""The stats_init binary, stats.json, t5x sources, gin/init files, and training from statistics."""
import glob
import json
import os

import gin
import numpy as np
import pytest
import toy_tasks

from synthetic_pretraining import checkpoints
from synthetic_pretraining import gin_utils
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining import train
from synthetic_pretraining.stats_init import __main__ as stats_cli
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from reference import T5X_TINY as REFERENCE  # noqa: E402
TINY_1_1 = "--gin_file=gin/models/t5_1_1/tiny.gin"
SCHEME = "per_param_grouping___init_scale"


def _params(directory):
  return {p["path"]: p for p in inspect_checkpoint.describe(directory)["params"]}


def _arrays(directory):
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  meta = checkpoints.params_metadata(directory)
  import jax  # pylint: disable=import-outside-toplevel
  abstract = traverse_util.unflatten_dict(
      {p: jax.ShapeDtypeStruct(s, d) for p, (s, d) in meta.items()}, sep="/")
  restored = checkpoints.restore_params(directory, abstract)
  return {p: np.asarray(v) for p, v in traverse_util.flatten_dict(restored, sep="/").items()}


@pytest.fixture(scope="module")
def from_reference(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("init") / "ckpt")
  assert stats_cli.main([TINY_1_1, f"--checkpoint={REFERENCE}", f"--scheme={SCHEME}",
                         f"--output_dir={out}", "--seed=7"]) == 0
  return out


def test_cli_writes_a_checkpoint_and_stats_json(from_reference):
  stats = json.load(open(os.path.join(from_reference, "stats.json")))
  assert stats["scheme"] == SCHEME and stats["source"].endswith("t5_1_1_tiny.msgpack")
  _, reference = sources.load_t5x_params(REFERENCE)
  members = {m: g for g in stats["groups"] for m in g["members"]}
  # The vocabulary embeddings (token_embedder, T5 1.1's logits_dense) stay random by default.
  assert set(members) == set(reference) - {"token_embedder/embedding", "decoder/logits_dense/kernel"}
  params = _arrays(from_reference)
  for path, group in members.items():
    assert group["count"] == reference[path].size and set(group) >= {"mean", "std", "draw"}
    assert group["mean"] == pytest.approx(float(np.mean(reference[path], dtype=np.float64)), abs=1e-7)
    if "norm" in path:
      assert group["draw"] == procedures.CONSTANT_MEAN
      assert np.all(params[path] == np.float32(group["mean"]))
    else:
      assert group["draw"] == procedures.NORMAL_ZERO_STD
  assert os.path.getsize(os.path.join(from_reference, "stats.json")) < 50_000


def test_stats_json_alone_recreates_the_same_parameters(from_reference, tmp_path):
  again = str(tmp_path / "again")
  assert stats_cli.main([TINY_1_1, f"--stats_file={from_reference}/stats.json",
                         f"--output_dir={again}", "--seed=7"]) == 0
  a, b = _arrays(from_reference), _arrays(again)
  for path in a:
    np.testing.assert_array_equal(a[path], b[path], err_msg=path)


def test_clear_errors(tmp_path, capsys):
  assert stats_cli.main([TINY_1_1, f"--checkpoint={REFERENCE}", "--scheme=per_param_grouping",
                         f"--output_dir={tmp_path}/a"]) == 1
  err = capsys.readouterr().err
  assert "per_param_grouping___init_mean_std" in err and "mlp_per_param_grouping___init_scale" in err
  assert stats_cli.main(["--gin_file=gin/models/t5_1_0/tiny.gin", f"--checkpoint={REFERENCE}",
                         f"--scheme={SCHEME}", f"--output_dir={tmp_path}/b"]) == 1
  err = capsys.readouterr().err
  assert "mlp/wi_0/kernel" in err and "decoder/logits_dense/kernel" in err
  assert stats_cli.main([TINY_1_1, f"--checkpoint={tmp_path}/missing", f"--scheme={SCHEME}",
                         f"--output_dir={tmp_path}/c"]) == 1
  assert "No statistics source" in capsys.readouterr().err


def test_table3_constant_through_the_cli(tmp_path):
  out = str(tmp_path / "table3")
  assert stats_cli.main([TINY_1_1, "--set=pre_attn_ln=-0.4", f"--output_dir={out}"]) == 0
  params = _arrays(out)
  changed = [p for p in params if p.endswith("attention_layer_norm/scale")]
  assert len(changed) == 6  # 2 encoder + 2 decoder self + 2 decoder cross
  for p in changed:
    assert np.all(params[p] == np.float32(-0.4))
  assert np.all(params["encoder/layers_0/pre_mlp_layer_norm/scale"] == 1.0)


def test_inspect_checkpoint_reads_t5x(capsys):
  assert inspect_checkpoint.main([REFERENCE, "--json"]) == 0
  info = json.loads(capsys.readouterr().out)
  assert len(info["params"]) == 52 and "decoder/logits_dense/kernel" in {p["path"] for p in info["params"]}
  assert inspect_checkpoint.main([REFERENCE]) == 0
  assert "encoder/relpos_bias/rel_embedding" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "gin", "init", "*.gin"))))
def test_gin_init_files_bind_a_valid_initializer(path):
  gin_utils.parse(["gin/models/t5_1_0/tiny.gin", "gin/runs/finetune.gin", path],
                  ["MODEL_DIR='/tmp/x'", "MIXTURE_OR_TASK_NAME='set'", "TRAIN_STEPS=1"] +
                  (["STATS_SOURCE='/tmp/s'"] if "STATS_SOURCE" in open(path).read() else []))
  name = os.path.basename(path)[:-4]
  if name in procedures.PAPER_SCHEMES:
    assert gin.query_parameter("stats_init.StatisticsInitializer.scheme") == name
  else:
    assert gin.query_parameter("stats_init.CustomValueInitializer.constants")


def test_a_model_initialised_from_statistics_trains(tmp_path):
  common = ["--gin_file=gin/models/t5_1_0/cpu.gin", f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
            "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", "--gin.BATCH_SIZE=16",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 12, 'targets': 12}", "--gin.EVAL_STEPS=2",
            "--gin.network.T5Config.emb_dim=64", "--gin.network.T5Config.mlp_dim=128"]
  source = str(tmp_path / "source")
  assert train.main(common + ["--gin_file=gin/runs/pretrain.gin", f"--gin.MODEL_DIR='{source}'",
                              "--gin.TRAIN_STEPS=20", "--gin.EVAL_PERIOD=1000"]) == 0
  run = str(tmp_path / "from_stats")
  stats_out = str(tmp_path / "stats.json")
  assert train.main(common + ["--gin_file=gin/runs/finetune.gin",
                              f"--gin_file=gin/init/{SCHEME}.gin", f"--gin.STATS_SOURCE='{source}'",
                              f"--gin.STATS_OUT='{stats_out}'", f"--gin.MODEL_DIR='{run}'",
                              "--gin.TRAIN_STEPS=80", "--gin.EVAL_PERIOD=40", "--gin.LOG_PERIOD=10",
                              "--gin.trainer.train.infer_eval_cfg=None",
                              "--gin.LEARNING_RATE=0.01"]) == 0
  stats = json.load(open(stats_out))
  assert stats["scheme"] == SCHEME and stats["source"].startswith(source)
  records = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
  losses = [r["loss"] for r in records if r["kind"] == "train"]
  assert losses[-1] < 0.8 * losses[0]
