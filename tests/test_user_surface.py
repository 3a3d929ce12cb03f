"""Smaller parts of the user's surface (issue 24): precompile keeps an earlier table and never says
`fits yes` against an unknown memory size, a missing TFDS dataset is refused before MODEL_DIR
exists, warnings go through logging (above the progress bar), the floor plan names every module of
the library, and the gin names that moved with it still work."""
import os
import re
import subprocess
import sys

import pytest

from synthetic_pretraining import precompile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--gin_file=gin/models/t5_1_0/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
        "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 8}",
        "--no_decode"]


@pytest.mark.e2e
def test_precompile_refuses_to_overwrite_an_earlier_table(tmp_path, capsys):
  assert precompile.main(["--output", str(tmp_path), "--topology=cpu", *TINY]) == 0
  capsys.readouterr()
  table = (tmp_path / "precompile_cpu.txt").read_text()
  (tmp_path / "precompile_cpu.txt").write_text("an earlier table\n")
  assert precompile.main(["--output", str(tmp_path), "--topology=cpu", *TINY]) == 1
  out, err = capsys.readouterr()
  assert out == "" and err.splitlines() == [
      f"error: {tmp_path}/precompile_cpu.txt exists (an earlier precompile); pass --overwrite to "
      "replace it, or another --output."]
  assert (tmp_path / "precompile_cpu.txt").read_text() == "an earlier table\n"
  assert precompile.main(["--output", str(tmp_path), "--topology=cpu", *TINY, "--overwrite"]) == 0
  assert (tmp_path / "precompile_cpu.txt").read_text().splitlines()[1:] != []
  assert "yes" in table.splitlines()[-1].split()  # the host's memory is known here


@pytest.mark.e2e
def test_precompile_on_a_host_of_unknown_memory_says_unknown_not_yes(tmp_path, capsys,
                                                                     monkeypatch):
  monkeypatch.setattr(precompile, "host_memory_bytes", lambda: None)
  assert precompile.main(["--output", str(tmp_path), "--topology=cpu", *TINY]) == 0
  out, _ = capsys.readouterr()
  (train,) = [line for line in out.splitlines() if line.startswith("train ")]
  assert "unknown" in train.split() and "yes" not in train.split()


@pytest.mark.unit
def test_a_step_fits_only_against_a_known_memory_size():
  report = precompile.StepReport("train", 1, 1, 1, 1, 0, 1, 1, total=100, hbm=None, flops=1.0,
                                 compile_seconds=1.0)
  assert report.fits is None
  report.hbm = 99
  assert report.fits is False
  report.hbm = 100
  assert report.fits is True


@pytest.mark.e2e
def test_a_missing_tfds_dataset_is_refused_before_model_dir_exists(tmp_path):
  model_dir = tmp_path / "runs" / "squad"
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             TFDS_DATA_DIR=str(tmp_path / "no_tfds"))
  result = subprocess.run(
      [sys.executable, "-m", "synthetic_pretraining.train",
       "--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/finetune.gin",
       "--gin.MIXTURE_OR_TASK_NAME='squad_v010_allanswers'", f"--gin.MODEL_DIR='{model_dir}'",
       "--gin.TRAIN_STEPS=1", "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and "needs TFDS squad/v1.1:3.0.0 prepared in" in lines[0], lines
  assert not (tmp_path / "runs").exists()


@pytest.mark.unit
def test_warnings_go_through_logging_so_the_progress_bar_stays_whole():
  """A warning becomes one log record (the bar's logging redirect writes it above the bar)."""
  code = ("import logging, warnings\n"
          "from synthetic_pretraining import startup\n"
          "startup.configure_logging(logging.INFO)\n"
          "warnings.warn('a warning of ours')\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and " WARNING " in lines[0] and "a warning of ours" in lines[0], lines


def _library_modules():
  found = []
  for base, prefix in ((os.path.join(REPO, "synthetic_pretraining"), "synthetic_pretraining"),
                       (os.path.join(REPO, "tasks"), "synthetic_pretraining/tasks")):
    for folder, _, files in os.walk(base):
      if "__pycache__" in folder or "assets" in folder:
        continue
      for name in files:
        if name.endswith(".py") and name != "__init__.py":
          found.append(os.path.join(prefix, os.path.relpath(folder, base), name[:-3]))
  return sorted(os.path.normpath(f) for f in found)


@pytest.mark.unit
def test_the_floor_plan_names_every_module_of_the_library():
  """docs/architecture.md names each module in the line of its subpackage (or at the top level)."""
  text = open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8").read()
  missing = [module for module in _library_modules()
             if not re.search(rf"\b{re.escape(os.path.basename(module))}\b", text)]
  assert not missing, f"docs/architecture.md does not name {missing}"
  assert "launch/" in text and "synthetic_pretraining.launch" in text


# --- gin names from before the floor plan (docs/architecture.md, "Gin names") -----------------

@pytest.mark.unit
@pytest.mark.parametrize("statement", ["import synthetic_pretraining.vocabularies",
                                       "from synthetic_pretraining import vocabularies"])
def test_the_former_vocabularies_module_still_serves_gin_files(statement):
  import gin  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.data import vocabularies  # pylint: disable=import-outside-toplevel
  gin.parse_config(f"{statement}\nvocabularies.named_vocabulary.name = 'cpu_sp'\n"
                   "VOCABULARY = @vocabularies.named_vocabulary()")
  assert gin.query_parameter("vocabularies.named_vocabulary.name") == "cpu_sp"
  assert vocabularies.configured_vocabulary().vocab_size == vocabularies.named_vocabulary(
      "cpu_sp").vocab_size


@pytest.mark.e2e
def test_a_copy_of_the_former_eval_gin_still_runs_and_gives_the_same_metrics(tmp_path,
                                                                           trained_toy_run):
  """gin/runs/eval.gin as it was before the floor plan bound `trainer.evaluate_checkpoint`."""
  import json  # pylint: disable=import-outside-toplevel
  import toy_run  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import eval as eval_binary  # pylint: disable=import-outside-toplevel
  current = open(os.path.join(REPO, "gin", "runs", "eval.gin"), encoding="utf-8").read()
  assert "evaluation.evaluate_checkpoint." in current
  former = tmp_path / "former_eval.gin"
  former.write_text(current.replace("evaluation.evaluate_checkpoint.",
                                    "trainer.evaluate_checkpoint."))
  metrics = {}
  for name, gin_file in (("current", "gin/runs/eval.gin"), ("former", str(former))):
    out = tmp_path / name
    assert eval_binary.main([toy_run.CPU_MODEL, *toy_run.SHARED_MODEL, f"--gin_file={gin_file}",
                             *toy_run.task_flags(), toy_run.lengths_flag(*toy_run.SHARED_LENGTHS),
                             "--gin.BATCH_SIZE=16", "--gin.EVAL_STEPS=2",
                             f"--gin.CHECKPOINT_PATH='{trained_toy_run}'",
                             f"--gin.EVAL_OUTPUT_DIR='{out}'"]) == 0
    (record,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    metrics[name] = record
  assert metrics["former"] == metrics["current"]
  assert metrics["current"]["step"] == toy_run.SHARED_STEPS
