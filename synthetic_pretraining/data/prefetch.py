"""Puts the next global batches on the devices in a background thread, and measures input waits.

The train loop asks `next(prefetcher)` for a batch that is already a global `jax.Array` on the
devices, so the step waits on the host only when the host is slower than the step. The time it
does wait is counted: `metrics()` returns the input-bound fraction of the time since the last call.

The data position stays exact: batches taken from the host iterator but not yet handed to the
train loop are saved with the iterator (as host arrays) and handed out first after a restore.
"""
import io
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from synthetic_pretraining import paths

PENDING_SUFFIX = ".pending.npz"
_END = object()
_NOTHING = object()


class DevicePrefetcher:
  """Wraps a host iterator with save(prefix)/restore(prefix) and yields device batches.

  Args:
    iterator: yields dicts of numpy arrays (this process's rows) and has save/restore(prefix),
      e.g. `data.CheckpointableIterator`.
    to_device: host batch -> device batch (e.g. `data.to_global_batch` with the partitioner).
    buffer_size: batches kept ready on the devices (2 as in flax's prefetch_to_device).
  """

  def __init__(self, iterator, to_device: Callable[[Mapping[str, np.ndarray]], Any],
               buffer_size: int = 2):
    if buffer_size < 1:
      raise ValueError(f"DevicePrefetcher buffer_size must be at least 1, got {buffer_size}.")
    self._iterator = iterator
    self._to_device = to_device
    self._ready: "queue.Queue" = queue.Queue(maxsize=buffer_size)
    self._lock = threading.Lock()  # held while the host iterator moves (and by save)
    self._pending_lock = threading.Lock()  # guards `_pending` and `_restored`; held only briefly
    self._pending: List[Dict[str, np.ndarray]] = []  # taken from the host, not yet handed out
    self._restored: List[Dict[str, np.ndarray]] = []  # pending batches of a restored checkpoint
    self._thread = None
    self._peeked = _NOTHING  # the first batch, taken off the queue by `peek`
    self._stop = threading.Event()
    self._wait_seconds = 0.0
    self._window_start = time.perf_counter()

  # Iteration ---------------------------------------------------------------------------------

  def __iter__(self):
    return self

  def __next__(self):
    start = time.perf_counter()
    item, self._peeked = self._get() if self._peeked is _NOTHING else self._peeked, _NOTHING
    if item is _END:
      self._ready.put(_END)  # later calls end too
      raise StopIteration
    if isinstance(item, BaseException):
      self._ready.put(item)  # later calls raise it too
      raise item
    with self._pending_lock:
      self._pending.pop(0)
    self._wait_seconds += time.perf_counter() - start
    return item

  def peek(self) -> None:
    """Waits until the first batch is ready, without handing it out: an error of the input
    pipeline's first batches (a malformed line of a task file) is raised here, so a run can
    check its data before it creates anything. Call before the first batch (after `restore`)."""
    if self._peeked is _NOTHING:
      self._peeked = self._get()
    if isinstance(self._peeked, BaseException):
      raise self._peeked

  def _get(self):
    if self._thread is None:
      self._thread = threading.Thread(target=self._produce, name="device-prefetch", daemon=True)
      self._thread.start()
    return self._ready.get()

  def _produce(self) -> None:
    try:
      while not self._stop.is_set():
        with self._lock:
          with self._pending_lock:
            host = self._restored.pop(0) if self._restored else None
          if host is None:
            try:
              host = next(self._iterator)
            except StopIteration:
              break
          with self._pending_lock:
            self._pending.append(host)
        self._put(self._to_device(host))
      self._put(_END)
    except BaseException as e:  # pylint: disable=broad-except
      self._put(e)  # raised in the train loop, where it belongs

  def _put(self, item) -> None:
    while not self._stop.is_set():
      try:
        self._ready.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def close(self) -> None:
    """Stops the background thread (batches it holds stay saveable)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join()

  # Input-bound fraction ----------------------------------------------------------------------

  def metrics(self, seconds: Optional[float] = None) -> Dict[str, float]:
    """Seconds the train loop waited for input since the last call, and their share of the time.

    `seconds`: the training time of that window (without evals and saves); default the wall
    time since the last call. Names follow t5x's 'timing/' metrics; `timing/input_wait_fraction`
    near 0 means the input pipeline keeps up, near 1 that the run is input-bound.
    """
    now = time.perf_counter()
    elapsed = max(seconds if seconds is not None else now - self._window_start, 1e-9)
    out = {"timing/input_wait_seconds": self._wait_seconds,
           "timing/input_wait_fraction": min(self._wait_seconds / elapsed, 1.0)}
    self._wait_seconds, self._window_start = 0.0, now
    return out

  # Checkpointing -----------------------------------------------------------------------------

  def save(self, prefix: str) -> None:
    """Saves the host iterator at `prefix` and the batches taken but not yet handed out beside it
    (`prefix` + '.pending.npz'), so a restore hands out exactly the next batch."""
    with self._lock:  # the host iterator does not move meanwhile
      self._iterator.save(prefix)
      with self._pending_lock:
        # Taken by the thread first, then restored ones it has not taken yet: hand-out order.
        pending = [dict(b) for b in self._pending + self._restored]
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{i}/{k}": v for i, batch in enumerate(pending) for k, v in batch.items()})
    paths.write_atomic(prefix + PENDING_SUFFIX, buffer.getvalue())

  def restore(self, prefix: str) -> None:
    """Restores the host iterator and the pending batches saved with it (before iterating)."""
    if self._thread is not None:
      raise RuntimeError("DevicePrefetcher.restore must be called before the first batch.")
    self._iterator.restore(prefix)
    self._restored = []
    if paths.exists(prefix + PENDING_SUFFIX):
      with np.load(io.BytesIO(paths.read_bytes(prefix + PENDING_SUFFIX))) as saved:
        batches: Dict[int, Dict[str, np.ndarray]] = {}
        for key in saved.files:
          i, name = key.split("/", 1)
          batches.setdefault(int(i), {})[name] = saved[key]
      self._restored = [batches[i] for i in sorted(batches)]
