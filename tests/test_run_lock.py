"""One MODEL_DIR, one writer: real processes holding, refusing and taking over the lock."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from synthetic_pretraining.training import run_lock

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A holder takes the lock, says so, and sleeps until killed; a contender tries once.
_HOLD = """
import sys, time
from synthetic_pretraining.training import run_lock
lock = run_lock.RunLock(sys.argv[1], lease_seconds=float(sys.argv[2])).acquire()
print("held", flush=True)
time.sleep(600)
"""
_TRY = """
import sys
from synthetic_pretraining.training import run_lock

try:
  run_lock.RunLock(sys.argv[1]).acquire()
except run_lock.RunLockError as e:
  print(f"error: {e}", file=sys.stderr)
  sys.exit(1)
print("acquired")
"""


def _python(code, *args, **kwargs):
  return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _start_holder(model_dir, lease=120):
  holder = _python(_HOLD, model_dir, lease)
  assert holder.stdout.readline().strip() == "held", holder.stderr.read()
  return holder


def test_second_writer_is_refused_with_one_line(tmp_path):
  model_dir = tmp_path / "run"
  holder = _start_holder(model_dir)
  try:
    contender = _python(_TRY, model_dir)
    out, err = contender.communicate(timeout=60)
    assert contender.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"process {holder.pid} on host {socket.gethostname()}" in lines[0]
    assert str(model_dir) in lines[0]
  finally:
    holder.kill()
    holder.wait()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
  model_dir = tmp_path / "run"
  holder = _start_holder(model_dir)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert os.path.exists(model_dir / run_lock.LOCK_NAME)  # SIGKILL leaves it behind
  contender = _python(_TRY, model_dir)
  out, err = contender.communicate(timeout=60)
  assert contender.returncode == 0, err
  assert out.strip() == "acquired"
  assert f"process {holder.pid} on {socket.gethostname()} is not running" in err


def test_release_removes_the_lock_and_a_new_run_gets_it(tmp_path):
  lock = run_lock.RunLock(tmp_path / "run").acquire()
  record = json.loads((tmp_path / "run" / run_lock.LOCK_NAME).read_text())
  assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
  lock.release()
  assert not (tmp_path / "run" / run_lock.LOCK_NAME).exists()
  with run_lock.RunLock(tmp_path / "run"):
    assert (tmp_path / "run" / run_lock.LOCK_NAME).exists()
  assert not (tmp_path / "run" / run_lock.LOCK_NAME).exists()


def _foreign_lock(model_dir, heartbeat_age):
  model_dir.mkdir(parents=True, exist_ok=True)
  record = {"host": "another-host", "pid": 1, "token": "x", "started": 0,
            "heartbeat": time.time() - heartbeat_age, "lease_seconds": 60}
  (model_dir / run_lock.LOCK_NAME).write_text(json.dumps(record))


def test_lease_of_another_host_holds_until_its_heartbeat_expires(tmp_path):
  _foreign_lock(tmp_path / "live", heartbeat_age=5)
  with pytest.raises(run_lock.RunLockError, match="another-host"):
    run_lock.RunLock(tmp_path / "live").acquire()
  _foreign_lock(tmp_path / "expired", heartbeat_age=600)
  lock = run_lock.RunLock(tmp_path / "expired").acquire()
  assert json.loads((tmp_path / "expired" / run_lock.LOCK_NAME).read_text())["token"] == lock.token
  lock.release()


def test_expired_heartbeat_is_stale_even_if_its_pid_now_names_a_live_process(tmp_path):
  """After a VM restart pids start over: the old owner's pid may belong to an unrelated live
  process on the same host. A heartbeat 10,010 s old (lease 120 s) is stale all the same."""
  unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  try:
    model_dir = tmp_path / "restarted"
    model_dir.mkdir()
    record = {"host": socket.gethostname(), "pid": unrelated.pid, "token": "old", "started": 0,
              "heartbeat": time.time() - 10_010, "lease_seconds": 120}
    (model_dir / run_lock.LOCK_NAME).write_text(json.dumps(record))
    lock = run_lock.RunLock(model_dir).acquire()
    assert json.loads((model_dir / run_lock.LOCK_NAME).read_text())["token"] == lock.token
    lock.release()
    # The same live pid with a fresh heartbeat is a live owner: refused.
    record["heartbeat"] = time.time()
    (model_dir / run_lock.LOCK_NAME).write_text(json.dumps(record))
    with pytest.raises(run_lock.RunLockError, match=f"process {unrelated.pid}"):
      run_lock.RunLock(model_dir).acquire()
  finally:
    unrelated.kill()
    unrelated.wait()


def test_heartbeat_renews_the_lease(tmp_path):
  lock = run_lock.RunLock(tmp_path / "run", lease_seconds=0.3).acquire()
  try:
    first = json.loads((tmp_path / "run" / run_lock.LOCK_NAME).read_text())["heartbeat"]
    time.sleep(0.5)
    later = json.loads((tmp_path / "run" / run_lock.LOCK_NAME).read_text())["heartbeat"]
    assert later > first and not lock.lost
  finally:
    lock.release()


def test_train_refuses_a_model_dir_in_use_in_one_line(tmp_path, capsys):
  import toy_run  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  model_dir = tmp_path / "run"
  holder = _start_holder(model_dir)
  try:
    args = toy_run.args(model_dir, 2, model=toy_run.NARROW, lengths=(12, 12), batch=16)
    assert train.main(args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"process {holder.pid} on host" in lines[0], lines
    assert os.listdir(model_dir) == [run_lock.LOCK_NAME]  # the other run wrote nothing
  finally:
    holder.kill()
    holder.wait()


def test_an_unreleased_lock_of_this_process_is_taken_by_its_next_run(tmp_path):
  first = run_lock.RunLock(tmp_path / "run").acquire()  # never released (a direct trainer call)
  second = run_lock.RunLock(tmp_path / "run").acquire()
  assert json.loads((tmp_path / "run" / run_lock.LOCK_NAME).read_text())["token"] == second.token
  run_lock.release_all()
  assert not (tmp_path / "run" / run_lock.LOCK_NAME).exists() and first.token != second.token
