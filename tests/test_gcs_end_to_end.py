"""A whole study with its run directories in a bucket (the GCS emulator, tests/gcs_emulator.py).

Pre-train with MODEL_DIR=gs://..., kill the run with SIGKILL while it commits a checkpoint and
resume it (bitwise equal to an uninterrupted run on local disk), build a statistics-only initialisation from
the gs:// checkpoint into gs://, finetune from it, then `infer`, `report` and
`inspect_checkpoint` on the gs:// directories. The binaries run in this process through their
`main` functions (the code `python -m ...` runs), except the killed run, which is a subprocess
with the emulator's environment; the `gcs` fixture checks that no local `gs:` folder appears.
"""
import pytest
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import toy_run
import toy_tasks

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.training import inference
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining import paths
from synthetic_pretraining import report
from synthetic_pretraining import train
from synthetic_pretraining.stats_init import __main__ as stats_init_cli

pytestmark = [pytest.mark.e2e, pytest.mark.gcs, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = [toy_run.CPU_MODEL, *toy_run.TINY]
TASK = [*toy_run.task_flags(), "--gin.BATCH_SIZE=8", toy_run.lengths_flag(10, 10)]


def _train_args(model_dir, steps, *extra):
  return [*MODEL, "--gin_file=gin/runs/pretrain.gin", *TASK, f"--gin.MODEL_DIR='{model_dir}'",
          f"--gin.TRAIN_STEPS={steps}", "--gin.CHECKPOINT_PERIOD=3", "--gin.LOG_PERIOD=3",
          "--gin.EVAL_PERIOD=1000", *extra]


# SIGKILL while the data position of checkpoint_6 is written, after orbax has the parameters.
_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from synthetic_pretraining import train
    from synthetic_pretraining.checkpointing import orbax_format
    original = orbax_format.DataIteratorHandler.save
    def save_then_die(self, directory, args):
      if "checkpoint_6" in str(directory):
        os.kill(os.getpid(), signal.SIGKILL)
      return original(self, directory, args)
    orbax_format.DataIteratorHandler.save = save_then_die
    sys.exit(train.main(sys.argv[1:]))
""")


def _params(directory):
  _, named = inspect_checkpoint.load(directory)
  return dict(named)


def test_a_study_in_a_bucket(gcs, capsys, tmp_path):
  bucket = gcs.url
  # The uninterrupted reference run is on local disk (one checkpoint): gs:// against local is the
  # stronger comparison, and the emulator's round trips are the slow part of this test.
  whole, pretrain = str(tmp_path / "whole"), f"{bucket}/pretrain"

  # Pre-training, uninterrupted and killed + resumed.
  assert train.main(_train_args(whole, 9, "--gin.CHECKPOINT_PERIOD=9")) == 0
  env = gcs.env(PYTHONPATH=os.pathsep.join([os.path.join(REPO, "tests"), REPO]))
  killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, *_train_args(pretrain, 9)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert orbax_format.checkpoint_steps(pretrain) == [3]  # checkpoint_6 never committed
  assert train.main(_train_args(pretrain, 9)) == 0
  assert orbax_format.checkpoint_steps(pretrain) == [3, 6, 9]
  a, b = _params(orbax_format.step_dir(whole, 9)), _params(orbax_format.step_dir(pretrain, 9))
  assert sorted(a) == sorted(b)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert "pretrain/config.gin" in gcs.objects("pretrain/")
  assert [r["step"] for r in map(json.loads, paths.iter_lines(f"{pretrain}/metrics.jsonl"))
          if r["kind"] == "train"] == [3, 6, 9]  # the killed run's step 6, cut on resume, logged once

  # Statistics-only initialisation, gs:// to gs://.
  init = f"{bucket}/init"
  assert stats_init_cli.main([*MODEL, f"--checkpoint={pretrain}", f"--output_dir={init}",
                              "--scheme=per_param_grouping___init_scale"]) == 0
  stats = json.loads(paths.read_text(f"{init}/stats.json"))
  assert stats["scheme"] == "per_param_grouping___init_scale" and stats["groups"]
  assert pretrain in stats["source"]

  # Finetuning from it, with evaluation.
  finetune = f"{bucket}/finetune"
  assert train.main(_train_args(finetune, 4, f"--gin.INITIAL_CHECKPOINT_PATH='{init}'",
                                "--gin.EVAL_PERIOD=2", "--gin.EVAL_STEPS=2")) == 0
  evals = [r for r in map(json.loads, paths.iter_lines(f"{finetune}/metrics.jsonl"))
           if r["kind"] == "eval"]
  assert [r["step"] for r in evals] == [2, 4]
  assert any(n.startswith("finetune/training_eval/") for n in gcs.objects("finetune/"))

  # Inference from the finetuned run, report and inspection from gs://.
  predictions = f"{bucket}/infer"
  assert train.main([*MODEL, "--gin_file=gin/runs/infer.gin", *TASK,
                     f"--gin.CHECKPOINT_PATH='{finetune}'", f"--gin.INFER_OUTPUT_DIR='{predictions}'",
                     "--gin.SPLIT='validation'", "--gin.NUM_DECODES=1",
                     "--gin.EVALUATOR_NUM_EXAMPLES=8"], entry_point=inference.infer) == 0
  rows = list(paths.iter_lines(
      f"{predictions}/inference_eval/{toy_tasks.TOY_TASK}-000004.jsonl"))
  assert len(rows) == 8 and {"input", "target", "prediction"} <= set(json.loads(rows[0]))
  summary = [json.loads(line) for line in paths.iter_lines(
      f"{predictions}/inference_eval/{toy_tasks.TOY_TASK}-metrics.jsonl")]
  assert [r["step"] for r in summary] == [4]

  assert report.main([finetune, "--metric=eval:accuracy", f"--output_dir={bucket}/report"]) == 0
  assert gcs.objects("report/") == ["report/report.csv", "report/report.md", "report/report.png"]

  capsys.readouterr()
  assert inspect_checkpoint.main([finetune, "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["step"] == 4
