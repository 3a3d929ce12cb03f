"""Starts real multi-process JAX runs on this machine: N processes x D CPU devices, 127.0.0.1.

Processes are started the way the README says (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID); CPU collectives between processes go through gloo (jax's default on CPU).
"""
import os
import socket
import subprocess
import sys
from typing import List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def environment(devices: int, **extra) -> dict:
  env = dict(os.environ)
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([REPO, TESTS]))
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(name, None)
  env.update({k: str(v) for k, v in extra.items()})
  return env


def launch(command: Sequence[str], processes: int, devices: int, **extra_env) -> List[subprocess.Popen]:
  """Starts `python <command>` once per process; stdout/stderr are pipes (text)."""
  port = free_port()
  procs = []
  for index in range(processes):
    env = environment(devices, **extra_env)
    if processes > 1:
      env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(processes),
                 JAX_PROCESS_ID=str(index))
    procs.append(subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  return procs


def wait_all(procs, timeout: float):
  """[(returncode, stdout, stderr)] of every process; kills all of them on a timeout."""
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)
      results.append((p.returncode, out, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.communicate()
  return results
