"""A self-contained package: shipped gin files, data and task module found installed or checked out.

The wheel test builds a wheel from this checkout, installs it (without dependencies: they come
from the running environment) into a temporary folder, and runs the README's commands from an
empty working directory with only that folder on PYTHONPATH. sys.path is searched before any
editable-install finder (setuptools appends its finder to sys.meta_path, after the path-based
one), so the wheel's copy is what runs; the test checks that before training.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import gin
import pytest
import seqio

from synthetic_pretraining.data import pipeline
from synthetic_pretraining import gin_utils
from synthetic_pretraining import resources
from synthetic_pretraining import train  # noqa: F401  (registers every configurable)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What setup.py packages; the build works on a copy so the checkout gets no build/ or egg-info.
PACKAGE_SOURCES = ("setup.py", "README.md", "synthetic_pretraining", "tasks", "gin", "data")
CPU_MODEL = "gin/models/t5_1_0/cpu.gin"


def test_a_checkout_reads_its_own_gin_files_data_and_tasks():
  import synthetic_pretraining.tasks  # pylint: disable=import-outside-toplevel
  assert str(resources.root()) == ROOT
  assert synthetic_pretraining.tasks.__file__ == os.path.join(ROOT, "tasks", "__init__.py")
  assert os.path.isfile(resources.path("data/squad_offline/train.jsonl"))


def test_shipped_gin_files_and_their_includes_resolve_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert gin_utils._resolve(CPU_MODEL) == resources.path(CPU_MODEL)  # pylint: disable=protected-access
  # cpu.gin includes the model's base.gin, finetune.gin includes pretrain.gin.
  gin_utils.parse([CPU_MODEL, "gin/runs/finetune.gin"],
                  ["MIXTURE_OR_TASK_NAME = 'set'", "MODEL_DIR = 'x'", "TRAIN_STEPS = 1"])
  assert gin.query_parameter("network.T5Config.num_heads") == 4  # cpu.gin
  assert gin.query_parameter("network.T5Config.activations") == ("relu",)  # base.gin
  assert gin.query_parameter("%MIXTURE_OR_TASK_MODULE") == "synthetic_pretraining.tasks"


def test_a_gin_file_under_the_working_directory_wins(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "gin/models/t5_1_0").mkdir(parents=True)
  (tmp_path / CPU_MODEL).write_text("# mine\n")
  assert gin_utils._resolve(CPU_MODEL) == CPU_MODEL  # pylint: disable=protected-access
  with pytest.raises(gin_utils.GinConfigError, match="'gin/no_such.gin' not found"):
    gin_utils._resolve("gin/no_such.gin")  # pylint: disable=protected-access


def test_the_old_task_module_name_means_the_package_when_no_tasks_module_exists(monkeypatch):
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "tasks" else real_find_spec(name, *a))
  assert pipeline._task_module_name("tasks") == "synthetic_pretraining.tasks"  # pylint: disable=protected-access
  assert pipeline._task_module_name("tasks.offline") == "synthetic_pretraining.tasks.offline"  # pylint: disable=protected-access
  assert pipeline._task_module_name("my_tasks") == "my_tasks"  # pylint: disable=protected-access
  pipeline.import_task_modules("tasks")
  assert "squad_offline" in seqio.TaskRegistry.names()


def _run(command, cwd, env):
  result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
  return result.stdout


def test_a_built_wheel_runs_the_readme_commands_from_any_directory(tmp_path):
  source, site, work = tmp_path / "source", tmp_path / "site", tmp_path / "work"
  source.mkdir()
  work.mkdir()
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
  for name in PACKAGE_SOURCES:
    if os.path.isdir(os.path.join(ROOT, name)):
      shutil.copytree(os.path.join(ROOT, name), source / name, ignore=ignore)
    else:
      shutil.copy(os.path.join(ROOT, name), source / name)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
  _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
       tmp_path, env)
  (wheel,) = (tmp_path / "dist").glob("synthetic_pretraining-*.whl")
  _run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], tmp_path, env)

  env["PYTHONPATH"] = str(site)
  where = json.loads(_run([sys.executable, "-c", (
      "import importlib.util, json\n"  # where each would come from, without importing TensorFlow
      "from synthetic_pretraining import resources\n"
      "print(json.dumps([importlib.util.find_spec(name).origin for name in\n"
      "                  ('synthetic_pretraining', 'synthetic_pretraining.tasks')]\n"
      "                 + [resources.path('gin'), resources.path('data')]))")],
      work, env))
  assert all(path.startswith(str(site) + os.sep) for path in where), where

  train = [sys.executable, "-m", "synthetic_pretraining.train", f"--gin_file={CPU_MODEL}"]
  tiny = ["--gin.BATCH_SIZE=8", "--gin.trainer.train.eval_dataset_cfg=None"]
  _run([*train, "--gin_file=gin/runs/pretrain.gin", "--gin_file=gin/runs/cpu_demo.gin",
        "--gin.MIXTURE_OR_TASK_NAME='set'", "--gin.MODEL_DIR='runs/set'", "--gin.TRAIN_STEPS=2",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}", *tiny], work, env)
  _run([*train, "--gin_file=gin/runs/finetune.gin", "--gin.MIXTURE_OR_TASK_NAME='squad_offline'",
        "--gin.MODEL_DIR='runs/squad'", "--gin.TRAIN_STEPS=1", "--gin.INITIAL_CHECKPOINT_PATH='runs/set'",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}",
        "--gin.trainer.train.infer_eval_cfg=None", *tiny], work, env)

  # The launchers are installed too: their dry runs work here, and plan under this directory.
  plan = _run([sys.executable, "-m", "synthetic_pretraining.launch.mini_table1", "--preset=demo",
               "--dry_run"], work, env)
  assert f"--gin.MODEL_DIR=\"'{work}/runs/mini_table1_demo/pretrain/set/seed_0'\"" in plan
  squad = tmp_path.joinpath("tfds", "squad", "v1.1", "3.0.0")
  squad.mkdir(parents=True)
  (squad / "dataset_info.json").write_text("{}")
  plan = _run([sys.executable, "-m", "synthetic_pretraining.launch.paper_tables", "--table=3",
               "--downstream=squad", f"--tfds_data_dir={tmp_path / 'tfds'}", "--bucket=gs://b/x",
               "--tpu=t", "--zone=z", "--dry_run"], work, env)  # gin files found in the wheel
  assert "# estimate: about " in plan and "gin/init/pre_attn_ln_constant.gin" in plan

  assert sorted(os.listdir(work)) == ["runs"]  # nothing of the repository was needed here
  records = [json.loads(line) for line in (work / "runs/squad/metrics.jsonl").read_text().splitlines()]
  (trained,) = [r for r in records if r["kind"] == "train"]
  assert (trained["step"], trained["task"]) == (1, "squad_offline") and trained["loss"] > 0
  assert os.path.isdir(work / "runs/squad/checkpoint_1")
