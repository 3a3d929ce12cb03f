"""The transform: a scheme and a source give a plan (group statistics); a plan gives parameters.

    plan = build_plan('per_param_grouping___init_scale', 'runs/lime/checkpoint_100000', abstract)
    params = sampling.apply_plan(plan, random_params, seed)

The source is read a bounded number of bytes at a time (`chunk_bytes`), each array split over all
of the target's devices (not in the target's own shardings: those may replicate a parameter over
the data axis, which would multiply the memory and the work of the statistics by the number of
replicas; the sums are exact, so the layout does not change a bit of the result). Only scalars
of each parameter's statistics are kept, so the peak is one chunk of the source.
"""
import ctypes
import dataclasses
import logging
import re
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.stats_init import artifact
from synthetic_pretraining.stats_init import groupings
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import sources
from synthetic_pretraining.stats_init import statistics
from synthetic_pretraining.stats_init.errors import ArchitectureMismatchError
from synthetic_pretraining.stats_init.errors import GroupingError
from synthetic_pretraining.stats_init.errors import StatsFileError

DEFAULT_CHUNK_BYTES = 512 * 2**20
Source = Union[str, sources.ArraySource, artifact.Plan]


def abstract_of(params) -> Dict[str, jax.ShapeDtypeStruct]:
  """Flat {path: ShapeDtypeStruct with sharding} of a tree of arrays or of abstract leaves."""
  flat = traverse_util.flatten_dict(params, sep="/")
  return {p: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=getattr(v, "sharding", None))
          for p, v in flat.items()}


def check_architecture(source_metadata: Mapping, target: Mapping, where: str) -> None:
  """Raises ArchitectureMismatchError naming every parameter whose path or shape differs."""
  try:
    orbax_format.check_architecture(source_metadata, target, where, noun="source")
  except orbax_format.CheckpointMismatchError as e:
    raise ArchitectureMismatchError(str(e)) from None


def _devices(target: Mapping[str, jax.ShapeDtypeStruct]) -> List[jax.Device]:
  """The devices of the target's mesh (in mesh order), else all devices."""
  for t in target.values():
    sharding = getattr(t, "sharding", None)
    if isinstance(sharding, NamedSharding):
      return list(sharding.mesh.devices.flat)
    if sharding is not None:
      return sorted(sharding.device_set, key=lambda d: d.id)
  return jax.devices()


def statistics_layout(target: Mapping[str, jax.ShapeDtypeStruct]) -> Dict[str, jax.sharding.Sharding]:
  """{path: sharding} in which the source is read for statistics: each array's longest axis
  divisible by the number of devices is split over all of them, so every value is held (and
  summed) once; arrays with no such axis (small ones) are replicated."""
  devices = _devices(target)
  mesh = Mesh(np.array(devices), ("stats",))
  out = {}
  for path, t in target.items():
    axes = [a for a in sorted(range(len(t.shape)), key=lambda a: -t.shape[a])
            if t.shape[a] % len(devices) == 0]
    spec = [None] * len(t.shape)
    if axes:
      spec[axes[0]] = "stats"
    out[path] = NamedSharding(mesh, PartitionSpec(*spec))
  return out


def _release_host_memory() -> None:
  """Gives memory freed by the source reads back to the OS (glibc only; a no-op elsewhere).

  Without it, glibc's per-thread arenas keep the freed chunks of the source resident, and the
  parameters drawn next are allocated on top of them: measured on T5 base (FSDP, 8 CPU
  devices), the peak RSS of the transform fell from 1.86x to 1.42x one copy of the parameters.
  """
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass


def _chunks(paths: Sequence[str], target: Mapping[str, jax.ShapeDtypeStruct],
            chunk_bytes: int) -> Iterator[List[str]]:
  chunk, size = [], 0
  for path in paths:
    nbytes = int(np.prod(target[path].shape)) * 4
    if chunk and size + nbytes > chunk_bytes:
      yield chunk
      chunk, size = [], 0
    chunk.append(path)
    size += nbytes
  if chunk:
    yield chunk


