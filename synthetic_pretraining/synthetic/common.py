"""What every generator shares: the vocabulary's token space and a fast per-example random stream.

A generator never sees a vocabulary directly. It sees a `TokenSpace` (the ordinary ids it may
draw content from, the sentinel ids that serve as dividers, an encoder for words) and a
`TaskRandom`, a `random.Random` reseeded for every example from (task, seed, split, index), with
vectorised bulk draws so that a 200-token body costs a few microseconds rather than a Python loop.
"""
import dataclasses
import hashlib
import random
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import seqio

from synthetic_pretraining.data import vocabularies

_MASK64 = (1 << 64) - 1
_2_TO_MINUS_32 = 2.0 ** -32
SPLIT_IDS = {"train": 0, "validation": 1}


@dataclasses.dataclass(frozen=True)
class TokenSpace:
  """The ids a task may use, derived from a vocabulary.

  Attributes:
    pool: the ordinary ids content is drawn from (int64 array, ascending): every id below the
      sentinels except pad, eos and bos. For T5's vocabulary that is 2..31999 (unk 2 and the bare
      word-boundary piece 3 included, as in the authors' generator); for `seqio.ByteVocabulary` it
      is 2..258 (unk 2 and the 256 bytes).
    vocab_size: ids in the vocabulary, sentinels included.
    num_extra_ids: sentinels at the top of the vocabulary (extra_id_0 is the highest id).
    eos_id: end-of-sequence id (appended by the SeqIO task, never part of generated content).
    encode: text -> ids with the vocabulary's own encoder.
    space_piece_id: id of a bare word-boundary piece that some SentencePiece models emit before
      digits (T5: 3); `encode_word` drops it when it leads, as the authors' generator did.
    fingerprint: identifies the vocabulary in caches.
  """
  pool: np.ndarray
  vocab_size: int
  num_extra_ids: int
  eos_id: int
  encode: Callable[[str], Sequence[int]]
  space_piece_id: Optional[int] = None
  fingerprint: Tuple = ()

  @classmethod
  def from_vocabulary(cls, vocabulary: seqio.Vocabulary) -> "TokenSpace":
    """Builds the token space of a seqio vocabulary (sentinels appended by seqio or built in)."""
    extra = vocabularies.num_sentinels(vocabulary)
    special = {vocabulary.pad_id, vocabulary.eos_id}
    bos = getattr(vocabulary, "bos_id", None)
    if bos is not None and bos >= 0:
      special.add(bos)
    pool = np.array([i for i in range(vocabulary.vocab_size - extra) if i not in special], np.int64)
    space_piece = None
    tokenizer = getattr(vocabulary, "tokenizer", None)
    if tokenizer is not None:
      piece = tokenizer.piece_to_id("\u2581")
      if piece != vocabulary.unk_id:
        space_piece = piece
    fingerprint = (type(vocabulary).__name__, vocabulary.vocab_size, extra,
                   getattr(vocabulary, "sentencepiece_model_file", None))
    return cls(pool=pool, vocab_size=vocabulary.vocab_size, num_extra_ids=extra,
               eos_id=vocabulary.eos_id, encode=vocabulary.encode, space_piece_id=space_piece,
               fingerprint=fingerprint)

  def sentinel(self, k: int) -> int:
    """Id of `extra_id_k` (seqio appends sentinels in reverse: extra_id_0 is the last id)."""
    if not 0 <= k < self.num_extra_ids:
      raise ValueError(f"extra_id_{k} does not exist: the vocabulary has {self.num_extra_ids} "
                       "extra ids.")
    return self.vocab_size - 1 - k

  @property
  def task_name_divider(self) -> int:
    """extra_id_0: separates the task-name prefix from the body."""
    return self.sentinel(0)

  @property
  def word_divider(self) -> int:
    """extra_id_1: separates words (longest_word)."""
    return self.sentinel(1)

  @property
  def arg_divider(self) -> int:
    """extra_id_2: separates the two arguments of a binary task."""
    return self.sentinel(2)

  @property
  def empty_output(self) -> int:
    """extra_id_3: the whole target when a task's output would be empty."""
    return self.sentinel(3)

  def encode_word(self, text: str) -> list:
    """Encodes a short answer ('22', 'yes'), dropping a leading bare word-boundary piece."""
    ids = [int(i) for i in self.encode(text)]
    if len(ids) > 1 and self.space_piece_id is not None and ids[0] == self.space_piece_id:
      ids = ids[1:]
    return ids

  def join_args(self, first: Sequence[int], second: Sequence[int]) -> list:
    """The body of a binary task: first + [extra_id_2] + second."""
    return list(first) + [self.arg_divider] + list(second)

  def split_args(self, body: Sequence[int]) -> Tuple[list, list]:
    """Inverse of `join_args` (content ids never equal a sentinel, so the split is unambiguous)."""
    body = list(body)
    i = body.index(self.arg_divider)
    return body[:i], body[i + 1:]


