"""One MODEL_DIR, one writer: a lock file naming the run that owns a MODEL_DIR.

Two runs writing one MODEL_DIR delete each other's checkpoints and interleave metrics.jsonl, so
process 0 of a run takes `MODEL_DIR/run.lock` before writing anything and a second run refuses
with one line naming the owner. The file is JSON: host, pid, a random token, the start time and a
heartbeat time that a daemon thread renews every `lease_seconds / 3`.

Semantics:
  * Local disk: the lock is created with O_CREAT|O_EXCL, so of two runs starting together exactly
    one gets it. A lock whose heartbeat is older than `lease_seconds` is stale whatever its pid
    names now (after a VM restart pids start over, so an unrelated live process may carry the
    old owner's pid); a lock whose owner is on this host and whose pid is dead is stale at once.
  * Object stores (gs://, ...): there is no create-if-absent through the path layer, so the lock is
    a lease: write our token, wait `settle_seconds`, read it back; the run whose token is there
    holds it (last writer wins; the other refuses). A lease is stale once its heartbeat is older
    than `lease_seconds`, or at once when its owner ran on this host and its pid is dead. Two
    runs starting within the settle time of each other can both read their own token only if the
    store's read-after-write is slower than that; GCS is strongly consistent, so this does not
    happen there.
  * A stale lock is taken over with a warning. The lock is removed when the run ends (also on
    exceptions); a SIGKILLed run leaves it behind, stale, for the next run to take over.
"""
import atexit
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Optional

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.training import run_dir

LOCK_NAME = run_dir.LOCK


class RunLockError(errors.UsageError, RuntimeError):
  """MODEL_DIR is held by another live run."""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by another user
    return True
  return True


