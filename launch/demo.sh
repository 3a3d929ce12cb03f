#!/usr/bin/env bash
# The CPU demo (`make demo`): pre-train a CPU-sized T5 1.0 on the synthetic Set task for a few
# hundred steps with short sequences; the log shows the loss falling and token accuracy rising.
# Everything runs offline with the embedded defaults; the run lands in runs/demo_set (rerunning
# resumes from its last checkpoint, so delete the directory to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL_DIR=${MODEL_DIR:-runs/demo_set}
STEPS=${STEPS:-1000}

"$PY" -m synthetic_pretraining.train \
  --gin_file=gin/models/t5_1_0/cpu.gin \
  --gin_file=gin/runs/pretrain.gin \
  --gin.MIXTURE_OR_TASK_NAME="'set'" \
  --gin.MODEL_DIR="'${MODEL_DIR}'" \
  --gin.TRAIN_STEPS="${STEPS}" \
  --gin.BATCH_SIZE=32 \
  --gin.TASK_FEATURE_LENGTHS="{'inputs': 64, 'targets': 64}" \
  --gin.EVAL_PERIOD=200 --gin.EVAL_STEPS=4 --gin.LOG_PERIOD=50 --gin.CHECKPOINT_PERIOD=500 \
  --gin_file=gin/runs/cpu_demo.gin

"$PY" -m synthetic_pretraining.inspect_checkpoint "${MODEL_DIR}" | head -n 4
echo "Demo finished: metrics in ${MODEL_DIR}/metrics.jsonl, TensorBoard events in ${MODEL_DIR}/."