def stable_id(name: str) -> int:
  """A 64-bit id of a task name, the same in every process and Python version."""
  return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def stream_key(task_id: int, seed: int, split: str) -> int:
  """The part of an example key shared by a whole stream: (task, seed, split)."""
  return ((task_id & _MASK64) << 64 | (seed & _MASK64)) << 2 | SPLIT_IDS[split]


def example_key(stream: int, index: int, attempt: int = 0) -> int:
  """The integer that seeds one example: distinct for every (stream, index, attempt)."""
  if not 0 <= attempt < (1 << 16):
    raise ValueError(f"attempt {attempt} out of range")
  return ((stream << 64 | (index & _MASK64)) << 16) | attempt


class TaskRandom(random.Random):
  """A `random.Random` for one example at a time, with fast bulk draws.

  Scalar draws (`randint`, `random`, `choice`, ...) are the standard library's. The bulk helpers
  below turn one `getrandbits` call into a NumPy array, so their cost barely grows with length.

  Attributes:
    space: the task's `TokenSpace`.
    min_length, max_length: the configured body length range (simple tasks and custom tasks).
  """

  def __init__(self, space: TokenSpace, min_length: int = 10, max_length: int = 220):
    super().__init__(0)
    self.space = space
    self.min_length = min_length
    self.max_length = max_length
    self._pool = space.pool
    self._pool_list = space.pool.tolist()

  def below(self, n: int, count: int) -> np.ndarray:
    """`count` i.i.d. uniform integers in [0, n) (int64 array; n < 2**31).

    One `getrandbits` call gives 32 random bits per value, scaled by n / 2**32 and floored.
    """
    if count <= 0:
      return np.zeros((0,), np.int64)
    if not 0 < n < (1 << 31):
      raise ValueError(f"cannot draw below {n}")
    words = np.frombuffer(self.getrandbits(32 * count).to_bytes(4 * count, "little"), "<u4")
    return (words * (n * _2_TO_MINUS_32)).astype(np.int64)

  def token(self) -> int:
    """One uniform id from the token pool."""
    return self._pool_list[self.randrange(len(self._pool_list))]

  def token_array(self, count: int) -> np.ndarray:
    """`count` i.i.d. uniform ids from the token pool, as an int64 array."""
    return self._pool[self.below(len(self._pool), count)]

  def tokens(self, count: int) -> list:
    """`count` i.i.d. uniform ids from the token pool."""
    return self.token_array(count).tolist()

  def draw(self, population: Sequence[int], count: int) -> list:
    """`count` i.i.d. uniform draws (with replacement) from `population`."""
    return np.asarray(population)[self.below(len(population), count)].tolist()

  def distinct_tokens(self, count: int) -> list:
    """`count` distinct pool ids, a uniformly random ordered sample without replacement."""
    return self.distinct(self._pool, count)

  def distinct(self, population: Sequence[int], count: int) -> list:
    """`count` distinct elements of `population` (itself distinct), in uniformly random order."""
    population = np.asarray(population)
    n = len(population)
    if count > n:
      raise ValueError(f"cannot draw {count} distinct values from {n}")
    if 4 * count > n:  # dense: a random permutation is cheapest
      return population[self.permutation(n)[:count]].tolist()
    # Sparse: i.i.d. draws with repeats discarded are an ordered uniform sample without replacement.
    out = []
    while len(out) < count:
      out = list(dict.fromkeys(out + self.below(n, count - len(out) + 4).tolist()))
    return population[out[:count]].tolist()

  def permutation(self, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) (argsort of 64-bit random keys)."""
    if n <= 1:
      return np.arange(n)
    keys = np.frombuffer(self.getrandbits(64 * n).to_bytes(8 * n, "little"), "<u8")
    return np.argsort(keys, kind="stable")

  def shuffled(self, items: Sequence[int]) -> list:
    """A uniformly shuffled copy of `items`."""
    return np.asarray(items)[self.permutation(len(items))].tolist()

  def partition_array(self, total: int, parts: int, minimum: int = 1) -> np.ndarray:
    """Splits `total` into `parts` counts >= minimum: minimum + Multinomial(rest, uniform)."""
    rest = total - parts * minimum
    if parts <= 0 or rest < 0:
      raise ValueError(f"cannot split {total} into {parts} parts of at least {minimum}")
    return np.bincount(self.below(parts, rest), minlength=parts) + minimum

  def partition(self, total: int, parts: int, minimum: int = 1) -> list:
    """`partition_array` as a list."""
    return self.partition_array(total, parts, minimum).tolist()
