"""Ctrl-C, SIGTERM and preemption notices, turned into a stop between two training steps.

A signal never interrupts a step, an evaluation or a save: the handler only records it, and the
training loop asks `should_stop(step)` before it takes the next batch. So the state that gets
saved is always a finished step, with the data position of exactly that step, and no donated
(already freed) array is ever touched.

One process: SIGINT and SIGTERM set the flag. Several processes (`jax.distributed`): JAX's
preemption notifier owns SIGTERM and tells every process; `reached_preemption_sync_point(step)`
then turns true at the same step everywhere, so all of them save that step. A Ctrl-C on one
process is forwarded to that notifier as a SIGTERM, for the same reason.
"""
import contextlib
import logging
import signal
from typing import Optional

import jax
from jax.experimental import multihost_utils

# The shell convention (128 + signal number), documented in the README.
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class TrainingInterrupted(Exception):
  """Training stopped early on a signal, after saving the checkpoint of the last finished step."""

  def __init__(self, signal_name: str, step: int, checkpoint: str):
    super().__init__(f"Stopped by {signal_name} at step {step}; saved {checkpoint}. Rerun the "
                     "same command to resume.")
    self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint

  @property
  def exit_code(self) -> int:
    return EXIT_CODES.get(self.signal_name, 1)


class StopRequests:
  """Records SIGINT/SIGTERM while installed; `should_stop(step)` says when to stop."""

  def __init__(self):
    self.received: Optional[str] = None
    self._previous = {}
    self._multi_process = jax.process_count() > 1

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.received is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: the user wants out now
    self.received = name
    logging.warning("%s received: finishing the current step, then saving a checkpoint "
                    "(Ctrl-C again to quit without saving).", name)
    if self._multi_process and signum == signal.SIGINT:
      signal.raise_signal(signal.SIGTERM)  # to JAX's notifier, which tells every process

  def install(self) -> None:
    signums = [signal.SIGINT] if self._multi_process else [signal.SIGINT, signal.SIGTERM]
    for signum in signums:
      self._previous[signum] = signal.signal(signum, self._handle)

  def uninstall(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def should_stop(self, step: int) -> Optional[str]:
    """The signal's name when training should stop after `step`, else None.

    Call it at every step: with several processes the sync point must be polled each step.
    """
    if self._multi_process and multihost_utils.reached_preemption_sync_point(step):
      return self.received or "SIGTERM"
    return None if self._multi_process else self.received


@contextlib.contextmanager
def stop_requests():
  """Installs the handlers for the duration of a training loop (main thread only)."""
  requests = StopRequests()
  try:
    requests.install()
  except ValueError:  # not the main thread: signals stay with whoever owns them
    logging.info("Not on the main thread: SIGINT/SIGTERM are not turned into checkpoints.")
  try:
    yield requests
  finally:
    requests.uninstall()
