"""Where statistics come from: any checkpoint the resolver knows, or a stats.json file.

`open_source(path)` asks `checkpoint_resolver` what is at `path` (our checkpoints and MODEL_DIRs,
t5x's msgpack, tensorstore and orbax checkpoints and t5x MODEL_DIRs, local or gs://) and returns
its `ParamSource`, or the `artifact.Plan` of a stats.json file, which needs no checkpoint.
"""
from typing import Dict, Tuple, Union

import numpy as np

from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.checkpointing.param_source import ParamSource
from synthetic_pretraining.stats_init import artifact

ArraySource = ParamSource  # the name statistics code used before the readers moved


def open_source(path: str) -> Union[ParamSource, artifact.Plan]:
  """The statistics source at `path`: a checkpoint's parameters or a stats.json plan."""
  try:
    found = resolver.resolve(path, allow_stats=True)
  except FileNotFoundError:
    raise errors.MissingInputError(f"No statistics source at {path}: expected "
                            f"{resolver.EXPECTED}, or a stats.json file.") from None
  if found.kind == "stats":
    return artifact.read(found.path)
  return found.source


def load_t5x_params(path: str) -> Tuple[int, Dict[str, np.ndarray]]:
  """(step, {path: numpy array}) of a checkpoint, every parameter read onto the host."""
  source = resolver.resolve(path).source
  return source.step, source.read_numpy()