class RunLock:
  """The lock of one MODEL_DIR. Use `acquire()`/`release()` or as a context manager."""

  def __init__(self, model_dir: paths.PathLike, lease_seconds: float = 120.0,
               settle_seconds: float = 2.0):
    self.model_dir = paths.as_str(model_dir)
    self.path = paths.join(self.model_dir, LOCK_NAME)
    self.lease_seconds = float(lease_seconds)
    self.settle_seconds = float(settle_seconds)
    self.token = uuid.uuid4().hex
    self.lost = False  # set by the heartbeat if another run took the lock over
    self._record = None
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  # ------------------------------------------------------------------ the lock file
  def _new_record(self) -> dict:
    now = time.time()
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
            "started": now, "heartbeat": now, "lease_seconds": self.lease_seconds}

  def read(self) -> Optional[dict]:
    """The current lock record, None if there is none; {} if it cannot be parsed."""
    try:
      text = paths.read_text(self.path)
    except (FileNotFoundError, OSError):
      return None if not paths.exists(self.path) else {}
    try:
      record = json.loads(text)
    except ValueError:
      return {}
    return record if isinstance(record, dict) else {}

  def stale_reason(self, record: dict) -> Optional[str]:
    """Why `record`'s owner is gone (None: it is alive)."""
    if not record:
      # A half-written or unreadable lock: its writer died mid-write or it is not ours.
      age = time.time() - _mtime(self.path)
      return None if age < self.lease_seconds else "unreadable and older than the lease"
    host, pid = record.get("host"), int(record.get("pid", -1))
    age = time.time() - float(record.get("heartbeat", 0))
    lease = float(record.get("lease_seconds", self.lease_seconds))
    if age > lease:
      # Whatever the pid names now: after a VM restart pids start over, and an unrelated live
      # process may carry the old owner's pid; a live owner renews its heartbeat every lease/3.
      return f"its heartbeat is {age:.0f} s old (lease {lease:.0f} s)"
    if host == socket.gethostname() and not _pid_alive(pid):
      # Our own host can tell a dead owner at once, also for a lock in a bucket (a killed run
      # restarted on the same VM need not wait out the lease).
      return f"process {pid} on {host} is not running"
    return None

  def _describe(self, record: dict) -> str:
    if not record:
      return f"an unreadable lock {self.path}"
    return (f"process {record.get('pid')} on host {record.get('host')} (lock {self.path}, "
            f"heartbeat {time.time() - float(record.get('heartbeat', 0)):.0f} s ago)")

  def _create_exclusive(self) -> bool:
    """Writes our record if no lock exists; False if one does."""
    self._record = self._new_record()
    content = json.dumps(self._record)
    if paths.is_remote(self.path):
      if paths.exists(self.path):
        return False
      paths.write_atomic(self.path, content)
      time.sleep(self.settle_seconds)
      return (self.read() or {}).get("token") == self.token
    paths.makedirs(self.model_dir)
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError as e:
      if e.errno == errno.EEXIST:
        return False
      raise
    with os.fdopen(fd, "w") as f:
      f.write(content)
    return True

  def _in_use(self, record: dict) -> "RunLockError":
    return RunLockError(
        f"MODEL_DIR {self.model_dir} is in use by {self._describe(record)}; wait for that run "
        f"to end or choose another MODEL_DIR (delete {self.path} only if that run is gone).")

  # ------------------------------------------------------------------ public
  def check_free(self) -> None:
    """Raises `RunLockError` if a live run (not an earlier one of this process) holds the lock;
    reads only, so a run can refuse before it reads its data or creates anything."""
    record = self.read()
    if record and record.get("token") not in {l.token for l in _held} and \
        self.stale_reason(record) is None:
      raise self._in_use(record)

  def acquire(self) -> "RunLock":
    """Takes the lock, taking over a stale one; raises `RunLockError` if a live run holds it."""
    for _ in range(3):  # a takeover can race with another run's; retry a little
      if self._create_exclusive():
        self._start_heartbeat()
        atexit.register(self.release)
        _held.append(self)
        return self
      record = self.read()
      if record is None:
        continue  # released between our attempt and the read
      if record.get("token") == self.token:
        continue
      earlier = [l for l in _held if l.token == record.get("token")]
      if earlier:
        # An earlier run in this very process that was not released (trainer.train called
        # directly, not through a binary): it has ended, since this process is here.
        earlier[0].release()
        continue
      reason = self.stale_reason(record)
      if reason is None:
        raise self._in_use(record)
      logging.warning("Taking over the stale lock of MODEL_DIR %s: %s.", self.model_dir, reason)
      if self.read() == record:  # still the same stale owner: remove it
        try:
          paths.as_path(self.path).unlink()
        except FileNotFoundError:
          pass
    raise RunLockError(f"Could not take the lock {self.path}: other runs keep taking it.")

  def release(self) -> None:
    """Stops the heartbeat and removes the lock if it is still ours."""
    if self in _held:
      _held.remove(self)
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
      self._thread = None
    if self._record is not None and (self.read() or {}).get("token") == self.token:
      try:
        paths.as_path(self.path).unlink()
      except FileNotFoundError:
        pass
    self._record = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()

  # ------------------------------------------------------------------ heartbeat
  def _start_heartbeat(self) -> None:
    self._stop.clear()
    self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(self.lease_seconds / 3):
      try:
        current = self.read() or {}
        if current.get("token") != self.token:
          self.lost = True
          logging.error("The lock %s was taken over by %s; this run no longer owns MODEL_DIR.",
                        self.path, self._describe(current))
          return
        self._record["heartbeat"] = time.time()
        paths.write_atomic(self.path, json.dumps(self._record))
      except OSError as e:  # a transient storage error: try again at the next beat
        logging.warning("Could not renew the lock %s: %s", self.path, e)


_held = []  # locks this process holds, released by `release_all` when a binary's main returns


def release_all() -> None:
  """Releases every lock this process still holds (the end of a binary, also after an error)."""
  for lock in list(_held):
    lock.release()


def _mtime(path: str) -> float:
  try:
    return paths.as_path(path).stat().mtime
  except (OSError, AttributeError):
    return 0.0


def check_free(model_dir: paths.PathLike, **kwargs) -> None:
  """Process 0 refuses a MODEL_DIR that a live run holds (`RunLock.check_free`); creates nothing."""
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_index() == 0:
    RunLock(model_dir, **kwargs).check_free()


def acquire(model_dir: paths.PathLike, **kwargs) -> Optional[RunLock]:
  """Process 0 takes MODEL_DIR's lock (returned; call `release()` at the end); others get None."""
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_index() != 0:
    return None
  return RunLock(model_dir, **kwargs).acquire()