def build_plan(scheme: str, source: Source, params, *,
               keep_random: Sequence[str] = groupings.EMBEDDINGS,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> artifact.Plan:
  """Groups the model's parameters by `scheme` and computes each group's statistics.

  Args:
    scheme: an init_id such as 'per_param_grouping___init_scale'.
    source: a checkpoint path (ours or t5x), a stats.json path, an opened source, or a Plan.
    params: the target model's parameters: arrays or ShapeDtypeStructs with shardings (a tree
      or a flat {path: leaf} dict). Sources are read in these shardings.
    keep_random: paths or patterns never grouped (by default the vocabulary embeddings).
    chunk_bytes: how much of the source is held at once.
  """
  target = abstract_of(params)
  planned = procedures.plan_groups(scheme, target, keep_random)
  if isinstance(source, str):
    source = sources.open_source(source)
  if isinstance(source, artifact.Plan):
    return plan_from_stats(source, target, scheme)
  check_architecture(source.metadata(), target, source.description)
  layout = statistics_layout(target)
  read_as = {p: jax.ShapeDtypeStruct(t.shape, t.dtype, sharding=layout[p])
             for p, t in target.items()}
  source.bind(traverse_util.unflatten_dict(read_as, sep="/"))
  members = [m for group, _ in planned for m in group.members]
  moments: Dict[str, statistics.Moments] = {}
  for chunk in _chunks(members, target, chunk_bytes):
    arrays = source.read({p: read_as[p] for p in chunk})
    moments.update(statistics.parameter_moments(arrays))
    del arrays
    _release_host_memory()
  groups = []
  for group, draw in planned:
    stats = statistics.pool(moments[m] for m in group.members)
    groups.append(artifact.GroupPlan(
        name=group.name, members=group.members,
        shapes=tuple(tuple(target[m].shape) for m in group.members),
        count=stats.count, mean=stats.mean, std=stats.std, draw=draw))
  logging.info("%s: %d groups, %d parameters from the statistics of %s", scheme, len(groups),
               len(members), source.description)
  return artifact.Plan(scheme=scheme, source=source.description, groups=tuple(groups))


def plan_from_stats(plan: artifact.Plan, params, scheme: Optional[str] = None) -> artifact.Plan:
  """A plan read from stats.json, checked against the model (and against `scheme`, if given)."""
  if scheme is not None and plan.scheme != scheme:
    raise StatsFileError(f"The statistics file was made for scheme {plan.scheme!r}, not "
                         f"{scheme!r}.")
  target = abstract_of(params)
  artifact.check_fits(plan, {p: t.shape for p, t in target.items()})
  return plan


def _value_group(name: str, pattern: str, value: float, draw: str, target) -> artifact.GroupPlan:
  members = tuple(sorted((p for p in target if _fullmatch(pattern, p)), key=groupings.natural_key))
  if not members:
    raise GroupingError(f"{name!r} ({pattern!r}) matches no parameter of the model; "
                                  f"named sets: {', '.join(groupings.PARAMETER_SETS)}.")
  shapes = tuple(tuple(target[m].shape) for m in members)
  mean, std = (value, 0.0) if draw == procedures.CONSTANT_MEAN else (0.0, value)
  return artifact.GroupPlan(name=name, members=members, shapes=shapes,
                            count=int(sum(np.prod(s) for s in shapes)), mean=float(mean),
                            std=float(std), draw=draw)


def _fullmatch(pattern: str, path: str) -> bool:
  return re.fullmatch(pattern, path) is not None


def custom_plan(params, constants: Optional[Mapping[str, float]] = None,
                stds: Optional[Mapping[str, float]] = None) -> artifact.Plan:
  """Sets parameters to given values (Table 3) or draws them from N(0, given std).

  Args:
    params: the model's parameters (arrays or abstract leaves).
    constants: {set name or full-match pattern: value}; e.g. {'pre_attn_ln': 0.4}.
    stds: {set name or full-match pattern: std}; members drawn from N(0, std).
  """
  target = abstract_of(params)
  groups = [_value_group(f"constant:{k}", groupings.parameter_set_pattern(k), float(v),
                         procedures.CONSTANT_MEAN, target) for k, v in (constants or {}).items()]
  groups += [_value_group(f"std:{k}", groupings.parameter_set_pattern(k), float(v),
                          procedures.NORMAL_ZERO_STD, target) for k, v in (stds or {}).items()]
  if not groups:
    raise GroupingError("A custom-value initialisation needs `constants` or `stds`.")
  if any(g.std < 0 for g in groups):
    raise GroupingError("Standard deviations must be >= 0.")
  seen = {}
  for g in groups:
    for m in g.members:
      if m in seen:
        raise GroupingError(f"{m} is set by both {seen[m]!r} and {g.name!r}.")
      seen[m] = g.name
  description = ", ".join(g.name for g in groups)
  return artifact.Plan(scheme="custom", source=description, groups=tuple(groups))


@dataclasses.dataclass(frozen=True)
class Summary:
  """Counts for log lines: groups, drawn arrays and values, arrays left as they were."""
  groups: int
  drawn_arrays: int
  drawn_values: int
  kept_arrays: int


def summarize(plan: artifact.Plan, params) -> Summary:
  """How much of `params` the plan draws."""
  target = abstract_of(params)
  members = plan.members()
  return Summary(groups=len(plan.groups), drawn_arrays=len(members),
                 drawn_values=int(sum(np.prod(target[m].shape) for m in members)),
                 kept_arrays=len(set(target) - set(members)))
