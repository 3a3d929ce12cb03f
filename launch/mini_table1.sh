#!/usr/bin/env bash
# CPU-scale reproduction of the paper's Table 1 (launch/mini_table1.py --preset=full): pretrain on
# identity, set, LIME and natural text, finetune on squad_offline from each, from random init and
# from the Set model's statistics, three seeds, then the benefit table. Also runs on one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" launch/mini_table1.py --preset=full "$@"
