#!/usr/bin/env bash
# The CPU demo (`make demo`, about 13 minutes), the `demo` preset of launch/mini_table1.py:
# pre-train the CPU-sized T5 1.0 on the synthetic Set task (the log shows the loss falling and
# token accuracy rising), finetune on squad_window (SQuAD questions on 16-word windows) from
# random init, from the Set model and from the Set model's parameter statistics, and print the
# report (decoded EM/F1 beside the trivial-rule floors, validation token accuracy and what it is
# made of, learning curves). Everything is offline: the Set data is generated on the fly, the
# SQuAD files and the vocabulary ship with the repository.
# Runs land in runs/mini_table1_demo; rerunning skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" launch/mini_table1.py --preset=demo "$@"
