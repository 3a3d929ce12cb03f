"""Parameters readable by path, whatever the checkpoint format behind them.

A `ParamSource` answers `metadata()` ({path: (shape, dtype)}, reading no arrays) and
`read(abstract)` (the requested parameters, each host reading only its own shards, straight into
the requested shardings). Our orbax checkpoints (`checkpoints`) and t5x's formats
(`t5x_checkpoints`) implement it; `checkpoint_resolver.resolve` picks the right one for a path.
"""
from typing import Any, Callable, Dict, Mapping, Tuple

import jax
import numpy as np

Metadata = Dict[str, Tuple[Tuple[int, ...], str]]


class ParamSource:
  """Parameters held by a callable per path (also used for arrays already in memory).

  Attributes:
    description: names the source in records and messages (its path).
    step: the checkpoint's step, when known (else 0).
  """

  def __init__(self, description: str, metadata: Metadata,
               reader: Callable[[str], Any], step: int = 0):
    self.description = description
    self.step = step
    self._metadata = metadata
    self._reader = reader

  def metadata(self) -> Metadata:
    """{path: (shape, dtype)} of every parameter, without reading arrays."""
    return dict(self._metadata)

  def read(self, abstract: Mapping[str, jax.ShapeDtypeStruct]) -> Dict[str, jax.Array]:
    """The requested parameters ({path: ShapeDtypeStruct with sharding}), read shard by shard."""
    out = {}
    for path, target in abstract.items():
      source = self._reader(path)
      if isinstance(source, jax.Array):
        out[path] = jax.device_put(source, target.sharding)
        continue
      out[path] = jax.make_array_from_callback(
          tuple(target.shape), target.sharding,
          lambda index, s=source, t=target: np.asarray(s[index], dtype=t.dtype))
    return out

  def bind(self, full_abstract) -> None:
    """Tells the source the model's whole abstract parameter tree (kept for compatibility)."""
    del full_abstract

  def read_numpy(self) -> Dict[str, np.ndarray]:
    """Every parameter as a host numpy array (for inspection)."""
    return {p: np.asarray(self._reader(p)[()]) for p in self._metadata}
