"""Procedures (how a group's statistics become values) and schemes (grouping + procedure).

A scheme is the paper's init_id, `<grouping>_grouping___<procedure>`, e.g.
`per_param_grouping___init_scale`. A procedure maps a group to one of three draws:

  normal(mean,std)  every member drawn from N(group mean, group std)        (init_mean_std)
  normal(0,std)     every member drawn from N(0, group std)                 (init_scale, weights)
  constant(mean)    every member set to the group mean                      (init_scale, norms)
"""
import difflib
from typing import Callable, Dict, List, Tuple

from synthetic_pretraining.stats_init import groupings
from synthetic_pretraining.stats_init.errors import GroupingError, UnknownSchemeError

NORMAL_MEAN_STD = "normal(mean,std)"
NORMAL_ZERO_STD = "normal(0,std)"
CONSTANT_MEAN = "constant(mean)"
DRAWS = (NORMAL_MEAN_STD, NORMAL_ZERO_STD, CONSTANT_MEAN)

Procedure = Callable[[groupings.Group], str]
_SEPARATOR = "___"
_SUFFIX = "_grouping"


def init_mean_std(group: groupings.Group) -> str:
  """Every member from N(mean, std) of its group, layer norms included."""
  del group
  return NORMAL_MEAN_STD


def init_scale(group: groupings.Group) -> str:
  """Layer-norm groups become their mean; every other group N(0, std) ("scale only").

  The paper looked at the first member's name only; a group mixing norms and weights has no
  meaning here, so it is an error.
  """
  norms = [groupings.is_layer_norm(m) for m in group.members]
  if all(norms):
    return CONSTANT_MEAN
  if not any(norms):
    return NORMAL_ZERO_STD
  raise GroupingError(f"init_scale cannot treat group {group.name!r}: it mixes layer norms "
                      f"{[m for m, n in zip(group.members, norms) if n][:3]} with other "
                      f"parameters {[m for m, n in zip(group.members, norms) if not n][:3]}.")


PROCEDURES: Dict[str, Procedure] = {"init_mean_std": init_mean_std, "init_scale": init_scale}

# The README init_ids of the paper (Table 2), PAPER_FACTS 9.2.
PAPER_SCHEMES = (
    "per_param_grouping___init_mean_std",
    "per_param_grouping___init_scale",
    "across_ALL_layer_AND_per_layer_grouping___init_scale",
    "preattnln_per_param_grouping___init_scale",
    "across_ALL_layer_grouping___init_scale",
    "per_layer_grouping___init_scale",
    "premlpln_per_param_grouping___init_scale",
    "qkvo_per_param_grouping___init_scale",
    "mlp_per_param_grouping___init_scale",
)


def register_procedure(name: str, procedure: Procedure) -> None:
  """Adds a procedure: a function from a `Group` to one of `DRAWS`."""
  PROCEDURES[name] = procedure


def scheme_names() -> List[str]:
  """Every valid scheme: each registered grouping with each procedure."""
  return sorted(f"{g}{_SUFFIX}{_SEPARATOR}{p}" for g in groupings.GROUPINGS for p in PROCEDURES)


def parse_scheme(scheme: str) -> Tuple[groupings.Grouping, Procedure]:
  """(grouping, procedure) of an init_id; UnknownSchemeError lists the valid ones."""
  grouping_part, _, procedure = str(scheme).partition(_SEPARATOR)
  grouping = grouping_part[:-len(_SUFFIX)] if grouping_part.endswith(_SUFFIX) else None
  if grouping in groupings.GROUPINGS and procedure in PROCEDURES:
    return groupings.GROUPINGS[grouping], PROCEDURES[procedure]
  valid = scheme_names()
  close = difflib.get_close_matches(str(scheme), valid, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise UnknownSchemeError(f"Unknown statistics-init scheme {scheme!r}.{hint} Valid schemes "
                           f"(<grouping>_grouping___<procedure>): {', '.join(valid)}.")


def plan_groups(scheme: str, paths, keep_random=groupings.EMBEDDINGS):
  """[(group, draw)] of a scheme over a model's parameter paths (no statistics yet)."""
  grouping, procedure = parse_scheme(scheme)
  return [(g, procedure(g)) for g in grouping.groups(list(paths), keep_random)]
