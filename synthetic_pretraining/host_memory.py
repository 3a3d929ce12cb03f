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
other allocations have split up can make the heap grow by up to one more step's temporaries
(10 GB instead of 6 GB for T5 1.0 small above). The numbers computed are unchanged: only where
malloc finds memory changes.

`retain_freed_memory()` must run before any thread allocates (before jax or TensorFlow are
imported): an arena a thread already has stays with it. The training binary calls it first
thing when started as a program on a CPU-only machine; SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY=0
turns it off, =1 turns it on also where an accelerator plugin is installed.
"""
import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
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


def _has_accelerator_plugin() -> bool:
  """Whether jax may run on a TPU or GPU here (their hosts keep their default malloc)."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
  if platforms:
    return any(p.strip() != "cpu" for p in platforms.split(","))
  return (importlib.util.find_spec("libtpu") is not None
          or bool(importlib.metadata.entry_points(group="jax_plugins")))


def retain_freed_memory(force: bool = False) -> bool:
  """Tells glibc to keep freed memory in the process; returns whether it is now in effect.

  Does nothing (False) off glibc and, unless `force`, when the environment variable is '0' or,
  unless it is '1', where an accelerator plugin is installed. Idempotent.
  """
  global _applied
  setting = os.environ.get(ENV_VAR, "").strip()
  if _applied:
    return True
  if not force and (setting == "0" or (setting != "1" and _has_accelerator_plugin())):
    return False
  libc = _libc()
  if libc is None:
    return False
  # A trim threshold of -1 turns trimming off (mallopt(3)); each call returns 1 on success.
  _applied = all(libc.mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
  return _applied
