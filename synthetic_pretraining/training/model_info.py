"""`model-info.txt` in MODEL_DIR: every variable's path, shape, dtype, logical axes and partition
spec, and the total, as t5x writes it, so a run's layout can be read without loading anything."""
import jax
import numpy as np
from flax import traverse_util

from synthetic_pretraining import paths
from synthetic_pretraining.training import run_dir


def describe(abstract_params, logical_axes) -> str:
  """The text of model-info.txt for abstract parameters (with shardings) and logical specs."""
  shapes = traverse_util.flatten_dict(abstract_params, sep="/")
  logical = traverse_util.flatten_dict(logical_axes, sep="/")
  width = max(len(p) for p in shapes)
  lines, total = [], 0
  for path in sorted(shapes):
    leaf = shapes[path]
    size = int(np.prod(leaf.shape))
    total += size
    spec = getattr(getattr(leaf, "sharding", None), "spec", None)
    lines.append(f"Variable {path:<{width}}  size {size:<12,d} shape {str(tuple(leaf.shape)):<18} "
                 f"dtype {str(np.dtype(leaf.dtype)):<8} logical_axes {tuple(logical.get(path, ()))} "
                 f"partition_spec {tuple(spec) if spec is not None else ()}")
  lines.append(f"Total number of parameters: {total:,d}")
  return "\n".join(lines) + "\n"


def write(model_dir: str, abstract_params, logical_axes) -> None:
  """Writes MODEL_DIR/model-info.txt (process 0 only)."""
  if jax.process_index() == 0:
    paths.write_atomic(run_dir.path(model_dir, run_dir.MODEL_INFO),
                       describe(abstract_params, logical_axes))
