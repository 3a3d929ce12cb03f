r"""Training binary: `python -m synthetic_pretraining.train --gin_file=... --gin.NAME=VALUE`.

Example (CPU, tiny model, the synthetic Set task):

  python -m synthetic_pretraining.train \
    --gin_file=gin/models/t5_1_0/tiny.gin --gin_file=gin/runs/pretrain.gin \
    --gin.MIXTURE_OR_TASK_NAME="'set'" --gin.MODEL_DIR="'runs/set'" --gin.TRAIN_STEPS=200

Running the same command again resumes from the latest checkpoint in MODEL_DIR. On several
processes (a Cloud TPU pod slice) every worker runs the same command; `jax.distributed` is
initialised from the environment.
"""
import logging
import os
import sys

import gin
import jax

# Registers every configurable that gin files may name.
from synthetic_pretraining import checkpoints
from synthetic_pretraining import data
from synthetic_pretraining import gin_utils
from synthetic_pretraining import interrupts
from synthetic_pretraining import models  # pylint: disable=unused-import
from synthetic_pretraining import network  # pylint: disable=unused-import
from synthetic_pretraining import optimizers  # pylint: disable=unused-import
from synthetic_pretraining import partitioning  # pylint: disable=unused-import
from synthetic_pretraining import trainer
from synthetic_pretraining import vocabularies  # pylint: disable=unused-import


def maybe_initialize_distributed() -> None:
  """Starts JAX's multi-controller runtime when this is one of several processes.

  On Cloud TPU VMs `jax.distributed.initialize()` discovers the other workers itself; elsewhere
  set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  """
  on_tpu_pod = os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0
  if on_tpu_pod or int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1:
    jax.distributed.initialize()


def import_optional_modules() -> None:
  """Modules of later features register their configurables if present."""
  for name in ("synthetic_pretraining.stats_init",):
    try:
      __import__(name)
    except ModuleNotFoundError as e:
      if e.name != name:
        raise


def main(argv=None, entry_point=None) -> int:
  """Parses gin flags and runs `entry_point` (default: `trainer.train`); returns an exit code."""
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                      force=True)
  for noisy in ("absl", "tensorflow", "jax._src", "orbax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  gin_files, bindings, rest = gin_utils.split_gin_args(sys.argv[1:] if argv is None else argv)
  if rest:
    print(f"error: unrecognised arguments {rest}", file=sys.stderr)
    return 2
  if not gin_files:
    print(__doc__, file=sys.stderr)
    return 2
  maybe_initialize_distributed()
  import_optional_modules()
  gin.clear_config()  # a fresh configuration per run, also when main is called in-process
  try:
    gin_utils.parse(gin_files, bindings)
    data.import_task_modules(gin.query_parameter("%MIXTURE_OR_TASK_MODULE")
                             if _has_macro("MIXTURE_OR_TASK_MODULE") else None)
    (entry_point or trainer.train)()
  except interrupts.TrainingInterrupted as e:
    print(str(e), file=sys.stderr)
    return e.exit_code
  except (gin_utils.GinConfigError, data.UnknownTaskError, checkpoints.CheckpointMismatchError,
          FileNotFoundError, trainer.NonFiniteLossError) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


def _has_macro(name: str) -> bool:
  try:
    gin.query_parameter(f"%{name}")
    return True
  except ValueError:
    return False


if __name__ == "__main__":
  sys.exit(main())
