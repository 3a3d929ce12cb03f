r"""Training binary: `python -m synthetic_pretraining.train --gin_file=... --gin.NAME=VALUE`.

Example (CPU, tiny model, the synthetic Set task):

  python -m synthetic_pretraining.train \
    --gin_file=gin/models/t5_1_0/tiny.gin --gin_file=gin/runs/pretrain.gin \
    --gin.MIXTURE_OR_TASK_NAME="'set'" --gin.MODEL_DIR="'runs/set'" --gin.TRAIN_STEPS=200

Flags:
  --gin_file=PATH        a gin file (repeatable): a model (gin/models/...) and a run
                         (gin/runs/pretrain.gin, finetune.gin, ...); found under the working
                         directory or among the shipped gin files.
  --gin.NAME=VALUE       a gin binding; a string needs its own quotes: --gin.MODEL_DIR="'runs/x'".
  --gin_bindings=TEXT    a binding as t5x writes it (repeatable).
  --verbose              the libraries' start-up messages and, for a refused run, the traceback.
  --help                 this text.

Main macros (t5x's names and meanings):
  MIXTURE_OR_TASK_NAME   the SeqIO task or mixture (`python -m synthetic_pretraining.tasks`
                         lists them); MIXTURE_OR_TASK_MODULE the module registering it.
  MODEL_DIR              checkpoints, config.gin, run.json, metrics.jsonl (local or gs://).
  TRAIN_STEPS            train until this step (> 0). BATCH_SIZE global batch size.
  TASK_FEATURE_LENGTHS   e.g. {'inputs': 512, 'targets': 512}.
  SEED                   initialisation, dropout and data order.
  EVAL_PERIOD, CHECKPOINT_PERIOD, KEEP_CHECKPOINTS, LOG_PERIOD   how often (> 0); how many kept.
  INITIAL_CHECKPOINT_PATH, INITIAL_CHECKPOINT_LOAD   start from a checkpoint ('all' or
                         'all_but_embedding').

Running the same command again resumes from the latest checkpoint in MODEL_DIR. On several
processes (a Cloud TPU pod slice) every worker runs the same command; `jax.distributed` is
initialised from the environment (`distributed.initialize_from_environment`). Ctrl-C saves the
last finished step and stops (130); a second Ctrl-C quits at once without saving.

Started as a program it first tells malloc to keep freed host memory in the process, up to a cap
(`training/host_memory`), so on CPU XLA's per-step temporaries are not page-faulted in again every
step; SYNTHETIC_PRETRAINING_HOST_MEMORY=glibc leaves malloc as it is, =retain drops the cap
(docs/scale.md).
"""
if __name__ == "__main__":
  # Before jax or TensorFlow start threads: a thread keeps the malloc arena it first used.
  from synthetic_pretraining.training import host_memory
  host_memory.configure()

import logging  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position

import gin
import jax

# Registers every configurable that gin files may name.
from synthetic_pretraining import errors
from synthetic_pretraining import cli
from synthetic_pretraining.training import accelerators
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.training import distributed
from synthetic_pretraining.training import host_memory
from synthetic_pretraining import follow_run
from synthetic_pretraining import gin_utils
from synthetic_pretraining import paths
from synthetic_pretraining import startup
from synthetic_pretraining.checkpointing import orbax_format
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


def run_flags(argv, entry_point=None) -> int:
  """What `main` runs, for a binary that runs `entry_point` inside its own `cli.run`: a bad
  input raises its `errors.UsageError` (the caller prints the one line) instead of printing it."""
  accelerators.hide_gpus_from_tensorflow()
  return _main(list(argv), entry_point)


def _main(argv, entry_point) -> int:
  startup.configure_logging(logging.INFO)  # libraries at ERROR unless --verbose
  host_memory.requested_mode()  # an unknown SYNTHETIC_PRETRAINING_HOST_MEMORY: one line
  gin_files, bindings, rest = gin_utils.split_gin_args(argv)
  if rest:
    raise errors.UsageError(
        f"unrecognised argument{'s' if len(rest) > 1 else ''} {' '.join(rest)}: the flags are "
        "--gin_file=PATH, --gin.NAME=VALUE, --gin_bindings=TEXT and --verbose (--help shows them).")
  if not gin_files:
    raise errors.UsageError(
        "Give the model and the run with --gin_file, e.g. --gin_file=gin/models/t5_1_0/tiny.gin "
        "--gin_file=gin/runs/pretrain.gin (--help shows the flags and an example).")
  if entry_point is not None:  # eval, infer: our run's model, vocabulary, task and lengths
    gin_files, bindings = follow_run.follow(gin_files, bindings)
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
  if entry_point is None and jax.process_index() == 0:
    logging.info("%s", closing_line())
  return 0


def closing_line() -> str:
  """Where the finished run's checkpoint is, how to continue it, and the next command (eval
  follows the run's config.gin, so it needs only the run)."""
  model_dir = paths.as_str(gin.query_parameter("%MODEL_DIR"))
  latest = orbax_format.latest_checkpoint_step_dir(model_dir) or model_dir
  return (f"Done: the checkpoint is {latest}. To train further, rerun the same command with a "
          "larger TRAIN_STEPS (it resumes there). Next, e.g.: python -m synthetic_pretraining.eval"
          f" --gin_file=gin/runs/eval.gin --gin.CHECKPOINT_PATH=\"'{model_dir}'\" "
          f"--gin.EVAL_OUTPUT_DIR=\"'{model_dir}_eval'\" --gin.EVAL_STEPS=20")


def _has_macro(name: str) -> bool:
  try:
    gin.query_parameter(f"%{name}")
    return True
  except ValueError:
    return False


if __name__ == "__main__":
  sys.exit(main())
