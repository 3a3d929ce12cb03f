"""Draws a plan's parameters under jit, straight into their target shardings.

Each parameter gets its own key, folded from the seed and a hash of its path, so a draw does not
depend on which other parameters are drawn or in what order. With partitionable threefry each
device generates only its own shard, and the values are bitwise the same on one device and on
any mesh.
"""
import functools
import hashlib
from typing import Dict, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from synthetic_pretraining.stats_init import artifact
from synthetic_pretraining.stats_init import procedures

# Folded into the seed first, so these draws never reuse the trainer's initialisation keys.
_DOMAIN = 0x57A7_1417


def path_hash(path: str) -> int:
  """A stable 32-bit hash of a parameter path (independent of Python's hash seed)."""
  return int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "little")


def base_key(seed: int) -> jax.Array:
  """The key all per-parameter keys are folded from."""
  return jax.random.fold_in(jax.random.key(int(seed), impl="threefry2x32"), _DOMAIN)


@functools.lru_cache(maxsize=None)
def _drawer(shape, dtype, sharding, constant: bool):
  def draw(key, hashed, mean, std):
    if constant:
      values = jnp.full(shape, mean, jnp.float32)
    else:
      values = mean + std * jax.random.normal(jax.random.fold_in(key, hashed), shape, jnp.float32)
    return values.astype(dtype)
  return jax.jit(draw, out_shardings=sharding)


def draw_members(plan: artifact.Plan, targets: Mapping[str, object], seed: int) -> Dict[str, jax.Array]:
  """{path: drawn array} for every member of the plan.

  Args:
    plan: the groups and their statistics.
    targets: flat {path: array or jax.ShapeDtypeStruct with a sharding}; members are drawn with
      its shapes, dtypes and shardings.
    seed: decides the draws (with each parameter's path).
  """
  jax.config.update("jax_threefry_partitionable", True)
  artifact.check_fits(plan, {p: t.shape for p, t in targets.items()})
  key = base_key(seed)
  out = {}
  for group in plan.groups:
    constant = group.draw == procedures.CONSTANT_MEAN
    mean = np.float32(0.0 if group.draw == procedures.NORMAL_ZERO_STD else group.mean)
    std = np.float32(group.std)
    for path in group.members:
      target = targets[path]
      sharding = getattr(target, "sharding", None)
      fn = _drawer(tuple(target.shape), np.dtype(target.dtype), sharding, constant)
      out[path] = fn(key, np.uint32(path_hash(path)), mean, std)
  return out


def apply_plan(plan: artifact.Plan, params, seed: int):
  """`params` with every member of the plan redrawn (same structure, shapes, dtypes, shardings).

  Parameters outside the plan are returned as they are.
  """
  flat = traverse_util.flatten_dict(params, sep="/")
  flat.update(draw_members(plan, flat, seed))
  return traverse_util.unflatten_dict(flat, sep="/")
