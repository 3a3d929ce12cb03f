"""Generates synthetic examples in worker processes, so a host's cores share the Python work.

A synthetic example is a pure function of (task, seed, split, index), so a block of indices can be
generated in any process and the stream does not depend on where. Generation is pure Python and
holds the GIL, so threads would not help; worker processes do. The source keeps blocks in order
(tf.data's deterministic parallel map), so any worker count yields the same stream as one process.

Workers are started with `spawn` (never `fork`: the parent runs TensorFlow and JAX threads), once
per resolved task configuration, and receive that configuration once (cloudpickle: generators are
often closures). A configuration that cannot be pickled is generated in this process instead.
"""
import atexit
import concurrent.futures
import logging
import multiprocessing
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import cloudpickle
import gin

# With fewer cores the main process (tf.data, the train step) needs them all: auto means none.
MIN_CORES_FOR_AUTO_WORKERS = 3


@gin.configurable
def generation_workers(count: Optional[int] = None) -> int:
  """Worker processes per host that generate synthetic training examples.

  Gin: `generation_workers.count = 8`. None (default) is one per core available to this process
  when it has at least 3, else 0. 0 or 1 generates in this process. The stream of examples is the
  same for every count.
  """
  if count is None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores if (cores or 0) >= MIN_CORES_FOR_AUTO_WORKERS else 0
  if count < 0:
    raise ValueError(f"generation_workers(count={count}) must be None or at least 0.")
  return int(count)


_JOB: Any = None  # the job of this worker process (set by _start_worker)


def _start_worker(job_bytes: bytes) -> None:
  global _JOB  # pylint: disable=global-statement
  _JOB = cloudpickle.loads(job_bytes)


def _run(args) -> Any:
  return _JOB(*args)


class WorkerPool:
  """Runs `job(*args)` calls for one picklable job in `count` spawned processes."""

  def __init__(self, job: Callable, count: int):
    self.count = count
    self._executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=count, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(cloudpickle.dumps(job),))

  def __call__(self, *args) -> Any:
    return self._executor.submit(_run, args).result()

  def shutdown(self) -> None:
    self._executor.shutdown(wait=True, cancel_futures=True)


_POOLS: Dict[Tuple[int, int], Optional[WorkerPool]] = {}
_KEEP: Dict[Tuple[int, int], Any] = {}  # the owners of _POOLS' keys, so an id is never reused for another
_LOCK = threading.Lock()


def pool_for(owner: Any, make_job: Callable[[], Callable], count: int) -> Optional[WorkerPool]:
  """The worker pool of `owner` (one per owner, made on first use); None when count <= 1 or the
  job cannot be pickled (then the caller generates in this process)."""
  if count <= 1:
    return None
  with _LOCK:
    key = (id(owner), count)
    if key not in _POOLS:
      try:
        _POOLS[key] = WorkerPool(make_job(), count)
      except (TypeError, AttributeError, ValueError, cloudpickle.pickle.PicklingError) as e:
        logging.warning("Generating in this process: the task cannot be sent to worker "
                        "processes (%s).", e)
        _POOLS[key] = None
      _KEEP[key] = owner
    return _POOLS[key]


def shutdown() -> None:
  """Stops every worker pool (also run at exit)."""
  with _LOCK:
    pools: List[Optional[WorkerPool]] = list(_POOLS.values())
    _POOLS.clear()
    _KEEP.clear()
  for pool in pools:
    if pool is not None:
      pool.shutdown()


atexit.register(shutdown)
