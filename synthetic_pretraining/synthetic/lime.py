"""LIME (Wu et al. 2021) as used by the paper: induct, deduct and abduct over pool tokens.

Each example samples 68 distinct pool ids: 24 "upper-case" (variables), 24 "lower-case" and 20
"math" symbols. A pattern mixes 2*num_chars variable occurrences (num_chars ~ U{3..5}, drawn from
the first num_chars variables) with pattern_length ~ U{5..19} math symbols, shuffled. Each used
variable gets a substitution of U{2..8} lower/math symbols; the result is the pattern with every
variable replaced. With header = <UPPER> vars <LOWER> lower <MATH> math <sep>:

    induct: header result <sep> substitution -> pattern
    deduct: header pattern <sep> substitution -> result
    abduct: header pattern <sep> result      -> substitution

where a substitution is serialised `X : [ s1 .. sn ]` per variable. Examples are redrawn until
input and output have at most 220 tokens, counting the commas the authors' text format had between
variables (then removed); gin's `lime_length_range` bounds them (min and max, the paper: 0..220),
so a run can pick feature lengths that never cut a LIME example. The fixed header alone is 51-53
tokens and nothing much shorter than 75 tokens can be drawn. The seven special symbols are the seven lowest sentinels (T5:
32000..32006 for ':', '<sep>', '<UPPER>', '[', '<LOWER>', '<MATH>', ']'); no task prefix is added.
Variables are listed in Python's set order, as in the authors' generator.
"""
from typing import Dict, List, Tuple

import gin

from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace

MODES = ("induct", "deduct", "abduct")
MAX_LENGTH = 220
SPECIALS = (":", "<sep>", "<UPPER>", "[", "<LOWER>", "<MATH>", "]")
MAX_ATTEMPTS = 1000


@gin.configurable("lime_length_range")
def length_range(min_length: int = 0, max_length: int = MAX_LENGTH) -> Tuple[int, int]:
  """Bounds on LIME lengths (read when a dataset is built): inputs in [min, max], outputs <= max.

  Gin: `lime_length_range.max_length = 127` keeps every input and output within 127 tokens (plus
  EOS: 128). Outputs (11-60 tokens) have no lower bound. Lengths count the authors' commas, as their 220 limit did, so they are upper bounds
  on the token counts. (A name of its own: the simple tasks' `length_range` bounds bodies, a
  different quantity.)
  """
  if not 0 <= min_length <= max_length:
    raise ValueError(f"lime_length_range needs 0 <= min_length <= max_length, got {min_length}, "
                     f"{max_length}.")
  return min_length, max_length


def special_ids(space: TokenSpace) -> Dict[str, int]:
  """The LIME symbols: the lowest len(SPECIALS) sentinel ids, in the authors' order."""
  if space.num_extra_ids < len(SPECIALS):
    raise ValueError(f"LIME needs {len(SPECIALS)} sentinel ids; the vocabulary has "
                     f"{space.num_extra_ids}.")
  base = space.vocab_size - space.num_extra_ids
  return {s: base + i for i, s in enumerate(SPECIALS)}


def _draw(rng: TaskRandom, mode: str, ids: Dict[str, int]):
  """One draw: (inputs, targets, input length with commas, target length with commas)."""
  symbols = rng.distinct_tokens(68)
  upper, lower, math = symbols[:24], symbols[24:48], symbols[48:]
  num_chars = rng.randint(3, 5)
  pattern_length = rng.randint(5, 19)
  occurrences = rng.draw(upper[:num_chars], 2 * num_chars)
  variables = list(set(occurrences))  # CPython set order, as the authors' generator
  pattern = rng.shuffled(occurrences + rng.draw(math, pattern_length))
  substitution, serialised = {}, []
  for var in variables:
    substitution[var] = rng.draw(lower + math, rng.randint(2, 8))
    serialised += [var, ids[":"], ids["["]] + substitution[var] + [ids["]"]]
  result = [t for symbol in pattern for t in substitution.get(symbol, [symbol])]
  header = ([ids["<UPPER>"]] + variables + [ids["<LOWER>"]] + lower + [ids["<MATH>"]] + math
            + [ids["<sep>"]])
  commas = len(variables) - 1
  if mode == "induct":
    return header + result + [ids["<sep>"]] + serialised, pattern, commas, 0
  if mode == "deduct":
    return header + pattern + [ids["<sep>"]] + serialised, result, commas, 0
  return header + pattern + [ids["<sep>"]] + result, serialised, 0, commas


def make_example(rng: TaskRandom, mode: str, ids: Dict[str, int], max_length: int = MAX_LENGTH,
                 min_length: int = 0) -> Dict[str, List[int]]:
  """A LIME example of `mode`: input length in [min_length, max_length], output <= max_length."""
  if mode not in MODES:
    raise ValueError(f"LIME mode must be one of {MODES}, got {mode!r}")
  for _ in range(MAX_ATTEMPTS):
    inputs, targets, in_commas, out_commas = _draw(rng, mode, ids)
    if (min_length <= len(inputs) + in_commas <= max_length
        and len(targets) + out_commas <= max_length):
      return {"inputs": inputs, "targets": targets}
  raise RuntimeError(f"LIME {mode}: nothing within {min_length}..{max_length} tokens in "
                     f"{MAX_ATTEMPTS} draws (lime_length_range; LIME inputs are 75-220 tokens).")


def builder(mode: str, max_length=None):
  """A SyntheticSource `build` function for one LIME mode.

  The length bounds are `lime_length_range()` when the dataset is built (register the source
  with `config=length_range` so a change of binding rebuilds it), or a fixed `max_length`.
  """

  def build(space: TokenSpace):
    ids = special_ids(space)
    low, high = (0, max_length) if max_length is not None else length_range()
    return lambda rng: make_example(rng, mode, ids, high, low)
  return build
