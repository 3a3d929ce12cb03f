"""Our tasks, gin files and statistics-only checkpoints under t5x's own `python -m t5x.train`.

Needs t5x, which is not on the package index (scripts/setup_t5x.sh builds it beside the project,
docs/t5x.md): importable here, or named by T5X_PYTHONPATH, the path entries of such a build, which
only the t5x processes these tests start get. Without it the tests skip, unless REQUIRE_T5X=1
(.ci/run sets both): then they fail. The run: t5x pretrains T5 1.0 tiny for 3 steps on our
'identity' task with gin/t5x/pretrain/identity.gin; stats_init turns that t5x checkpoint into a
statistics-only initialisation with --output_format=t5x; t5x finetunes from it for 3 steps with
gin/t5x/finetune/_common.gin + gin/t5x/init/statistics.gin. The first checkpoint t5x writes must
hold exactly our statistics-only parameters. About a minute on two idle CPU cores.
"""
import glob
import importlib.util
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from synthetic_pretraining.stats_init import __main__ as stats_cli
from synthetic_pretraining.stats_init import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "tests/t5x_tiny.gin"


def _t5x_path_entries():
  return [p for p in os.environ.get("T5X_PYTHONPATH", "").split(os.pathsep) if p]


def find_t5x():
  """The directory holding the `t5x` package (T5X_PYTHONPATH first, then this process's path).

  Skips the calling test where there is none; fails instead where REQUIRE_T5X=1 or where
  T5X_PYTHONPATH is set but holds no t5x.
  """
  entries = _t5x_path_entries()
  for entry in entries:
    if os.path.isfile(os.path.join(entry, "t5x", "__init__.py")):
      return os.path.abspath(entry)
  if entries:
    pytest.fail(f"T5X_PYTHONPATH={os.environ['T5X_PYTHONPATH']!r} holds no t5x package; expected "
                "the path scripts/setup_t5x.sh prints (DIR/src:DIR/stubs:DIR/extra)", pytrace=False)
  spec = importlib.util.find_spec("t5x")
  if spec is not None and spec.origin:
    return os.path.dirname(os.path.dirname(spec.origin))
  missing = "t5x is not installed (build it with scripts/setup_t5x.sh, see docs/t5x.md)"
  if os.environ.get("REQUIRE_T5X") == "1":
    pytest.fail(f"{missing}, and REQUIRE_T5X=1 forbids skipping: set T5X_PYTHONPATH to the path "
                "scripts/setup_t5x.sh prints", pytrace=False)
  pytest.skip(missing)


@pytest.fixture(name="t5x_dir")
def fixture_t5x_dir():
  return find_t5x()


def _env():
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in (env.get("PYTHONPATH") or "").split(
      os.pathsep) if p] + _t5x_path_entries())
  env.pop("XLA_FLAGS", None)  # one CPU device: the tiny run needs no mesh
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  return env


def _run(args, log_path, timeout=900):
  """Runs a command from the repository root; returns its combined output (raises on failure)."""
  with open(log_path, "w") as log:
    result = subprocess.run(args, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            timeout=timeout, check=False)
  output = open(log_path).read()
  assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-4000:]}"
  return output


