"""Real multi-process runs: 2 processes x 4 CPU devices on 127.0.0.1, started as the README says."""
import os
import re
import signal
import time

import numpy as np
import pytest
import toy_run
import toy_tasks
from records import metric_records
from multiprocess import launch, wait_all

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining.training import interrupts
from synthetic_pretraining import train

pytestmark = [pytest.mark.e2e, pytest.mark.multiprocess, pytest.mark.slow]

STEPS = 3


def _train_args(model_dir):
  # Trains on a synthetic task (index-addressable: the global batch does not depend on the
  # process count) and evaluates the toy task whose 97-example validation split is uneven.
  return [toy_run.CPU_MODEL, "--gin_file=gin/runs/pretrain.gin",
          "--gin_file=gin/runs/cpu_demo.gin", "--gin.MIXTURE_OR_TASK_NAME='set'",
          f"--gin.train_eval/data.DatasetConfig.mixture_or_task_name='{toy_tasks.UNEVEN_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE=['toy_tasks', 'synthetic_pretraining.tasks']",
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={STEPS}", "--gin.BATCH_SIZE=16",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 64}",
          "--gin.EVAL_STEPS=None",  # the whole 97-example validation split: 49 + 48 per process
          "--gin.EVAL_PERIOD=1000", "--gin.LOG_PERIOD=1", "--gin.CHECKPOINT_PERIOD=1000",
          *toy_run.NARROW]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The same run as 2 processes x 4 devices and as 1 process x 8 devices."""
  root = tmp_path_factory.mktemp("multiprocess")
  two, one = str(root / "two_processes"), str(root / "one_process")
  procs = launch(["-m", "synthetic_pretraining.train", *_train_args(two)], processes=2, devices=4)
  results = wait_all(procs, timeout=900)
  for rc, _, err in results:
    assert rc == 0, err[-3000:]
  assert train.main(_train_args(one)) == 0
  return two, one


def test_uneven_eval_split_neither_hangs_nor_miscounts(runs):
  two, one = runs
  (eval_two,), (eval_one,) = metric_records(two, "eval"), metric_records(one, "eval")
  # Every example of the split counted once: as many target tokens as one process sees.
  assert eval_two["num_tokens"] == eval_one["num_tokens"] > 0


def test_two_processes_train_like_one(runs):
  """2 x 4 devices see the same global batches as 1 x 8: same losses and final parameters."""
  two, one = runs
  losses = lambda d: [r["loss"] for r in metric_records(d, "train")]
  np.testing.assert_allclose(losses(two), losses(one), rtol=1e-5)
  _, params_two = inspect_checkpoint.load(orbax_format.step_dir(two, STEPS))
  _, params_one = inspect_checkpoint.load(orbax_format.step_dir(one, STEPS))
  for (name_two, x), (name_one, y) in zip(params_two, params_one):
    assert name_two == name_one
    # Equal up to summation order: the all-reduce of 2 x 4 adds the same terms in another order,
    # and a few optimizer steps carry the rounding on (1.6e-6 seen on an embedding of scale 3).
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=2e-6 * max(1.0, np.abs(y).max()),
                               err_msg=name_two)


def _wait_for_step(proc, step: int) -> None:
  for line in proc.stdout:
    if line.strip() == f"step {step}":
      return
  raise AssertionError(proc.stderr.read()[-3000:])


@pytest.mark.parametrize("victim", [0, 1])
def test_a_dead_process_takes_its_peer_down_within_the_heartbeat(victim):
  heartbeat = 5
  procs = launch(["tests/mp_worker.py", "steps"], processes=2, devices=1,
                 JAX_HEARTBEAT_TIMEOUT_SECONDS=heartbeat)
  _wait_for_step(procs[1 - victim], 3)
  procs[victim].kill()
  start = time.time()
  (rc, _, err), = wait_all([procs[1 - victim]], timeout=120)
  waited = time.time() - start
  procs[victim].wait()
  print(f"survivor of process {victim} exited after {waited:.1f} s (heartbeat {heartbeat} s)")
  assert rc != 0
  assert "another task died" in err or "unhealthy" in err, err[-3000:]
  assert waited < heartbeat + 15


# Our log lines (`startup.configure_logging`): a timestamp, a level, the message.
_OUR_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@pytest.mark.parametrize("victim", [1, 0])
def test_a_peer_killed_mid_training_ends_the_survivor_in_one_line(tmp_path, victim):
  """`python -m synthetic_pretraining.train` on 2 processes x 4 devices; once both train (process
  0 has logged step 2, and every step is a collective of both), one gets SIGKILL. The survivor
  stops within the heartbeat, and its raw stderr holds, besides our log lines of the steps
  before, exactly one line: ours, naming JAX_HEARTBEAT_TIMEOUT_SECONDS."""
  heartbeat = 5
  model_dir = str(tmp_path / "run")
  args = toy_run.args(model_dir, 100000, "--gin.LOG_PERIOD=1", "--gin.EVAL_PERIOD=100000",
                      "--gin.CHECKPOINT_PERIOD=100000")
  procs = launch(["-m", "synthetic_pretraining.train", *args], processes=2, devices=4,
                 JAX_HEARTBEAT_TIMEOUT_SECONDS=heartbeat)
  try:
    deadline = time.time() + 600
    while not [r for r in metric_records(model_dir, "train") if r["step"] >= 2]:
      assert time.time() < deadline and all(p.poll() is None for p in procs), [
          p.communicate(timeout=60)[1][-3000:] for p in procs if p.poll() is not None]
      time.sleep(0.2)
    procs[victim].kill()
    killed = time.time()
    survivor = procs[1 - victim]
    _, err = survivor.communicate(timeout=heartbeat + 115)
    waited = time.time() - killed
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.communicate()
  print(f"process {victim} killed: the survivor exited with {survivor.returncode} after "
        f"{waited:.1f} s (JAX_HEARTBEAT_TIMEOUT_SECONDS={heartbeat})")
  ours = [line for line in err.splitlines() if not _OUR_LOG_LINE.match(line)]
  assert survivor.returncode != 0, err[-3000:]
  assert len(ours) == 1, err[-3000:]
  assert ours[0].startswith("error: another process of this run died") and (
      f"JAX_HEARTBEAT_TIMEOUT_SECONDS={heartbeat} s" in ours[0]), err[-3000:]
  assert err.splitlines()[-1] == ours[0], err[-3000:]
  assert waited < heartbeat + 60, waited


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_one_process_stops_both_at_one_step(signum):
  procs = launch(["tests/mp_worker.py", "steps", "--preemption"], processes=2, devices=1)
  _wait_for_step(procs[1], 3)
  procs[1].send_signal(signum)
  results = wait_all(procs, timeout=120)
  stops = []
  for rc, out, err in results:
    assert rc == 128 + signal.SIGTERM or rc == 128 + signum, err[-3000:]
    stops.append([l for l in out.splitlines() if l.startswith("stopped at ")])
  assert len(stops[0]) == 1 and stops[0] == stops[1]
  assert int(stops[0][0].split()[-1]) > 3


def test_one_process_stops_after_the_step_with_the_signal_code():
  stops = interrupts.StopRequests()
  stops.install()
  try:
    assert stops.should_stop(1) is None
    os.kill(os.getpid(), signal.SIGTERM)  # handled between bytecodes: by the next line
    assert stops.should_stop(2) == "SIGTERM" and interrupts.EXIT_CODES["SIGTERM"] == 143
  finally:
    stops.uninstall()
  stops = interrupts.StopRequests()
  stops.install()
  try:
    os.kill(os.getpid(), signal.SIGINT)
    assert stops.should_stop(3) == "SIGINT" and interrupts.EXIT_CODES["SIGINT"] == 130
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)
  finally:
    stops.uninstall()
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
