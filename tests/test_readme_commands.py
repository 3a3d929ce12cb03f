"""The README's eval and infer commands run as written, on the run its pre-training command makes
(that one shortened to a few steps): they follow the run's config.gin for model, vocabulary, task
and lengths."""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _commands(binary):
  """Every `python -m synthetic_pretraining.<binary> ...` command of the README, joined."""
  text = open(os.path.join(REPO, "README.md")).read().replace("\\\n", " ")
  return [shlex.split(line.strip()) for line in text.splitlines()
          if re.match(rf"\s*python -m synthetic_pretraining\.{binary} ", line)]


def _run(argv, cwd):
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, (argv, result.stderr[-3000:])
  return result


def test_readme_eval_and_infer_run_as_written(tmp_path):
  pretrain = next(c for c in _commands("train") if "--gin.MODEL_DIR='runs/set'" in c)
  _run(pretrain + ["--gin.TRAIN_STEPS=2", "--gin.EVAL_PERIOD=1000", "--gin.EVAL_STEPS=1"],
       tmp_path)
  (evaluate,) = _commands("eval")
  (infer,) = _commands("infer")
  _run(evaluate, tmp_path)
  record = json.loads((tmp_path / "runs" / "set_eval" / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["task"] == "set" and record["step"] == 2
  result = _run(infer, tmp_path)
  assert "Following the run's" in result.stderr
  predictions = tmp_path / "runs" / "set_infer" / "inference_eval"
  assert list(predictions.glob("set-*2.jsonl"))  # set-000002.jsonl
