#!/usr/bin/env bash
# Builds a throwaway t5x beside this project, for running t5x's own binaries with our tasks, gin
# files and statistics-only checkpoints (docs/t5x.md). t5x is not on the package index and is
# never a dependency of this project; nothing here touches the project's virtual environment.
#
#   bash scripts/setup_t5x.sh [DIR]            # DIR defaults to ~/.cache/synthetic_pretraining/t5x
#   export PYTHONPATH=DIR/src:DIR/stubs:DIR/extra   # printed at the end
#   export T5X_PYTHONPATH=DIR/src:DIR/stubs:DIR/extra   # or this, for tests/test_t5x_interop.py alone
#
# What it does, in DIR:
#   src/    a snapshot of github.com/google-research/t5x at T5X_COMMIT (or a copy of T5X_SRC, an
#           existing checkout), used in place (not pip-installed, so pip never resolves its
#           git-only requirements);
#   stubs/  stand-ins for the two imports that cannot be satisfied: `airio` (unpublished; t5x
#           only names its classes in isinstance checks) and `jestimator` (its pinned release
#           fails to import on current JAX; t5x only needs it for the Amos optimizer);
#   extra/  t5x's remaining pure-Python requirements that our environment lacks, installed with
#           pip --target (--no-deps: jax, flax, optax, orbax, seqio, clu, tensorflow and
#           tensorstore come from the project's own environment).
# Environment: PYTHON (default .venv/bin/python, else python3), T5X_COMMIT, T5X_SRC.
set -euo pipefail

DIR="${1:-$HOME/.cache/synthetic_pretraining/t5x}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
# The t5x revision this recipe was tested with (docs/t5x.md).
T5X_COMMIT="${T5X_COMMIT:-cc342d419ec3e3e9c4bf1df33c82330cafdc1e16}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

if [ -n "${T5X_SRC:-}" ]; then
  rm -rf "$DIR/src" && mkdir -p "$DIR/src"
  cp -r "$T5X_SRC/t5x" "$DIR/src/"
elif [ ! -d "$DIR/src/t5x" ]; then
  rm -rf "$DIR/src"
  git init -q "$DIR/src"
  git -C "$DIR/src" fetch -q --depth 1 https://github.com/google-research/t5x "$T5X_COMMIT"
  git -C "$DIR/src" checkout -q FETCH_HEAD
fi

mkdir -p "$DIR/stubs/airio" "$DIR/stubs/jestimator"
cat > "$DIR/stubs/airio/__init__.py" <<'EOF'
"""Stand-in for the unpublished `airio` package (scripts/setup_t5x.sh)."""
EOF
cat > "$DIR/stubs/airio/core.py" <<'EOF'
"""Stand-in for `airio.core`: the classes t5x names in isinstance checks; none is ever built."""
import types


class DatasetProviderBase:
  pass


class Task(DatasetProviderBase):
  pass


class Mixture(DatasetProviderBase):
  pass


class AirIODatasetIterator:
  pass


dataset_providers = types.SimpleNamespace(get_vocabularies=lambda provider: {})
EOF
cat > "$DIR/stubs/jestimator/__init__.py" <<'EOF'
"""Stand-in for `jestimator` (scripts/setup_t5x.sh): the Amos optimizer is unavailable."""
EOF
cat > "$DIR/stubs/jestimator/amos.py" <<'EOF'
"""Stand-in for `jestimator.amos`."""
from typing import NamedTuple


class ScaleByAmosState(NamedTuple):
  pass


def amos(*args, **kwargs):
  raise NotImplementedError("Amos is unavailable in this t5x build (jestimator stand-in).")
EOF
cat > "$DIR/stubs/jestimator/amos_helper.py" <<'EOF'
"""Stand-in for `jestimator.amos_helper`."""


def state_partition_rule(state, params_axes):
  raise NotImplementedError("Amos is unavailable in this t5x build (jestimator stand-in).")
EOF

# Versions this recipe was tested with.
"$PYTHON" -m pip install -q --target "$DIR/extra" --no-deps --upgrade \
  fiddle==0.3.1 cached_property==2.0.1 chex==0.1.92 jaxtyping==0.3.11 wadler_lindig==0.1.8 \
  toolz==1.2.0 libcst==1.9.0 graphviz==0.21 tensorboard==2.21.0

export PYTHONPATH="$DIR/src:$DIR/stubs:$DIR/extra"
JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c "import t5x.train, t5x.checkpoints" \
  2>/dev/null || { echo "t5x does not import; run: PYTHONPATH=$PYTHONPATH $PYTHON -c 'import t5x.train'" >&2; exit 1; }
echo "t5x is ready. Use it with:"
echo "  export PYTHONPATH=$PYTHONPATH"
echo "or, to give it only to the t5x processes of tests/test_t5x_interop.py:"
echo "  export T5X_PYTHONPATH=$PYTHONPATH"
