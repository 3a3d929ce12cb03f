"""Evaluation binary: teacher-forced metrics of a checkpoint (with gin/runs/eval.gin).

  python -m synthetic_pretraining.eval --gin_file=gin/models/t5_1_0/tiny.gin \
    --gin_file=gin/runs/eval.gin --gin.MIXTURE_OR_TASK_NAME="'set'" \
    --gin.CHECKPOINT_PATH="'runs/set'" --gin.EVAL_OUTPUT_DIR="'runs/set_eval'"
"""
import sys

from synthetic_pretraining import train
from synthetic_pretraining.training import evaluation

if __name__ == "__main__":
  sys.exit(train.main(entry_point=evaluation.evaluate_checkpoint))
