"""host_memory: freed large blocks stay in the process, so touching them again faults no pages.

Each case runs in a fresh interpreter: the malloc settings are process-wide and must come before
any other thread allocates.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [pytest.mark.unit, pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="host_memory acts on glibc's malloc only")]

# Allocates and frees a 64 MB block (glibc would mmap it and unmap it on free), then counts the
# page faults of allocating and touching the same size again.
SCRIPT = """
import ctypes, resource, sys
from synthetic_pretraining.training import host_memory
applied = host_memory.retain_freed_memory(force=sys.argv[1] == "force")
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def allocate_touch_free(size=64 << 20):
  block = libc.malloc(size)
  ctypes.memset(block, 1, size)
  libc.free(block)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
allocate_touch_free()
before = faults()
allocate_touch_free()
print(applied, faults() - before)
"""

def _run(mode, env_value=None):
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop("SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY", None)
  if env_value is not None:
    env["SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY"] = env_value
  out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True,
                       text=True, check=True, cwd=ROOT)
  applied, faults = out.stdout.split()
  return applied == "True", int(faults)


def test_a_freed_block_is_reused_without_page_faults():
  applied, faults = _run("force")
  assert applied and faults < 1000  # 64 MB is 16,384 pages of 4 KB


def test_glibc_default_faults_the_block_in_again_unless_the_switch_is_on():
  for off in (None, "0"):
    applied, faults = _run("default", env_value=off)
    assert not applied and faults > 10000
  applied, faults = _run("default", env_value="1")
  assert applied and faults < 1000
