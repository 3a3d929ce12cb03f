"""When to stop for a preemption or an interrupt, agreed by every process of a run.

The training loop calls `should_stop(step)` after every finished step, on every process, with the
same step; when it returns True the loop saves that step's checkpoint and exits.

  * One process: `install()` replaces the default handlers of SIGTERM and SIGINT by one that only
    records the signal, so a signal never lands in the middle of a step; `should_stop` reports it.
    A second SIGINT (an impatient Ctrl-C) raises KeyboardInterrupt at once.
  * Several processes (`jax.distributed` is up): JAX's preemption notifier owns SIGTERM; a notice
    on any process starts a protocol that picks one step for all (the largest step any process has
    reported, plus one), and `multihost_utils.reached_preemption_sync_point(step)` is True on every
    process at exactly that step, as in t5x and orbax. SIGINT is routed into the same protocol by
    re-sending it to ourselves as SIGTERM, so Ctrl-C on one worker stops all of them at one step.

Exit codes for the caller: 128 + the signal number (143 for SIGTERM, 130 for SIGINT), the shell's
convention for a process ended by that signal, so schedulers treat it as a preemption.
"""
import logging
import os
import signal
import threading
from typing import Optional

_received: Optional[int] = None
_installed = False
_lock = threading.Lock()


def _multi_process() -> bool:
  import jax  # pylint: disable=import-outside-toplevel
  from jax._src import distributed  # pylint: disable=import-outside-toplevel
  return distributed.global_state.client is not None and jax.process_count() > 1


def _record(signum, frame):
  del frame
  global _received
  with _lock:
    if _received == signal.SIGINT and signum == signal.SIGINT:
      raise KeyboardInterrupt  # second Ctrl-C: the user wants out now
    first = _received is None
    _received = signum
  if first:
    logging.warning("Received %s: stopping after the current step with a checkpoint (Ctrl-C again "
                    "to stop at once).", signal.Signals(signum).name)


def _forward_to_notifier(signum, frame):
  del frame
  global _received
  _received = signum
  logging.warning("Received %s: asking every process to stop at one step.",
                  signal.Signals(signum).name)
  os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption notifier listens for SIGTERM


def install() -> None:
  """Takes over SIGTERM/SIGINT for the run (main thread only; call after jax.distributed)."""
  global _installed, _received
  if threading.current_thread() is not threading.main_thread():
    return
  _received = None
  if _multi_process():
    signal.signal(signal.SIGINT, _forward_to_notifier)  # SIGTERM stays with JAX's notifier
  else:
    signal.signal(signal.SIGTERM, _record)
    signal.signal(signal.SIGINT, _record)
  _installed = True


def uninstall() -> None:
  """Gives SIGTERM/SIGINT their default behaviour back (the end of a run)."""
  global _installed
  if not _installed or threading.current_thread() is not threading.main_thread():
    return
  if not _multi_process():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
  signal.signal(signal.SIGINT, signal.default_int_handler)
  _installed = False


def should_stop(step: int) -> bool:
  """True when the run must checkpoint `step` and exit; the same answer on every process.

  Call it after every finished step, on every process (the multi-process protocol counts on it).
  """
  if _multi_process():
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    return bool(multihost_utils.reached_preemption_sync_point(int(step)))
  return _received is not None


def received_signal() -> Optional[int]:
  """The signal that asked this process to stop (None if none, or if only a peer was asked)."""
  return _received


def exit_code(default_signal: int = signal.SIGTERM) -> int:
  """128 + the signal that stopped the run (143 for SIGTERM, 130 for SIGINT)."""
  return 128 + int(_received or default_signal)
