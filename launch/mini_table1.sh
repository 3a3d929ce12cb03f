#!/usr/bin/env bash
# The full small-scale reproduction of the paper's Table 1 (launch/mini_table1.py --preset=full,
# estimated 127 minutes on an idle 2-core CPU): pre-train on Set (two seeds) and natural text at
# lengths that cover the finetuning lengths, finetune on squad_window from random init, each
# pre-trained model and the Set model's statistics (two seeds each), then the report in
# runs/mini_table1_full/report.
# Extra flags pass through (--dry_run prints the commands and the estimated time).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" launch/mini_table1.py --preset=full "$@"
