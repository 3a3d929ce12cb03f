"""Pieces of the training loop that know nothing of models: the metric window with its timing,
the timing metrics and the one progress reporter (the actions are in `actions`)."""
import logging
import sys
import time
from typing import Callable, Dict

import jax


class MetricWindow:
  """Metric sums of the steps since the last log record, and the compute time they took.

  Time is read after the window's results have been fetched, so it measures finished work, not
  dispatch; time spent in other actions (eval, checkpoints) and in compiling is left out.
  """

  def __init__(self, add: Callable, step: int):
    self._add, self.sums = add, None
    self.start_step, self._started, self._paused = step, time.perf_counter(), 0.0

  def add(self, sums) -> None:
    self.sums = self._add(self.sums, sums)

  def pause(self, seconds: float) -> None:
    """Leaves `seconds` (work that was not training) out of the window's time."""
    self._paused += seconds

  def fetch(self, step: int):
    """(host sums, steps, seconds of training) of the window ending at `step`."""
    sums = jax.device_get(self.sums)  # waits for the steps to finish
    seconds = max(time.perf_counter() - self._started - self._paused, 1e-9)
    return sums, step - self.start_step, seconds

  def reset(self, step: int) -> None:
    self.sums, self.start_step = None, step
    self._started, self._paused = time.perf_counter(), 0.0


def timing_metrics(steps: int, seconds: float, batch_size: int,
                   feature_lengths: Dict[str, int]) -> Dict[str, float]:
  """t5x's `timing/*` rates (and our tokens/s over inputs and targets) for a window."""
  return {
      "timing/steps_per_second": steps / seconds,
      "timing/seqs_per_second": steps * batch_size / seconds,
      "timing/target_tokens_per_second": steps * batch_size * feature_lengths["targets"] / seconds,
      "tokens_per_second": steps * batch_size * sum(feature_lengths.values()) / seconds,
  }


class Progress:
  """A tqdm bar on a terminal, else a log line per record (process 0 only)."""

  def __init__(self, total_steps: int, start: int):
    self.total_steps, self.bar, self._redirect = total_steps, None, None
    self.enabled = jax.process_index() == 0
    if self.enabled and sys.stderr.isatty():
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      from tqdm.contrib import logging as tqdm_logging  # pylint: disable=import-outside-toplevel
      self.bar = tqdm(total=total_steps, initial=start, unit="step", dynamic_ncols=True)
      # Log lines (evals, warnings) are written above the bar instead of through it.
      self._redirect = tqdm_logging.logging_redirect_tqdm()
      self._redirect.__enter__()

  def step(self) -> None:
    if self.bar is not None:
      self.bar.update(1)

  def record(self, step: int, values: Dict[str, float]) -> None:
    per_token = values["loss_per_nonpadding_target_token"]
    if self.bar is not None:
      self.bar.set_postfix(loss=f"{per_token:.3f}", acc=f"{values['accuracy']:.3f}",
                           tok_s=f"{values['tokens_per_second']:.0f}", refresh=False)
    elif self.enabled:
      logging.info("step %d/%d  loss/token %.4f  accuracy %.4f  %.0f tokens/s", step,
                   self.total_steps, per_token, values["accuracy"], values["tokens_per_second"])

  def close(self) -> None:
    if self._redirect is not None:
      self._redirect.__exit__(None, None, None)
      self._redirect = None
    if self.bar is not None:
      self.bar.close()
