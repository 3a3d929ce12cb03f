"""Elementary cellular automata (Wolfram's 256 rules) as procedural pre-pretraining data.

A row of `width` cells (0 or 1) is updated `steps` times by a rule: the new value of a cell is bit
4*left + 2*centre + right of the rule number (Wolfram's numbering: rule 110's bits 01101110 are
the new values for the neighbourhoods 111, 110, ..., 000). The boundary is periodic (the row is a
ring; the default) or 'zero' (cells beyond the edges are 0). The first row is i.i.d. cells, 1 with
probability `density`. An example is the sequence of its steps + 1 rows, flattened with a row
separator: dead and live cells are the pool's first two ordinary ids (as `nesting_language`
and `dyck` take theirs from the pool's start; byte vocabulary: ids 2 and 3) and the separator is
extra_id_1, the divider of `longest_word`'s words.

The rule is fixed (`rule`, 0-255) or drawn per example, uniformly, from one of Wolfram's four
complexity classes (`rule_class`, 1-4; Zhang et al. 2024 train on rules of each class): 1 rows
become uniform, 2 stable or periodic structures, 3 chaotic, 4 complex localised structures. The
classes are given for the 88 rules that are the smallest of their equivalence class (`CLASSES`)
and extend to all 256: a rule, its left-right mirror image, its 0/1 complement and the mirrored
complement behave alike (rule 110 with 124, 137 and 193; rule 30 with 86, 135 and 149), so a
class holds every rule equivalent to one of its representatives.

Tasks (`tasks/formal.py`): `cellular_automaton` (inputs: the task-name prefix; targets: all
rows) and `cellular_automaton_next_rows` (inputs: the prefix and the first `input_rows` rows;
targets: the rows after them). With a class, the rule of a `next_rows` example is not in its
input: the model must infer it from the rows it is shown.
"""
from typing import Dict, List, Optional, Tuple

import gin
import numpy as np

from synthetic_pretraining.synthetic import simple_tasks
from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace

# Wolfram's classes (A New Kind of Science) of the 88 inequivalent elementary rules, each named by
# the smallest rule number of its equivalence class.
CLASSES: Dict[int, Tuple[int, ...]] = {
    1: (0, 8, 32, 40, 128, 136, 160, 168),
    2: (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 19, 23, 24, 25, 26, 27, 28, 29, 33, 34,
        35, 36, 37, 38, 42, 43, 44, 46, 50, 51, 56, 57, 58, 62, 72, 73, 74, 76, 77, 78, 94, 104,
        108, 130, 132, 134, 138, 140, 142, 152, 154, 156, 162, 164, 170, 172, 178, 184, 200, 204,
        232),
    3: (18, 22, 30, 45, 60, 90, 105, 122, 126, 146, 150),
    4: (41, 54, 106, 110),
}
BOUNDARIES = ("periodic", "zero")
DENSITY_SCALE = 1 << 24  # a cell is live when a uniform draw below this is below density * it


def mirror(rule: int) -> int:
  """The rule with left and right exchanged."""
  return sum(((rule >> (4 * (n & 1) + (n & 2) + (n >> 2))) & 1) << n for n in range(8))


def complement(rule: int) -> int:
  """The rule with 0 and 1 exchanged (in its neighbourhoods and in its outputs)."""
  return sum((1 - ((rule >> (7 - n)) & 1)) << n for n in range(8))


def equivalents(rule: int) -> Tuple[int, ...]:
  """The rule, its mirror image, its complement and its mirrored complement (sorted, distinct)."""
  return tuple(sorted({rule, mirror(rule), complement(rule), mirror(complement(rule))}))


def _class_of_every_rule() -> Dict[int, int]:
  out = {}
  for c, representatives in CLASSES.items():
    for rule in representatives:
      for r in equivalents(rule):
        out[r] = c
  assert len(out) == 256
  return out


RULE_CLASS: Dict[int, int] = _class_of_every_rule()  # rule -> its class, for all 256 rules
RULES_OF_CLASS: Dict[int, Tuple[int, ...]] = {
    c: tuple(sorted(r for r, k in RULE_CLASS.items() if k == c)) for c in CLASSES}


def step(row: np.ndarray, rule: int, boundary: str = "periodic") -> np.ndarray:
  """The next row (0/1 int64 array) under `rule`."""
  return evolve(row, rule, 1, boundary)[1]


def evolve(row: np.ndarray, rule: int, steps: int, boundary: str = "periodic") -> np.ndarray:
  """The first row and its `steps` successors, shape (steps + 1, width)."""
  row = np.asarray(row, np.int64)
  new_value = (rule >> np.arange(8)) & 1  # indexed by 4 * left + 2 * centre + right
  rows = np.empty((steps + 1, len(row)), np.int64)
  rows[0] = row
  padded = np.zeros(len(row) + 2, np.int64)  # the row between its left and right neighbours
  for s in range(steps):
    padded[1:-1] = rows[s]
    if boundary == "periodic":
      padded[0], padded[-1] = rows[s, -1], rows[s, 0]
    rows[s + 1] = new_value[4 * padded[:-2] + 2 * padded[1:-1] + padded[2:]]
  return rows


