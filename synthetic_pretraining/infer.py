"""Inference binary: decode a task split with a checkpoint and score it (with gin/runs/infer.gin).

  python -m synthetic_pretraining.infer --gin_file=gin/models/t5_1_0/small.gin \
    --gin_file=gin/runs/infer.gin --gin.MIXTURE_OR_TASK_NAME="'squad_offline'" \
    --gin.CHECKPOINT_PATH="'runs/squad'" --gin.INFER_OUTPUT_DIR="'runs/squad_infer'"

Flags: --gin_file=PATH (repeatable), --gin.NAME=VALUE (a string needs its own quotes),
--verbose (library messages, tracebacks), --help.

Main macros:
  CHECKPOINT_PATH        a checkpoint_<step> directory or a MODEL_DIR (its latest step).
  INFER_OUTPUT_DIR       where the predictions and metrics go.
  MIXTURE_OR_TASK_NAME   the task; SPLIT (default 'test'); TASK_FEATURE_LENGTHS; BATCH_SIZE.
The model gin file must be the one the checkpoint was trained with.

Writes INFER_OUTPUT_DIR/inference_eval/<task>-<step>.jsonl (every example), <task>-metrics.jsonl
and the metrics to INFER_OUTPUT_DIR/metrics.jsonl.
"""
import sys

from synthetic_pretraining.training import inference
from synthetic_pretraining import train


def main(argv=None) -> int:
  """Runs the binary on `argv` (default: sys.argv[1:]); returns its exit code."""
  return train.main(argv, entry_point=inference.infer)


if __name__ == "__main__":
  sys.exit(main())
