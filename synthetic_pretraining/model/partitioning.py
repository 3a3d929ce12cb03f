"""Device mesh and logical-axis sharding rules (t5x's `PjitPartitioner`, on `jax.jit`).

One `Mesh` spans all devices with axes ('data', 'model'); `num_partitions` is the size of the model
axis. Logical axis names on parameters and activations are mapped to mesh axes by rules; the
standard rules are t5x's (1-D parameter partitioning over 'model'); `fsdp=True` additionally shards
parameters (and so optimizer state) over 'data' along their 'embed' axis.
"""
import contextlib
import contextvars
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LogicalRules = Sequence[Tuple[str, Optional[str]]]

# Active (mesh, rules) while a step function is traced; activations are constrained only then.
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("active_partitioning", default=None)


def standard_logical_axis_rules() -> LogicalRules:
  """t5x's standard rules for 1-D parameter and activation partitioning."""
  return (
      ("batch", "data"),
      ("vocab", "model"),
      ("mlp", "model"),
      ("heads", "model"),
      ("joined_kv", "model"),
      ("kv", None),
      ("embed", None),
      ("length", None),
      ("relpos_buckets", None),
      ("abspos_buckets", None),
      ("layers", None),
      ("stack", None),
  )


def with_logical_constraint(x, logical_axes: Sequence[Optional[str]]):
  """Constrains an activation's sharding by logical names; a no-op outside a partitioned trace."""
  active = _ACTIVE.get()
  if active is None:
    return x
  mesh, rules = active
  spec = nn.logical_to_mesh_axes(tuple(logical_axes), rules)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


@gin.configurable
class PjitPartitioner:
  """Builds the mesh and turns logical axis names into `NamedSharding`s.

  Attributes (gin): num_partitions — size of the 'model' mesh axis (t5x's binding
  `partitioning.PjitPartitioner.num_partitions = N`); fsdp — also shard parameters over 'data';
  logical_axis_rules — override the standard rules.
  """

  def __init__(self, num_partitions: int = 1, fsdp: bool = False,
               logical_axis_rules: Optional[LogicalRules] = None,
               devices: Optional[Sequence[Any]] = None):
    devices = list(devices) if devices is not None else jax.devices()
    if num_partitions < 1 or len(devices) % num_partitions:
      raise ValueError(f"num_partitions={num_partitions} must divide the number of devices "
                       f"({len(devices)}).")
    self.num_partitions = num_partitions
    self.fsdp = fsdp
    shape = (len(devices) // num_partitions, num_partitions)
    try:
      device_grid = mesh_utils.create_device_mesh(shape, devices=devices)
    except (ValueError, NotImplementedError, AssertionError):
      device_grid = np.asarray(devices).reshape(shape)
    self.mesh = Mesh(device_grid, ("data", "model"))
    self.activation_rules = tuple(logical_axis_rules or standard_logical_axis_rules())
    self.parameter_rules = self.activation_rules
    if fsdp:
      # 'embed' goes to 'data' for parameters only: activations keep the batch on 'data'.
      self.parameter_rules = tuple((name, "data") if name == "embed" else (name, axis)
                                   for name, axis in self.activation_rules)

  @property
  def data_parallelism(self) -> int:
    return self.mesh.shape["data"]

  def sharding(self, spec: PartitionSpec) -> NamedSharding:
    return NamedSharding(self.mesh, spec)

  def param_shardings(self, logical_specs):
    """Maps a tree of logical `PartitionSpec`s (from `nn.get_partition_spec`) to shardings."""
    return jax.tree.map(
        lambda spec: NamedSharding(self.mesh, nn.logical_to_mesh_axes(tuple(spec), self.parameter_rules)),
        logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec))

  def batch_sharding(self, ndim: int = 2) -> NamedSharding:
    """Batch-major arrays: the batch axis over 'data', every other axis replicated."""
    return NamedSharding(self.mesh, PartitionSpec("data", *([None] * (ndim - 1))))

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  @contextlib.contextmanager
  def activation_context(self):
    """Enables `with_logical_constraint` for functions traced inside this context."""
    token = _ACTIVE.set((self.mesh, self.activation_rules))
    try:
      yield
    finally:
      _ACTIVE.reset(token)


def optimizer_state_shardings(opt_state_shapes, params_shapes, param_shardings, replicated):
  """Shards each optimizer-state leaf like the parameter it belongs to.

  A leaf is matched to its parameter by the trailing dict keys of its tree path (optax states hold
  trees shaped like the parameters). Same shape: the parameter's sharding. One axis fewer (a
  factored Adafactor moment): the parameter's spec without the reduced axis. Anything else (step
  counters, placeholders for unfactored moments): replicated.
  """
  by_path = {}
  for path, shape in jax.tree_util.tree_flatten_with_path(params_shapes)[0]:
    by_path[_dict_keys(path)] = shape
  sharding_by_path = {}
  for path, sharding in jax.tree_util.tree_flatten_with_path(
      param_shardings, is_leaf=lambda x: isinstance(x, NamedSharding))[0]:
    sharding_by_path[_dict_keys(path)] = sharding

  def for_leaf(path, leaf):
    keys = _dict_keys(path)
    for start in range(len(keys)):
      suffix = keys[start:]
      if suffix in by_path:
        return _derived_sharding(leaf.shape, by_path[suffix].shape, sharding_by_path[suffix],
                                 replicated)
    return replicated

  return jax.tree_util.tree_map_with_path(for_leaf, opt_state_shapes)


def _dict_keys(path) -> tuple:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path
               if isinstance(k, (jax.tree_util.DictKey, jax.tree_util.GetAttrKey)))


def _derived_sharding(leaf_shape, param_shape, param_sharding, replicated):
  spec = tuple(param_sharding.spec) + (None,) * (len(param_shape) - len(param_sharding.spec))
  if tuple(leaf_shape) == tuple(param_shape):
    return param_sharding
  if len(leaf_shape) == len(param_shape) - 1:
    # Prefer dropping the last axis on ties (optax reduces the smaller of the two largest dims).
    for drop in reversed(range(len(param_shape))):
      if tuple(param_shape[:drop]) + tuple(param_shape[drop + 1:]) == tuple(leaf_shape):
        return NamedSharding(param_sharding.mesh, PartitionSpec(*(spec[:drop] + spec[drop + 1:])))
  return replicated


def abstract_params(model, partitioner: PjitPartitioner):
  """The model's parameter tree as `ShapeDtypeStruct`s in their shardings (no arrays made)."""
  shardings = partitioner.param_shardings(model.logical_axes())
  return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                      model.param_shapes(), shardings)