@gin.configurable
def cellular_automaton_config(rule: Optional[int] = 110, rule_class: Optional[int] = None,
                              width: int = 16, steps: int = 6, boundary: str = "periodic",
                              density: float = 0.5, input_rows: int = 1):
  """The automaton of `cellular_automaton` and `cellular_automaton_next_rows` (read when a
  dataset is built).

  Gin: `cellular_automaton_config.rule = 30`, or `cellular_automaton_config.rule_class = 3`
  (a class, when given, draws a rule of that class per example and `rule` is not used). An
  example has (steps + 1) * width cells and `steps` separators: 118 tokens by default.
  `input_rows` (1..steps) is the number of rows the `next_rows` task shows in its input.
  """
  if rule_class is not None:
    if rule_class not in CLASSES:
      raise ValueError(f"cellular_automaton_config.rule_class must be 1, 2, 3 or 4, got "
                       f"{rule_class!r}.")
  elif rule is None or not 0 <= rule <= 255:
    raise ValueError(f"cellular_automaton_config needs a rule in 0..255 or a rule_class in 1..4, "
                     f"got rule={rule!r}, rule_class=None.")
  if boundary not in BOUNDARIES:
    raise ValueError(f"cellular_automaton_config.boundary must be one of {BOUNDARIES}, got "
                     f"{boundary!r}.")
  if width < 1 or steps < 1 or not 1 <= input_rows <= steps:
    raise ValueError(f"cellular_automaton_config needs width >= 1, steps >= 1 and "
                     f"1 <= input_rows <= steps, got {width}, {steps}, {input_rows}.")
  if not 0.0 <= density <= 1.0:
    raise ValueError(f"cellular_automaton_config.density must lie in [0, 1], got {density}.")
  return (None if rule_class is not None else rule), rule_class, width, steps, boundary, \
      density, input_rows


class CellularAutomaton:
  """Draws examples of an elementary cellular automaton over a token space."""

  def __init__(self, space: TokenSpace, rule: Optional[int] = 110,
               rule_class: Optional[int] = None, width: int = 16, steps: int = 6,
               boundary: str = "periodic", density: float = 0.5, input_rows: int = 1):
    self.rules = RULES_OF_CLASS[rule_class] if rule_class is not None else (rule,)
    self.width, self.steps, self.boundary = width, steps, boundary
    self.density, self.input_rows = density, input_rows
    self.cells = space.pool[:2]  # dead, live
    self.separator = space.word_divider

  def draw(self, rng: TaskRandom) -> Tuple[int, np.ndarray]:
    """(rule, rows): the rule (drawn first, if from a class) and the (steps + 1, width) rows."""
    rule = self.rules[rng.randrange(len(self.rules))] if len(self.rules) > 1 else self.rules[0]
    first = (rng.below(DENSITY_SCALE, self.width) < round(self.density * DENSITY_SCALE))
    return rule, evolve(first.astype(np.int64), rule, self.steps, self.boundary)

  def tokens(self, rows: np.ndarray) -> List[int]:
    """Rows as ids: each row's cells, rows separated by extra_id_1."""
    ids = self.cells[rows]
    column = np.full((len(rows), 1), self.separator, np.int64)
    return np.concatenate([ids, column], axis=1).reshape(-1)[:-1].tolist()

  def rows_of(self, ids: List[int]) -> np.ndarray:
    """Inverse of `tokens`: ids back to a 0/1 array of rows."""
    rows, row = [], []
    for t in ids + [self.separator]:
      if t == self.separator:
        rows.append(row)
        row = []
      else:
        row.append(int(t == self.cells[1]))
    return np.array(rows, np.int64)


def lm_builder(name: str):
  """A SyntheticSource `build` function: inputs = the task-name prefix, targets = all rows."""

  def build(space: TokenSpace):
    automaton = CellularAutomaton(space, *cellular_automaton_config())
    prefix = simple_tasks.name_prefix_ids(name, space)
    return lambda rng: {"inputs": list(prefix), "targets": automaton.tokens(automaton.draw(rng)[1])}
  return build


def next_rows_builder(name: str):
  """A SyntheticSource `build` function: inputs = prefix + the first rows, targets = the rest."""

  def build(space: TokenSpace):
    automaton = CellularAutomaton(space, *cellular_automaton_config())
    prefix = simple_tasks.name_prefix_ids(name, space)
    k = automaton.input_rows

    def generate(rng):
      rows = automaton.draw(rng)[1]
      return {"inputs": prefix + automaton.tokens(rows[:k]), "targets": automaton.tokens(rows[k:])}
    return generate
  return build
