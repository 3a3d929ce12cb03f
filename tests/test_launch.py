"""Cloud TPU VM launchers: dry runs print the expected commands for one host and a pod."""
import os
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "launch"))
import tpu_vm  # pylint: disable=wrong-import-position


def _dry_run(script, *flags):
  flags = list(flags)
  flags.insert(flags.index("--") if "--" in flags else len(flags), "--dry_run")
  out = subprocess.run([sys.executable, os.path.join(ROOT, "launch", script), *flags],
                       capture_output=True, text=True, check=True, cwd=ROOT).stdout
  return [shlex.split(line) for line in out.splitlines() if line and not line.startswith("#")], out


@pytest.mark.parametrize("accelerator,workers", [("v3-8", 1), ("v3-32", 4), ("v4-32", 4),
                                                 ("v5litepod-16", 4), ("v2-512", 64)])
def test_worker_count(accelerator, workers):
  assert tpu_vm.num_workers(accelerator) == workers


def test_unknown_accelerator_is_a_clear_error():
  with pytest.raises(ValueError, match="v3-32"):
    tpu_vm.num_workers("tpu-8")


@pytest.mark.parametrize("accelerator,workers", [("v3-8", 1), ("v3-32", 4)])
def test_tpu_vm_dry_run(accelerator, workers):
  train = ["python3", "-m", "synthetic_pretraining.train",
           "--gin_file=gin/experiments/pretrain/set.gin", "--gin.MODEL_DIR='gs://b/pretrain/set'"]
  commands, text = _dry_run("tpu_vm.py", "--tpu=node", "--zone=us-central1-a",
                            f"--accelerator={accelerator}", "--create", "--setup", "--", *train)
  assert f"{workers} worker(s)" in text
  create, archive, scp, install, run = commands
  assert create[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  assert f"--accelerator-type={accelerator}" in create and "--zone=us-central1-a" in create
  assert archive[:2] == ["git", "archive"]
  assert scp[4] == "scp" and "--worker=all" in scp
  assert install[4] == "ssh" and "--worker=all" in install
  assert "pip install -q -e '.[tpu]'" in [a for a in install if a.startswith("--command=")][0]
  assert run[4:6] == ["ssh", "node"] and "--worker=all" in run
  remote = [a for a in run if a.startswith("--command=")][0][len("--command="):]
  assert shlex.split(remote) == ["cd", "synthetic_pretraining", "&&", *train]


def test_paper_table_dry_runs():
  common = ("--tpu=node", "--zone=z", "--accelerator=v3-32", "--bucket=gs://b/x")
  commands, text = _dry_run("paper_tables.py", "--table=1", *common)
  assert "4 worker(s)" in text and "42 finetuning runs" in text  # 6 tasks x (random, natural, 5 tasks)
  remote = [shlex.split([a for a in c if a.startswith("--command=")][0][10:])
            for c in commands[:-1]]
  pretrain = [r for r in remote if any("experiments/pretrain/" in a for a in r)]
  assert len(pretrain) == 5
  assert commands[-1][:3] == ["python3", "-m", "synthetic_pretraining.report"]
  assert len([a for a in commands[-1] if a.startswith("gs://b/x/finetune/")]) == 42

  commands, text = _dry_run("paper_tables.py", "--table=2", *common, "--stats_sources=set,lime",
                            "--downstream=squad", "--seeds=1,2")
  assert "36 finetuning runs" in text  # 2 sources x 9 schemes x 2 seeds
  assert "gin/init/per_param_grouping___init_scale.gin" in text and "--gin.SEED=2" in text

  commands, text = _dry_run("paper_tables.py", "--table=3", *common, "--values=0.2,-0.4")
  assert "12 finetuning runs" in text and "PRE_ATTN_LN_VALUE=-0.4" in text


def test_mini_table1_driver_runs_end_to_end_at_toy_size(tmp_path):
  import mini_table1  # pylint: disable=import-outside-toplevel
  out = tmp_path / "mini"
  assert mini_table1.main(["--preset=toy", f"--output_dir={out}", "--seeds=1"]) == 0
  text = (out / "report" / "report.md").read_text()
  for label in ("random", "set", "natural", "stats_mean_std(set)", "stats_scale(set)"):
    assert f"| {label} |" in text
  assert (out / "finetune" / "stats_scale_set" / "seed_1" / "label.txt").read_text() == \
      "stats_scale(set)"
  # The statistics runs drew their initialisation from the Set model's checkpoint.
  config = (out / "finetune" / "stats_scale_set" / "seed_1" / "config.gin").read_text()
  assert "per_param_grouping___init_scale" in config and str(out / "pretrain" / "set") in config
