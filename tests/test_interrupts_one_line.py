"""A second Ctrl-C quits at once in one line of ours: a real `python -m` training process, real
signals, its raw stderr."""
import os
import signal
import subprocess
import sys
import time

import pytest
import toy_tasks

from synthetic_pretraining import cli

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_second_ctrl_c_quits_at_once_in_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
             XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  args = ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/pretrain.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
          "--gin.TRAIN_STEPS=100000", "--gin.BATCH_SIZE=16", "--gin.LOG_PERIOD=1",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 12, 'targets': 12}", "--gin.EVAL_PERIOD=100000",
          "--gin.CHECKPOINT_PERIOD=100000", "--gin.network.T5Config.emb_dim=16",
          "--gin.network.T5Config.mlp_dim=32", "--gin.network.T5Config.num_heads=2",
          "--gin.network.T5Config.head_dim=8"]
  process = subprocess.Popen([sys.executable, "-m", "synthetic_pretraining.train", *args],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  lines = []
  deadline = time.time() + 300
  while time.time() < deadline:  # until training runs (one log line per step)
    line = process.stderr.readline().decode()
    assert line, "".join(lines)[-3000:]
    lines.append(line)
    if " step " in line:
      break
  process.send_signal(signal.SIGINT)
  time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  _, rest = process.communicate(timeout=120)
  err = "".join(lines) + rest.decode()
  assert process.returncode == 130, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  # The first Ctrl-C asked for a save (its warning line); the second came while it was saving.
  assert err.strip().splitlines()[-1] == cli.INTERRUPTED, err[-3000:]
