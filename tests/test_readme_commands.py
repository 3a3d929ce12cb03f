"""The README's eval and infer commands run as written, on the run its pre-training command makes
(that one shortened to a few steps): they follow the run's config.gin for model, vocabulary, task
and lengths. Every module the README runs with `python -m` exists, and the launchers' dry runs
run as written from an empty directory."""
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
  """Every `python -m synthetic_pretraining.<binary> ...` command of the README, joined (a
  trailing `# comment` dropped)."""
  text = open(os.path.join(REPO, "README.md")).read().replace("\\\n", " ")
  return [shlex.split(line.strip(), comments=True) for line in text.splitlines()
          if re.match(rf"\s*python -m synthetic_pretraining\.{re.escape(binary)} ", line)]


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
  assert "infer: decoded and scored 64 examples of set/validation" in result.stderr
  predictions = tmp_path / "runs" / "set_infer" / "inference_eval"
  assert list(predictions.glob("set-*2.jsonl"))  # set-000002.jsonl
  record = json.loads((tmp_path / "runs" / "set_infer" / "metrics.jsonl").read_text()
                      .splitlines()[-1])
  assert 0.0 <= record["sequence_accuracy"] <= 1.0  # a fraction, as train logs it


def test_every_module_the_readme_runs_exists():
  import importlib.util  # pylint: disable=import-outside-toplevel
  text = open(os.path.join(REPO, "README.md")).read()
  modules = set(re.findall(r"python -m (synthetic_pretraining[\w.]*)", text))
  assert {"synthetic_pretraining.launch.mini_table1", "synthetic_pretraining.launch.tpu_vm",
          "synthetic_pretraining.launch.paper_tables", "synthetic_pretraining.launch.step_times",
          "synthetic_pretraining.train"} <= modules
  missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
  assert not missing, missing
  assert "launch/" not in text.replace("synthetic_pretraining/launch/", "")


def test_readme_launcher_dry_runs_run_as_written(tmp_path):
  (tpu,) = [c for c in _commands("launch.tpu_vm") if "--dry_run" in c]
  result = _run(tpu, tmp_path)
  lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
  assert len(lines) == 4 and all(line.startswith("gcloud ") for line in lines), lines
  (plan,) = [c for c in _commands("launch.mini_table1") if "--dry_run" in c]
  result = _run(plan, tmp_path)
  assert "# preset full: 3 pre-training runs, 10 finetuning runs" in result.stdout
  (plan,) = [c for c in _commands("launch.pre_pretraining") if "--dry_run" in c]
  result = _run(plan, tmp_path)
  assert "# preset full: 6 runs (3 arms x 2 seeds)" in result.stdout
  assert sum(line.startswith("python -m synthetic_pretraining.train ")
             for line in result.stdout.splitlines()) == 6
  assert not list(tmp_path.iterdir())  # a dry run writes nothing
