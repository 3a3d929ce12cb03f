r"""Training binary: `python -m synthetic_pretraining.train --gin_file=... --gin.NAME=VALUE`.

Example (CPU, tiny model, the synthetic Set task):

  python -m synthetic_pretraining.train \
    --gin_file=gin/models/t5_1_0/tiny.gin --gin_file=gin/runs/pretrain.gin \
    --gin.MIXTURE_OR_TASK_NAME="'set'" --gin.MODEL_DIR="'runs/set'" --gin.TRAIN_STEPS=200

Running the same command again resumes from the latest checkpoint in MODEL_DIR. On several
processes (a Cloud TPU pod slice) every worker runs the same command; `jax.distributed` is
initialised from the environment (`distributed.initialize_from_environment`). `--verbose` shows
the traceback of a refused run.

With SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY=1 in the environment it first keeps freed host
memory in the process (`host_memory`), so on CPU XLA's per-step temporaries are not
page-faulted in again every step (faster steps, more resident memory; docs/scale.md).
"""
if __name__ == "__main__":
  # Before jax or TensorFlow start threads: a thread keeps the malloc arena it first used.
  from synthetic_pretraining.training import host_memory
  host_memory.retain_freed_memory()

import logging  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position

import gin

# Registers every configurable that gin files may name.
from synthetic_pretraining import errors
from synthetic_pretraining import cli
from synthetic_pretraining.training import accelerators
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.training import distributed
from synthetic_pretraining import gin_utils
from synthetic_pretraining.training import interrupts
from synthetic_pretraining.model import models  # pylint: disable=unused-import
from synthetic_pretraining.model import network  # pylint: disable=unused-import
from synthetic_pretraining.model import optimizers  # pylint: disable=unused-import
from synthetic_pretraining.model import partitioning  # pylint: disable=unused-import
from synthetic_pretraining.training import trainer
from synthetic_pretraining.data import vocabularies  # pylint: disable=unused-import


def import_optional_modules() -> None:
  """Modules of later features register their configurables if present."""
  for name in ("synthetic_pretraining.stats_init",):
    try:
      __import__(name)
    except ModuleNotFoundError as e:
      if e.name != name:
        raise


def main(argv=None, entry_point=None) -> int:
  """Parses gin flags and runs `entry_point` (default: `trainer.train`); returns an exit code.

  Bad input ends in one line on stderr and exit code 1 (`cli.run`; `--verbose` adds the traceback).
  """
  accelerators.hide_gpus_from_tensorflow()  # before JAX allocates (TensorFlow: data only)
  return cli.run(lambda args: _main(args, entry_point), argv)


def _main(argv, entry_point) -> int:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                      force=True)
  for noisy in ("absl", "tensorflow", "jax._src", "orbax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  gin_files, bindings, rest = gin_utils.split_gin_args(argv)
  if rest:
    print(f"error: unrecognised arguments {rest}", file=sys.stderr)
    return 2
  if not gin_files:
    print(__doc__, file=sys.stderr)
    return 2
  distributed.initialize_from_environment()
  import_optional_modules()
  gin.clear_config()  # a fresh configuration per run, also when main is called in-process
  gin_utils.parse(gin_files, bindings)
  pipeline.import_task_modules(gin.query_parameter("%MIXTURE_OR_TASK_MODULE")
                           if _has_macro("MIXTURE_OR_TASK_MODULE") else None)
  try:
    (entry_point or trainer.train)()
  except interrupts.TrainingInterrupted as e:
    print(errors.one_line(e), file=sys.stderr)  # without gin's call-site notes
    return e.exit_code
  return 0


def _has_macro(name: str) -> bool:
  try:
    gin.query_parameter(f"%{name}")
    return True
  except ValueError:
    return False


if __name__ == "__main__":
  sys.exit(main())
