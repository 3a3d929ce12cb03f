"""Evaluation binary: teacher-forced metrics of a checkpoint (with gin/runs/eval.gin).

  python -m synthetic_pretraining.eval --gin_file=gin/models/t5_1_0/tiny.gin \
    --gin_file=gin/runs/eval.gin --gin.MIXTURE_OR_TASK_NAME="'set'" \
    --gin.CHECKPOINT_PATH="'runs/set'" --gin.EVAL_OUTPUT_DIR="'runs/set_eval'"

Flags: --gin_file=PATH (repeatable), --gin.NAME=VALUE (a string needs its own quotes),
--verbose (library messages, tracebacks), --help.

Main macros:
  CHECKPOINT_PATH        a checkpoint_<step> directory or a MODEL_DIR (its latest step), ours or
                         t5x's.
  EVAL_OUTPUT_DIR        where metrics.jsonl and the TensorBoard events go.
  MIXTURE_OR_TASK_NAME   the task; SPLIT (default 'validation'); TASK_FEATURE_LENGTHS;
                         BATCH_SIZE; EVAL_STEPS (batches, None: the whole split).
The model gin file must be the one the checkpoint was trained with.
"""
import sys

from synthetic_pretraining import train
from synthetic_pretraining.training import evaluation


def main(argv=None) -> int:
  """Runs the binary on `argv` (default: sys.argv[1:]); returns its exit code."""
  return train.main(argv, entry_point=evaluation.evaluate_checkpoint_by_former_name)


if __name__ == "__main__":
  sys.exit(main())
