"""Starting JAX's multi-controller runtime from the environment, with one-line errors.

On a Cloud TPU VM pod slice `jax.distributed.initialize()` finds the other workers itself. Elsewhere
every process is started with

  JAX_COORDINATOR_ADDRESS=host:port  (process 0's address; it runs the coordinator)
  JAX_NUM_PROCESSES=N  JAX_PROCESS_ID=i  (0 <= i < N)

jax itself reads only the coordinator address from the environment, so the count and the index are
read and checked here. `JAX_HEARTBEAT_TIMEOUT_SECONDS` (ours; jax's default 100) is how long the
others wait for a process that stopped answering before they exit: a process that dies takes the
run down within that time instead of leaving its peers blocked in a collective. The survivors are
ended by the runtime itself (a C++ fatal error: "Terminating process because the JAX distributed
service detected fatal errors ... another task died", then a native stack trace): the client's
`missed_heartbeat_callback` that could replace it with one line cannot be called from Python in
this jaxlib (it aborts with std::bad_cast). So the binaries' quiet start (`startup.py`) reads
the runtime's fatal line on descriptor 2 and prints one line of ours instead, naming
JAX_HEARTBEAT_TIMEOUT_SECONDS, and drops the native stack trace (`--verbose` keeps them).
"""
import logging
import os

from synthetic_pretraining import errors

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 100  # jax's own default


class DistributedError(errors.UsageError, RuntimeError):
  """The processes of a multi-process run could not be connected."""


def _int_env(name: str, default=None, minimum: int = 0):
  text = os.environ.get(name)
  if text is None or text == "":
    return default
  try:
    value = int(text)
  except ValueError:
    raise errors.UsageError(f"{name}={text!r} must be an integer.") from None
  if value < minimum:
    raise errors.UsageError(f"{name}={value} must be at least {minimum}.")
  return value


def settings_from_environment() -> dict:
  """Arguments for `jax.distributed.initialize`, or {} for a single-process run.

  Raises a one-line `errors.UsageError` for an incomplete or inconsistent environment.
  """
  on_tpu_pod = os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0
  num_processes = _int_env("JAX_NUM_PROCESSES", minimum=1)
  process_id = _int_env("JAX_PROCESS_ID")
  coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  heartbeat = _int_env("JAX_HEARTBEAT_TIMEOUT_SECONDS", DEFAULT_HEARTBEAT_TIMEOUT_SECONDS, 1)
  if num_processes is None or num_processes == 1:
    if on_tpu_pod:  # the TPU cluster detection supplies everything
      return {"heartbeat_timeout_seconds": heartbeat}
    return {}
  missing = [name for name, value in zip(_ENV, (coordinator, num_processes, process_id))
             if value is None]
  if missing:
    raise errors.UsageError(f"JAX_NUM_PROCESSES={num_processes} also needs {', '.join(missing)} "
                         f"(set {', '.join(_ENV)} for every process).")
  if process_id >= num_processes:
    raise errors.UsageError(f"JAX_PROCESS_ID={process_id} must be below "
                         f"JAX_NUM_PROCESSES={num_processes}.")
  return {"coordinator_address": coordinator, "num_processes": num_processes,
          "process_id": process_id, "heartbeat_timeout_seconds": heartbeat}


def initialize_from_environment() -> bool:
  """Connects this process to the others when several run; True if it did."""
  settings = settings_from_environment()
  if not settings:
    return False
  import jax  # pylint: disable=import-outside-toplevel
  try:
    jax.distributed.initialize(**settings)
  except Exception as e:  # pylint: disable=broad-except
    # jax raises RuntimeError/ValueError/XlaRuntimeError with multi-line gRPC details.
    raise DistributedError(
        f"jax.distributed.initialize({', '.join(f'{k}={v!r}' for k, v in settings.items())}) "
        f"failed: {errors.one_line(e)}") from e
  logging.info("Process %d of %d connected (%d local, %d global devices).", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True
