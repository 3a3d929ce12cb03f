"""host_memory: freed large blocks stay in the process, so touching them again faults no pages,
and in the default ('pooled') mode the resident set is capped.

Each case runs in a fresh interpreter: the malloc settings are process-wide and must come before
any other thread allocates.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_VARS = ("SYNTHETIC_PRETRAINING_HOST_MEMORY", "SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY")

pytestmark = [pytest.mark.unit, pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="host_memory acts on glibc's malloc only")]

# Allocates and frees a 64 MB block (glibc would mmap it and unmap it on free) in a thread that
# has its own arena (as XLA's worker threads do), then counts the page faults of allocating and
# touching the same size again.
SCRIPT = """
import ctypes, resource, sys, threading
from synthetic_pretraining.training import host_memory
mode = host_memory.retain_freed_memory(force=True) if sys.argv[1] == "force" else (
    host_memory.configure(None if sys.argv[1] == "env" else sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def allocate_touch_free(size=64 << 20):
  block = libc.malloc(size)
  ctypes.memset(block, 1, size)
  libc.free(block)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counted = []
def work():
  small = [libc.malloc(1000) for _ in range(64)]  # the thread takes an arena
  allocate_touch_free()
  before = faults()
  allocate_touch_free()
  counted.append(faults() - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(host_memory.mode(), counted[0])
"""

# Three steps settle the cap at 1.2x their peak; then a freed block of twice that peak stays
# resident (kept memory) until the next step's check hands it back. The first step's check hands
# back what was freed before it (a compiler's memory): a freed block then is gone after it.
CAP_SCRIPT = """
import ctypes, sys
from synthetic_pretraining.training import host_memory
host_memory.configure(sys.argv[1])
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
compiler = libc.malloc(256 << 20)
ctypes.memset(compiler, 1, 256 << 20)
libc.free(compiler)
before_first = host_memory.resident_bytes()
host_memory.after_step()
after_first = host_memory.resident_bytes()
for _ in range(host_memory.SETTLE_STEPS - 1):
  host_memory.after_step()
peak = host_memory._status_bytes("VmHWM")
size = 2 * peak
block = libc.malloc(size)
ctypes.memset(block, 1, size)
libc.free(block)
kept = host_memory.resident_bytes()
host_memory.after_step()
print(before_first - after_first, peak, kept, host_memory.resident_bytes(), host_memory.trims)
"""


def _run(script, *args, env_value=None, legacy_value=None):
  env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
  env["PYTHONPATH"] = ROOT
  if env_value is not None:
    env[ENV_VARS[0]] = env_value
  if legacy_value is not None:
    env[ENV_VARS[1]] = legacy_value
  out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                       text=True, check=True, cwd=ROOT)
  return out.stdout.split()


def test_accelerator_hosts_keep_glibcs_malloc(monkeypatch):
  from synthetic_pretraining.training import host_memory  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
  assert host_memory.default_mode() == "glibc"
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert host_memory.default_mode() == "pooled"
  monkeypatch.delenv("JAX_PLATFORMS")
  monkeypatch.setattr(host_memory, "ACCELERATOR_FILES", (os.path.join(ROOT, "setup.py"),))
  assert host_memory.default_mode() == "glibc"
  monkeypatch.setattr(host_memory, "ACCELERATOR_FILES", (os.path.join(ROOT, "no_such_*"),))
  assert host_memory.default_mode() == "pooled"


def _mode_and_faults(arg, **env):
  mode, faults = _run(SCRIPT, arg, **env)
  return mode, int(faults)


def test_a_freed_block_is_reused_without_page_faults():
  for arg in ("force", "pooled", "retain"):
    mode, faults = _mode_and_faults(arg)
    assert mode == ("retain" if arg == "force" else arg) and faults < 1000, (arg, faults)
  # 64 MB is 16,384 pages of 4 KB: glibc's own malloc faults them all in again.
  mode, faults = _mode_and_faults("glibc")
  assert mode == "glibc" and faults > 10000


def test_the_environment_picks_the_mode_pooled_by_default_on_the_cpu():
  assert _mode_and_faults("env")[0] == "pooled"  # JAX_PLATFORMS=cpu (tests/conftest.py)
  assert _mode_and_faults("env", env_value="glibc")[0] == "glibc"
  assert _mode_and_faults("env", env_value="retain")[0] == "retain"
  # The former switch still works, and the new variable wins over it.
  assert _mode_and_faults("env", legacy_value="0")[0] == "glibc"
  assert _mode_and_faults("env", legacy_value="1")[0] == "retain"
  assert _mode_and_faults("env", env_value="pooled", legacy_value="0")[0] == "pooled"
  # An unknown value changes nothing here: the binary reports it (tests/test_bad_inputs.py).
  assert _mode_and_faults("env", env_value="lots")[0] == "glibc"


def test_pooled_mode_hands_memory_back_over_its_cap_and_retain_does_not():
  returned, peak, kept, after, trims = map(int, _run(CAP_SCRIPT, "pooled"))
  assert returned > 200 << 20 and peak < 200 << 20, (returned, peak)  # the peak starts again
  assert kept > 1.2 * peak and after < 1.2 * peak and trims == 2, (peak, kept, after)
  returned, peak, kept, after, trims = map(int, _run(CAP_SCRIPT, "retain"))
  assert returned < 1 << 20 and peak > 256 << 20, (returned, peak)
  assert kept > 1.2 * peak and after > 1.2 * peak and trims == 0, (peak, kept, after)