def _t5x_train(model_dir, log_path, *gin_args):
  return _run([sys.executable, "-m", "t5x.train", *gin_args, f"--gin_file={TINY}",
               f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=3"], log_path)


def _train_summary(output):
  """{'step': 3, 'loss': ..., ...} from the step-3 training metrics line t5x logs."""
  line = next(l for l in output.splitlines()
              if re.search(r"\[3\] collection=train .*\bloss=", l))
  metrics = dict(re.findall(r"([\w/]+)=([-\d.e+]+|nan|inf)", line.split("collection=train", 1)[1]))
  return {k: float(v) for k, v in metrics.items()}


def test_gin_files_parse_with_t5x(tmp_path, t5x_dir):
  """Every gin/t5x experiment (each finetuning file with each initialisation) parses in t5x."""
  pretrain = sorted(glob.glob(os.path.join(ROOT, "gin/t5x/pretrain/[a-z]*.gin")))
  finetune = sorted(glob.glob(os.path.join(ROOT, "gin/t5x/finetune/[a-z]*.gin")))
  inits = sorted(glob.glob(os.path.join(ROOT, "gin/t5x/init/[a-z]*.gin")))
  runs = [[p] for p in pretrain] + [[f, i] for f in finetune for i in inits]
  script = f"""
import __main__, gin
from t5x import gin_utils, train
__main__.train = train.train  # the gin files' `import __main__ as train_script`, as t5x.train
search = ['.', {t5x_dir!r}]
bindings = ["MODEL_DIR = '/tmp/unused'", "PRETRAINED_CHECKPOINT = '/tmp/p/checkpoint_1'",
            "STATS_CHECKPOINT = '/tmp/s/checkpoint_0'"]
for files in {[[os.path.relpath(f, ROOT) for f in run] for run in runs]!r}:
  gin.clear_config()
  gin_utils.parse_gin_flags(search, files, bindings)
  assert gin.query_parameter('network.T5Config.emb_dim') == 512, files
  print('parsed', *files)
"""
  output = _run([sys.executable, "-c", script], tmp_path / "parse.log")
  assert output.count("parsed ") == len(runs)


@pytest.mark.usefixtures("t5x_dir")
def test_t5x_trains_on_our_task_and_finetunes_from_statistics(tmp_path):
  # 1. t5x pretrains on our synthetic task.
  pre_dir = str(tmp_path / "pretrain")
  output = _t5x_train(pre_dir, tmp_path / "pretrain.log", "--gin_file=gin/t5x/pretrain/identity.gin")
  pretrain = _train_summary(output)
  print("t5x pretraining on 'identity', step 3:", {k: pretrain[k] for k in (
      "loss", "cross_ent_loss_per_all_target_tokens", "accuracy", "timing/steps_per_second")})
  assert math.isfinite(pretrain["loss"]) and pretrain["timing/seqs"] == 24  # 3 steps x batch 8
  assert os.path.isdir(os.path.join(pre_dir, "checkpoint_3"))

  # 2. Statistics of that t5x checkpoint, written for t5x.
  stats_dir = str(tmp_path / "stats")
  assert stats_cli.main(["--gin_file=gin/models/t5_1_0/tiny.gin",
                         f"--checkpoint={os.path.join(pre_dir, 'checkpoint_3')}",
                         "--scheme=per_param_grouping___init_scale", f"--output_dir={stats_dir}",
                         "--output_format=t5x"]) == 0
  _, statistics = sources.load_t5x_params(os.path.join(stats_dir, "checkpoint_0"))

  # 3. t5x finetunes from it.
  ft_dir = str(tmp_path / "finetune")
  output = _t5x_train(
      ft_dir, tmp_path / "finetune.log", "--gin_file=gin/t5x/finetune/_common.gin",
      "--gin_file=gin/t5x/init/statistics.gin", "--gin.MIXTURE_OR_TASK_NAME='identity'",
      "--gin.INFER_EVAL_FEATURE_LENGTHS={'inputs': 32, 'targets': 32}",
      f"--gin.STATS_CHECKPOINT='{os.path.join(stats_dir, 'checkpoint_0')}'")
  assert "Initializing parameters from specific T5X checkpoint" in output
  finetune = _train_summary(output)
  print("t5x finetuning from statistics, step 3:", {k: finetune[k] for k in (
      "loss", "cross_ent_loss_per_all_target_tokens", "accuracy", "learning_rate")})
  assert math.isfinite(finetune["loss"]) and finetune["learning_rate"] == pytest.approx(1e-3)
  # t5x saves the restored state before its first step: exactly our statistics-only parameters.
  step, restored = sources.load_t5x_params(os.path.join(ft_dir, "checkpoint_0"))
  assert step == 0 and set(restored) == set(statistics)
  for path, value in statistics.items():
    np.testing.assert_array_equal(restored[path], value, err_msg=path)
  step, trained = sources.load_t5x_params(os.path.join(ft_dir, "checkpoint_3"))
  assert step == 3
  assert all(not np.array_equal(trained[p], statistics[p]) for p in statistics)


def test_missing_t5x_skips_or_fails_where_required(monkeypatch, tmp_path):
  """Without t5x the interop tests skip; with REQUIRE_T5X=1 (CI) or a T5X_PYTHONPATH that holds
  no t5x they fail instead."""
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "t5x" else real_find_spec(name, *a))
  monkeypatch.delenv("T5X_PYTHONPATH", raising=False)
  monkeypatch.delenv("REQUIRE_T5X", raising=False)
  with pytest.raises(pytest.skip.Exception, match="setup_t5x.sh"):
    find_t5x()
  monkeypatch.setenv("REQUIRE_T5X", "1")
  with pytest.raises(pytest.fail.Exception, match="REQUIRE_T5X=1 forbids skipping"):
    find_t5x()
  monkeypatch.delenv("REQUIRE_T5X")
  monkeypatch.setenv("T5X_PYTHONPATH", str(tmp_path))
  with pytest.raises(pytest.fail.Exception, match="holds no t5x package"):
    find_t5x()
  (tmp_path / "t5x").mkdir()
  (tmp_path / "t5x" / "__init__.py").write_text("")
  assert find_t5x() == str(tmp_path)
