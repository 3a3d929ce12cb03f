"""Keeps the host memory that XLA:CPU frees after a step, so the next step need not fault it in.

XLA:CPU allocates a step's temporaries as one block (4.2 GB for T5 1.0 small at batch 8,
lengths 512/128) and frees it when the step ends. glibc serves a block that large with mmap and
returns it to the kernel on free, so every step page-faults its whole working set in again and
the kernel zeroes it: about 1.3 million page faults and 2.5-8 CPU-seconds of system time per
step of that model on a 2-core machine (benchmarks/train_throughput.py prints both). Three glibc
settings keep freed memory in the process instead (`mallopt`, the same knobs as the
GLIBC_TUNABLES `glibc.malloc.*`): one arena for every thread (a thread's own arena falls back to
mmap for a block that large even when mmap is turned off, and unmaps it on free), no mmap for
large blocks, and no trimming of the heap's top.

Kept without a bound, the heap grows while it settles (freed blocks that other allocations split
up): for T5 1.0 small, 6.1 GB resident in one run, 10 GB and 14.2 GB in others, against 6.0 GB
with glibc's default. So the modes, chosen by SYNTHETIC_PRETRAINING_HOST_MEMORY:

  pooled  (the default where JAX computes on the CPU: no accelerator device files, or
          JAX_PLATFORMS=cpu) the three settings, and a cap (`after_step`, called after each training
          step): the compiler's freed memory goes back after the first step, and whenever the
          resident set exceeds CAP_RATIO times the peak of the first SETTLE_STEPS steps,
          `malloc_trim` hands every free page back to the kernel (the next step faults its
          temporaries in once, as glibc's default does every step);
  retain  the three settings, no cap (the former opt-in, SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY=1
          still selects it);
  glibc   glibc's own behaviour (the default on GPU and TPU hosts, where a step's temporaries are
          on the device and one arena would only make the input pipeline's threads wait on each
          other; SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY=0 still selects it).

The numbers computed are the same in every mode: only where malloc finds memory changes.
`configure()` must run before any thread allocates (before jax or TensorFlow are imported): an
arena a thread already has stays with it. The training binary calls it first thing when started
as a program; the benchmarks call it with the mode of the variant they measure.
"""
import ctypes
import ctypes.util
import glob
import logging
import os
import sys
from typing import Optional

from synthetic_pretraining import errors

ENV_VAR = "SYNTHETIC_PRETRAINING_HOST_MEMORY"
LEGACY_ENV_VAR = "SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY"  # '1': retain, '0': glibc
MODES = ("pooled", "retain", "glibc")
# Device files of accelerators JAX would use instead of the CPU (NVIDIA GPUs, TPUs).
ACCELERATOR_FILES = ("/dev/nvidia[0-9]*", "/dev/accel[0-9]*", "/dev/vfio/[0-9]*")
# The cap: how far above its settled peak the resident set may grow before free pages go back.
CAP_RATIO = 1.2
SETTLE_STEPS = 3
# mallopt parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8

_mode = "glibc"  # the mode in effect in this process
_steps = 0
_cap_bytes: Optional[int] = None
trims = 0  # how many times the cap handed memory back (the benchmarks print it)


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


def requested_mode() -> str:
  """The mode the environment asks for (SYNTHETIC_PRETRAINING_HOST_MEMORY, then the legacy
  switch), else the default; an unknown value is a one-line error."""
  value = os.environ.get(ENV_VAR, "").strip().lower()
  if value:
    if value not in MODES:
      raise errors.UsageError(f"{ENV_VAR}={value!r}: expected one of {', '.join(MODES)}")
    return value
  legacy = os.environ.get(LEGACY_ENV_VAR, "").strip()
  if legacy in ("0", "1"):
    return "retain" if legacy == "1" else "glibc"
  return default_mode()


def default_mode() -> str:
  """'pooled' where JAX will compute on the CPU, else 'glibc' (decided before jax is imported:
  from JAX_PLATFORMS, else from the accelerators' device files)."""
  platforms = [p.strip() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
  if platforms:
    return "pooled" if platforms[0] == "cpu" else "glibc"
  on_accelerator = any(glob.glob(pattern) for pattern in ACCELERATOR_FILES)
  return "glibc" if on_accelerator else "pooled"


def configure(mode: Optional[str] = None) -> str:
  """Puts `mode` (default: the environment's) in effect; returns the mode now in effect.

  Off glibc nothing changes ('glibc'). An unknown mode in the environment changes nothing here
  (the binary reports it in one line: `requested_mode`). Once malloc keeps memory it goes on
  doing so (its settings cannot be taken back safely once memory was handed out under them);
  only the cap comes and goes between 'pooled' and 'retain'.
  """
  global _mode
  if mode is None:
    try:
      mode = requested_mode()
    except ValueError:
      return _mode
  if mode not in MODES:
    raise ValueError(f"host memory mode {mode!r}: expected one of {MODES}")
  if _mode != "glibc":
    _mode = mode if mode != "glibc" else _mode
    return _mode
  libc = _libc() if mode != "glibc" else None
  # A trim threshold of -1 turns trimming off (mallopt(3)); each call returns 1 on success.
  if libc is not None and all(libc.mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))):
    _mode = mode
  return _mode


def retain_freed_memory(force: bool = False) -> bool:
  """The former switch: 'retain' when `force`, else the environment's mode; True when memory is
  now kept in the process."""
  return configure("retain" if force else None) != "glibc"


def mode() -> str:
  """The mode in effect in this process ('glibc' until `configure` changed it)."""
  return _mode


def _status_bytes(field: str) -> Optional[int]:
  """A `VmRSS`/`VmHWM` line of /proc/self/status in bytes, or None where there is none."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  return None


def resident_bytes() -> Optional[int]:
  """The process's resident set now (statm: one short read)."""
  try:
    with open("/proc/self/statm", encoding="ascii") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, IndexError):
    return None


def _trim() -> None:
  """Hands every free page of the heap back to the kernel (malloc_trim(3))."""
  global trims
  libc = _libc()
  if libc is not None:
    libc.malloc_trim(ctypes.c_size_t(0))
    trims += 1


def _reset_peak() -> bool:
  """Starts VmHWM again from the resident set now (Linux's clear_refs '5'); False where not."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def start_run() -> None:
  """A new training run in this process (the launchers run several): its cap is its own."""
  global _steps, _cap_bytes
  _steps, _cap_bytes = 0, None


def after_step() -> None:
  """Called after each training step is dispatched: in 'pooled' mode, keeps the resident set
  under its cap.

  After the first step (compiled, and running) the memory the compiler freed goes back, and the
  peak starts again, so the cap is measured on steps alone: CAP_RATIO times the peak of the
  steps up to SETTLE_STEPS (which, with steps in flight, includes their temporaries).
  """
  global _steps, _cap_bytes
  if _mode != "pooled":
    return
  _steps += 1
  if _steps == 1:
    _trim()
    _reset_peak()
    return
  if _cap_bytes is None:
    if _steps >= SETTLE_STEPS:
      peak = _status_bytes("VmHWM") or resident_bytes()
      _cap_bytes = int(CAP_RATIO * peak) if peak else -1
    return
  resident = resident_bytes()
  if _cap_bytes > 0 and resident is not None and resident > _cap_bytes:
    _trim()
    logging.debug("host memory: %.2f GB resident over the cap of %.2f GB; free pages returned",
                  resident / 1e9, _cap_bytes / 1e9)
