"""Bracket languages for formal-language pre-pretraining: k-Dyck and k-shuffle-Dyck.

Both languages are over k bracket types. Type i opens with the pool's (2i)-th ordinary id and
closes with the next one (the convention of `nesting_language`; with the byte vocabulary type 0
is ids 2 and 3, type 1 ids 4 and 5, ...), so k may be at most half the pool.

* **k-Dyck** (`dyck`): well-nested strings. Every closing bracket closes the most recent open
  bracket, which must be of its type; the nesting depth never exceeds `max_depth`.
* **k-shuffle-Dyck** (`shuffle_dyck`, the shuffle of k Dyck-1 languages, as used by Hu et al.,
  ACL 2025): every type is balanced on its own (never more closings than openings of that type
  in any prefix, equal counts at the end), but a closing bracket may close any open bracket of
  its type, not only the most recent open bracket overall: types interleave freely (`( [ ) ]`
  is a shuffle-Dyck string and not a Dyck string). Its "depth" is the number of brackets open at
  once (all types together), bounded by `max_depth`.

A string is drawn by a bounded random walk. Its length L is uniform over the even numbers of
[min_length, max_length]; at each position the walk opens a bracket (of a uniform type) with
probability `open_probability` when it may, and closes one otherwise. It may open while fewer
than `max_depth` brackets are open and the remaining positions can still close them all; it must
close when it may not open. Dyck closes the most recent open bracket; shuffle-Dyck closes one of
the open brackets chosen uniformly (so a type with more open brackets closes more often).

`dyck_completion` cuts a Dyck string after a prefix that leaves at least one bracket open (the
cut uniform over such positions); the target is the prefix's shortest completion: the closing
brackets of its open brackets, most recent first.

The complexity knobs are `num_types` (k) and `max_depth`; gin: `dyck_config.num_types = 32`,
`shuffle_dyck_config.max_depth = 4` (docs/decoder_only.md).
"""
from typing import Dict, List, Tuple

import gin
import numpy as np

from synthetic_pretraining.synthetic import simple_tasks
from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace


def _check(name, num_types, max_depth, min_length, max_length, open_probability):
  if num_types < 1 or max_depth < 1:
    raise ValueError(f"{name} needs num_types >= 1 and max_depth >= 1, got {num_types}, "
                     f"{max_depth}.")
  if not 2 <= min_length <= max_length or min_length == max_length and min_length % 2:
    raise ValueError(f"{name} needs 2 <= min_length <= max_length with an even length between "
                     f"them (strings are balanced), got {min_length}, {max_length}.")
  if not 0.0 < open_probability < 1.0:
    raise ValueError(f"{name} needs 0 < open_probability < 1, got {open_probability}.")
  return num_types, max_depth, min_length, max_length, open_probability


@gin.configurable
def dyck_config(num_types: int = 16, max_depth: int = 8, min_length: int = 2,
                max_length: int = 126, open_probability: float = 0.5):
  """The k-Dyck language of `dyck` and `dyck_completion` (read when a dataset is built).

  Gin: `dyck_config.num_types = 32`, `dyck_config.max_depth = 4`, `dyck_config.max_length = 254`.
  Lengths count brackets (the EOS the task appends comes on top): the default 126 fills 127
  target tokens of a 128-token sequence with its EOS.
  """
  return _check("dyck_config", num_types, max_depth, min_length, max_length, open_probability)


@gin.configurable
def shuffle_dyck_config(num_types: int = 16, max_depth: int = 8, min_length: int = 2,
                        max_length: int = 126, open_probability: float = 0.5):
  """The k-shuffle-Dyck language of `shuffle_dyck`; knobs as `dyck_config` (depth: brackets open
  at once, all types together)."""
  return _check("shuffle_dyck_config", num_types, max_depth, min_length, max_length,
                open_probability)


class BracketLanguage:
  """Strings of k-Dyck (`shuffle=False`) or k-shuffle-Dyck (`shuffle=True`) over a token space."""

  def __init__(self, space: TokenSpace, num_types: int = 16, max_depth: int = 8,
               min_length: int = 2, max_length: int = 126, open_probability: float = 0.5,
               shuffle: bool = False):
    if 2 * num_types > len(space.pool):
      raise ValueError(f"{num_types} bracket types need {2 * num_types} ordinary ids; the "
                       f"vocabulary has {len(space.pool)} (num_types at most "
                       f"{len(space.pool) // 2}).")
    self.num_types, self.max_depth = num_types, max_depth
    self.open_probability, self.shuffle = open_probability, shuffle
    self.lengths = list(range(min_length + min_length % 2, max_length + 1, 2))
    self.opens: List[int] = space.pool[0:2 * num_types:2].tolist()
    self.closes: List[int] = space.pool[1:2 * num_types:2].tolist()
    self.close_of: Dict[int, int] = dict(zip(self.opens, self.closes))

  def walk(self, rng: TaskRandom) -> Tuple[List[int], List[int]]:
    """One string as (ids, the number of brackets open after each of its tokens)."""
    length = self.lengths[rng.randrange(len(self.lengths))]
    out, depths, open_types = [], [], []
    for position in range(length):
      depth, remaining = len(open_types), length - position
      may_open = depth < self.max_depth and depth + 2 <= remaining
      if may_open and (depth == 0 or rng.random() < self.open_probability):
        t = rng.randrange(self.num_types)
        open_types.append(t)
        out.append(self.opens[t])
      else:
        if self.shuffle and depth > 1:
          # Close any open bracket: swap it to the end, then pop.
          i = rng.randrange(depth)
          open_types[i], open_types[-1] = open_types[-1], open_types[i]
        out.append(self.closes[open_types.pop()])
      depths.append(len(open_types))
    return out, depths

  def string(self, rng: TaskRandom) -> List[int]:
    """One string of the language."""
    return self.walk(rng)[0]

  def completion(self, prefix: List[int]) -> List[int]:
    """The shortest completion of a Dyck prefix: its open brackets closed, most recent first."""
    stack = []
    for t in prefix:
      if t in self.close_of:
        stack.append(self.close_of[t])
      else:
        stack.pop()
    return stack[::-1]

  def prefix_and_completion(self, rng: TaskRandom) -> Tuple[List[int], List[int]]:
    """A Dyck string cut where brackets are open (uniform over such cuts), and its completion."""
    ids, depths = self.walk(rng)
    cuts = np.flatnonzero(np.asarray(depths[:-1]) > 0) + 1  # prefix lengths leaving some open
    cut = int(cuts[rng.randrange(len(cuts))])
    prefix = ids[:cut]
    return prefix, self.completion(prefix)


def lm_builder(name: str, shuffle: bool):
  """A SyntheticSource `build` function: inputs = the task-name prefix, targets = one string."""

  def build(space: TokenSpace):
    language = BracketLanguage(space, *(shuffle_dyck_config() if shuffle else dyck_config()),
                               shuffle=shuffle)
    prefix = simple_tasks.name_prefix_ids(name, space)
    return lambda rng: {"inputs": list(prefix), "targets": language.string(rng)}
  return build


def completion_builder(name: str):
  """A SyntheticSource `build` function: inputs = prefix + a Dyck prefix, targets = completion."""

  def build(space: TokenSpace):
    language = BracketLanguage(space, *dyck_config())
    prefix = simple_tasks.name_prefix_ids(name, space)

    def generate(rng):
      cut, completion = language.prefix_and_completion(rng)
      return {"inputs": prefix + cut, "targets": completion}
    return generate
  return build
