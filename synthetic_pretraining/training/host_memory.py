"""Keeps the host memory that XLA:CPU frees after a step, so the next step need not fault it in.

XLA:CPU allocates a step's temporaries as one block (4.2 GB for T5 1.0 small at batch 8,
lengths 512/128) and frees it when the step ends. glibc serves a block that large with mmap and
returns it to the kernel on free, so every step page-faults its whole working set in again and
the kernel zeroes it: about 1.3 million page faults and 2.5-8 CPU-seconds of system time per
step of that model on a 2-core machine (benchmarks/train_throughput.py prints both). Three glibc
settings keep freed memory in the process instead (`mallopt`, the same knobs as the
GLIBC_TUNABLES `glibc.malloc.*`): one arena for every thread (XLA's worker threads would
otherwise get arenas of their own, which can only hand out large blocks through mmap), no mmap
for large blocks, and no trimming of the heap's top.

What it costs: the process keeps its high-water mark of host memory, and freed blocks that
other allocations have split up make the heap grow while it settles: for T5 1.0 small above,
6.1 GB resident in one run, 10 GB and 14.2 GB in others (against 6.0 GB with glibc's default),
and the steps that grow it page-fault more than a default step. The numbers computed are
unchanged: only where malloc finds memory changes. So it is opt-in.

`retain_freed_memory()` must run before any thread allocates (before jax or TensorFlow are
imported): an arena a thread already has stays with it. The training binary calls it first
thing when started as a program with SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY=1 in the
environment; the benchmarks call it with `force=True` for the variant they compare.
"""
import ctypes
import ctypes.util
import os
import sys

ENV_VAR = "SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY"
# mallopt parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_applied = False


def _libc():
  """glibc's shared library, or None (another C library, another system)."""
  if not sys.platform.startswith("linux"):
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement
  except (OSError, AttributeError):
    return None
  return libc


def retain_freed_memory(force: bool = False) -> bool:
  """Tells glibc to keep freed memory in the process; returns whether it is now in effect.

  Acts when `force` or the environment variable is '1'; does nothing (False) off glibc.
  Idempotent.
  """
  global _applied
  if _applied:
    return True
  if not force and os.environ.get(ENV_VAR, "").strip() != "1":
    return False
  libc = _libc()
  if libc is None:
    return False
  # A trim threshold of -1 turns trimming off (mallopt(3)); each call returns 1 on success.
  _applied = all(libc.mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
  return _applied
