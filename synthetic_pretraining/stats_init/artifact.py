"""The statistics artifact: a plan of groups, and its file `stats.json`.

    {"scheme": INIT_ID, "source": PATH, "format": 1,
     "groups": [{"name": ..., "members": [paths], "shapes": [[...], ...], "count": N,
                 "mean": M, "std": S, "draw": "normal(mean,std)" | "normal(0,std)" |
                 "constant(mean)"}, ...]}

Means and stds are float64 written with Python's shortest round-trip repr, so a plan read back
from stats.json draws bitwise the same parameters as the plan computed from the checkpoint.
"""
import dataclasses
import json
import math
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import jax

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init.errors import StatsFileError

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class GroupPlan:
  """One group: its members and how they are drawn."""
  name: str
  members: Tuple[str, ...]
  shapes: Tuple[Tuple[int, ...], ...]
  count: int
  mean: float
  std: float
  draw: str


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything needed to re-create an initialisation: the scheme, its source and the groups."""
  scheme: str
  source: str
  groups: Tuple[GroupPlan, ...]

  def members(self) -> Dict[str, GroupPlan]:
    """{path: its group}."""
    return {m: g for g in self.groups for m in g.members}


def to_json(plan: Plan) -> Dict[str, Any]:
  """The stats.json object of a plan."""
  return {"format": FORMAT, "scheme": plan.scheme, "source": plan.source,
          "groups": [{"name": g.name, "members": list(g.members),
                      "shapes": [list(s) for s in g.shapes], "count": g.count,
                      "mean": g.mean, "std": g.std, "draw": g.draw} for g in plan.groups]}


def dumps(plan: Plan) -> str:
  """stats.json text: one member per line, shapes kept on one line."""
  text = json.dumps(to_json(plan), indent=1)
  return re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
                lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text)


def _field(obj: Mapping, key: str, kinds, where: str):
  if key not in obj:
    raise StatsFileError(f"{where}: missing key {key!r}.")
  value = obj[key]
  if not isinstance(value, kinds) or isinstance(value, bool):
    raise StatsFileError(f"{where}: {key!r} must be {kinds}, got {value!r}.")
  return value


def from_json(obj: Mapping[str, Any], where: str = "stats.json") -> Plan:
  """Parses and validates a stats.json object."""
  if not isinstance(obj, Mapping):
    raise StatsFileError(f"{where}: expected a JSON object with 'scheme', 'source', 'groups'.")
  groups, seen = [], set()
  for i, g in enumerate(_field(obj, "groups", list, where)):
    at = f"{where}: groups[{i}]"
    if not isinstance(g, Mapping):
      raise StatsFileError(f"{at}: expected an object.")
    members = tuple(_field(g, "members", list, at))
    if not members or not all(isinstance(m, str) for m in members):
      raise StatsFileError(f"{at}: 'members' must be a non-empty list of parameter paths.")
    if seen & set(members):
      raise StatsFileError(f"{at}: {sorted(seen & set(members))} already belong to another group.")
    seen |= set(members)
    draw = _field(g, "draw", str, at)
    if draw not in procedures.DRAWS:
      raise StatsFileError(f"{at}: 'draw' must be one of {procedures.DRAWS}, got {draw!r}.")
    mean = float(_field(g, "mean", (int, float), at))
    std = float(_field(g, "std", (int, float), at))
    if not (math.isfinite(mean) and math.isfinite(std) and std >= 0):
      raise StatsFileError(f"{at}: needs a finite mean and std >= 0, got {mean}, {std}.")
    shapes = g.get("shapes")
    if shapes is not None and (len(shapes) != len(members) or
                               not all(isinstance(s, list) for s in shapes)):
      raise StatsFileError(f"{at}: 'shapes' must list one shape per member.")
    groups.append(GroupPlan(
        name=str(g.get("name", f"group_{i}")), members=members,
        shapes=tuple(tuple(int(d) for d in s) for s in shapes) if shapes is not None else (),
        count=int(_field(g, "count", int, at)), mean=mean, std=std, draw=draw))
  return Plan(scheme=str(_field(obj, "scheme", str, where)),
              source=str(obj.get("source", "")), groups=tuple(groups))


def write(plan: Plan, path: paths.PathLike) -> None:
  """Writes stats.json, local or gs:// (on process 0 only; atomically, so a crash leaves no half
  file)."""
  if jax.process_index() != 0:
    return
  paths.write_atomic(path, dumps(plan) + "\n")


def read(path: paths.PathLike) -> Plan:
  """Reads and validates a stats.json file, local or gs://."""
  if not paths.exists(path) or paths.isdir(path):
    raise errors.MissingInputError(f"Statistics file {path} does not exist.")
  try:
    obj = json.loads(paths.read_text(path))
  except json.JSONDecodeError as e:
    raise StatsFileError(f"{path} is not valid JSON: {e}") from e
  return from_json(obj, where=path)


def check_fits(plan: Plan, shapes: Mapping[str, Sequence[int]], where: Optional[str] = None) -> None:
  """Raises StatsFileError naming members the model lacks or whose shape differs."""
  problems = []
  for g in plan.groups:
    for i, m in enumerate(g.members):
      if m not in shapes:
        problems.append(f"{m}: in the statistics (group {g.name!r}), not in the model")
      elif g.shapes and tuple(g.shapes[i]) != tuple(shapes[m]):
        problems.append(f"{m}: statistics for shape {tuple(g.shapes[i])}, model has "
                        f"{tuple(shapes[m])}")
  if problems:
    raise StatsFileError(f"The statistics {where or plan.source} do not fit the model; "
                         f"{len(problems)} parameter(s) differ: {errors.listing(problems)}.")
