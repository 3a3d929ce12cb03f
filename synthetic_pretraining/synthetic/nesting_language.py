"""The nesting-dependency artificial language of Ri & Tsuruoka (2022, "Pretraining with Artificial
Language"), whose generator the paper's authors did not release; written here from that paper.

The language has P head/dependent token pairs. Head types follow a Zipf law: pair of rank r (1..P)
has weight floor(P / r). A sentence:

1. draws a length L from a distribution of English Wikipedia sentence lengths (6..60 tokens,
   Ri & Tsuruoka's empirical fit, `SENTENCE_LENGTH_COUNTS`);
2. draws H = L // 2 pairs (plus one with probability 1/2, at least one) from the Zipf law;
3. writes them out with a stack: while pairs remain, if the stack is empty or with probability
   0.4 it opens the next pair (emits its head, pushes its dependent), otherwise it closes the most
   recent open pair (pops and emits its dependent); finally the open pairs are closed.

Head-dependent arcs therefore nest like balanced brackets: every sentence is a well-formed
bracket sequence of 2H tokens. Pair r's head is the pool's (2r)-th ordinary id and its dependent
the next one (with T5's vocabulary, P = min(16000, 31998 // 2) = 15999 pairs over ids 2..31999,
matching the "32000" vocabulary the authors' data used). The paper trains on it with T5's span
corruption (noise density 0.15, mean span length 3; `span_corruption.py`).
"""
from typing import Dict, List

import gin
import numpy as np

from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace

# Ri & Tsuruoka's sentence length distribution (counts by length, index = length in tokens).
SENTENCE_LENGTH_COUNTS = (
    0, 0, 0, 0, 0, 0, 303, 303, 342, 308, 275, 310, 337, 356, 340, 309, 321, 358, 319, 331, 343,
    310, 310, 350, 284, 284, 307, 252, 246, 255, 209, 207, 177, 168, 165, 128, 149, 133, 109, 123,
    102, 99, 81, 81, 73, 60, 61, 44, 43, 43, 52, 39, 26, 30, 29, 24, 34, 18, 8, 17, 15)


@gin.configurable
def language_config(num_pairs: int = 16_000, open_probability: float = 0.4):
  """Gin: `nesting_language.language_config.num_pairs = 8000` (capped by the vocabulary)."""
  if num_pairs < 1 or not 0.0 < open_probability < 1.0:
    raise ValueError(f"language_config needs num_pairs >= 1 and 0 < open_probability < 1, got "
                     f"{num_pairs}, {open_probability}.")
  return num_pairs, open_probability


class NestingLanguage:
  """Sentences of the nesting-dependency language over a token space."""

  def __init__(self, space: TokenSpace, num_pairs: int = 16_000, open_probability: float = 0.4):
    pairs = min(num_pairs, len(space.pool) // 2)
    if pairs < 1:
      raise ValueError("the vocabulary has too few ordinary ids for one head/dependent pair")
    self.num_pairs = pairs
    self.open_probability = open_probability
    self.heads = space.pool[0:2 * pairs:2].tolist()
    self.dependents = space.pool[1:2 * pairs:2].tolist()
    self._zipf = np.cumsum(pairs // np.arange(1, pairs + 1))
    self._lengths = np.cumsum(SENTENCE_LENGTH_COUNTS)

  def _sample(self, rng: TaskRandom, cumulative: np.ndarray, count: int) -> np.ndarray:
    return np.searchsorted(cumulative, rng.below(int(cumulative[-1]), count), side="right")

  def sentence(self, rng: TaskRandom) -> List[int]:
    """One sentence: a nested sequence of heads and dependents."""
    length = int(self._sample(rng, self._lengths, 1)[0])
    half = max(1, length // 2 + (1 if rng.random() < 0.5 else 0))
    ranks = self._sample(rng, self._zipf, half).tolist()
    out, stack = [], []
    while ranks:
      if not stack or rng.random() < self.open_probability:
        rank = ranks.pop()
        out.append(self.heads[rank])
        stack.append(self.dependents[rank])
      else:
        out.append(stack.pop())
    out.extend(reversed(stack))
    return out

  def __call__(self, rng: TaskRandom) -> Dict[str, List[int]]:
    return {"targets": self.sentence(rng)}


def build(space: TokenSpace) -> NestingLanguage:
  """A SyntheticSource `build` function: the language under the gin configuration."""
  return NestingLanguage(space, *language_config())
