"""The paper's 18 simple token tasks: how a body is sampled and what the target is.

Every task is a sampler (`TaskRandom` -> body ids) and a target function (body, `TokenSpace`) ->
output ids. An example's input is the vocabulary's encoding of the authors' internal task name,
then extra_id_0, then the body; binary tasks join their two arguments with extra_id_2. An empty
output becomes [extra_id_3]. Bodies are redrawn until their length lies in the configured range
(10..220 by default, as in the paper). The numbers in the samplers are the authors' (PAPER_FACTS
§2.3), written in terms of that range so that other ranges scale them; at (10, 220) they are
exactly the paper's.

The four set operations return Python's own `set` iteration order, as the authors' generator did;
this reproduces their outputs bit for bit on CPython (see docs/synthetic_tasks.md).
"""
import dataclasses
from typing import Any, Callable, Dict, List, Sequence, Tuple

import gin
import numpy as np

from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace

MAX_BODY_ATTEMPTS = 10_000


@gin.configurable
def length_range(min_length: int = 10, max_length: int = 220) -> Tuple[int, int]:
  """Body length range of the simple tasks and of custom tasks (read when a dataset is built).

  Gin: `simple_tasks.length_range.max_length = 40`. The paper uses 10..220.
  """
  if not 1 <= min_length <= max_length:
    raise ValueError(f"length_range needs 1 <= min_length <= max_length, got {min_length}, "
                     f"{max_length}.")
  return min_length, max_length


# ------------------------------------------------------------------------------------------------
# Samplers. `rng.min_length`/`rng.max_length` are the body length range (10 and 220 in the paper).


def sample_uniform(rng: TaskRandom) -> list:
  """L ~ U{lo..hi} i.i.d. tokens (copy, reverse, first/last token, duplicate, length)."""
  return rng.tokens(rng.randint(rng.min_length, rng.max_length))


def _runs(rng: TaskRandom, n: int, shuffle: bool, symbols: Sequence[int] = None) -> list:
  """The authors' run generator: k symbols, each repeated a positive number of times, n in all."""
  if symbols is None:
    k = rng.randint(1, n)
    chosen = rng.token_array(k)
  else:
    k = len(symbols)
    chosen = np.asarray(symbols)[rng.below(k, k)]
  body = np.repeat(chosen, rng.partition_array(n, k, 1))
  return body[rng.permutation(n)].tolist() if shuffle else body.tolist()


def sample_set(rng: TaskRandom) -> list:
  """Runs of k ~ U{1..n} symbols, shuffled (set)."""
  return _runs(rng, rng.randint(rng.min_length, rng.max_length), shuffle=True)


def sample_deduplicate(rng: TaskRandom) -> list:
  """Runs of k ~ U{1..n} symbols, in place (deduplicate)."""
  return _runs(rng, rng.randint(rng.min_length, rng.max_length), shuffle=False)


def sample_longest_word(rng: TaskRandom) -> list:
  """w ~ U{1..hi/2} words of positive lengths, m tokens in all, joined by extra_id_1."""
  lo, hi = rng.min_length, rng.max_length
  words = rng.randint(1, max(1, hi // 2))
  total = rng.randint(max(lo - (words - 1), words), hi - (words - 1))
  tokens = rng.token_array(total)
  ends = np.cumsum(rng.partition_array(total, words, 1))[:-1]
  return np.insert(tokens, ends, rng.space.word_divider).tolist()


def sample_count(rng: TaskRandom) -> list:
  """c ~ U{lo-2..hi-2}; k ~ U{0..c} copies of a query among c - k i.i.d. tokens, shuffled."""
  # Clamped so that short ranges (min_length < 2) draw a valid count; too-long bodies are redrawn.
  c = rng.randint(max(0, rng.min_length - 2), max(0, rng.max_length - 2))
  query = rng.token()
  k = rng.randint(0, c)
  seq = rng.shuffled([query] * k + rng.tokens(c - k))
  return rng.space.join_args(seq, [query])


def _present(rng: TaskRandom) -> Tuple[list, list]:
  """A sequence with r >= 1 copies of a query (the authors' 'at least one query' generator)."""
  max_total = rng.max_length - 1
  q = rng.randint(1, max(1, max_total // 3))
  s = rng.randint(2 * q, max(2 * q, max_total - q))
  query = rng.tokens(q)
  copies = rng.randint(1, s // q)
  chunks = rng.partition(s - copies * q, copies + 1, 0)
  filler = rng.tokens(s - copies * q)
  seq, start = [], 0
  for i, size in enumerate(chunks):
    if i:
      seq.extend(query)
    seq.extend(filler[start:start + size])
    start += size
  return seq, query


def find(seq: Sequence[int], query: Sequence[int]) -> int:
  """Index of the first contiguous occurrence of `query` in `seq`, or -1."""
  q = len(query)
  if q == 0:
    return 0
  first = query[0]
  for i in range(len(seq) - q + 1):
    if seq[i] == first and list(seq[i:i + q]) == list(query):
      return i
  return -1


def _absent(rng: TaskRandom) -> Tuple[list, list]:
  """A sequence that does not contain the query (with P=0.01 the query is the longer one)."""
  lo, hi = rng.min_length, rng.max_length
  while True:
    if rng.random() < 0.01:
      q = rng.randint(lo + 1, max(lo + 1, hi))  # lo == hi: too long, redrawn by make_example
      s = rng.randint(0, q - 1)
    else:
      s = rng.randint(lo, hi)
      q = rng.randint(lo, s)
    seq, query = rng.tokens(s), rng.tokens(q)
    if find(seq, query) < 0:
      return seq, query


def sample_delete(rng: TaskRandom) -> list:
  """P=0.75 the query occurs in the sequence, else not; body = seq + [extra_id_2] + query."""
  seq, query = _present(rng) if rng.random() < 0.75 else _absent(rng)
  return rng.space.join_args(seq, query)


def sample_search(rng: TaskRandom) -> list:
  """P=0.5 the query occurs in the sequence, else not."""
  seq, query = _present(rng) if rng.random() < 0.5 else _absent(rng)
  return rng.space.join_args(seq, query)


def sample_sort(rng: TaskRandom) -> list:
  """An order of o ~ U{5..(hi-1)/2} tokens, and runs of tokens drawn from it, shuffled."""
  o = rng.randint(5, max(5, (rng.max_length - 1) // 2))
  order = rng.tokens(o)
  s = rng.randint(o, max(o, rng.max_length - 1 - o))
  seq = _runs(rng, s, shuffle=True, symbols=order)
  return rng.space.join_args(seq, order)


def sample_replace(rng: TaskRandom) -> list:
  """s ~ U{lo-3..hi-3} tokens; the key is one of its distinct values, the value a fresh token."""
  seq = rng.tokens(rng.randint(max(1, rng.min_length - 3), max(1, rng.max_length - 3)))
  values = list(dict.fromkeys(seq))
  key = values[rng.randrange(len(values))]
  return rng.space.join_args(seq, [key, rng.token()])


def sample_set_operation(rng: TaskRandom) -> list:
  """T ~ U{lo-1..hi-1} tokens over a sub-vocabulary of T/2 ids, split at n1 ~ U{0..T}."""
  total = rng.randint(max(2, rng.min_length - 1), max(2, rng.max_length - 1))
  first = rng.randint(0, total)
  symbols = np.asarray(rng.distinct_tokens(total // 2))
  both = symbols[rng.below(len(symbols), total)].tolist()
  return rng.space.join_args(both[:first], both[first:])


# ------------------------------------------------------------------------------------------------
# Targets: (body, space) -> output ids (a list, an int, or a short string to encode).


def target_copy(body, space):
  del space
  return list(body)


def target_reverse(body, space):
  del space
  return list(body)[::-1]


def target_first(body, space):
  del space
  return [body[0]]


def target_last(body, space):
  del space
  return [body[-1]]


def target_duplicate(body, space):
  del space
  return [t for t in body for _ in range(2)]


def target_length(body, space):
  return space.encode_word(str(len(body)))


def target_set(body, space):
  del space
  return list(dict.fromkeys(body))


def target_deduplicate(body, space):
  del space
  return [t for i, t in enumerate(body) if i == 0 or body[i - 1] != t]


def target_longest_word(body, space):
  divider, cuts = space.word_divider, [-1]
  try:
    while True:
      cuts.append(body.index(divider, cuts[-1] + 1))
  except ValueError:
    cuts.append(len(body))
  sizes = [end - start - 1 for start, end in zip(cuts, cuts[1:])]
  best = sizes.index(max(sizes))  # the first of the longest words
  return body[cuts[best] + 1:cuts[best + 1]]


def target_count(body, space):
  seq, query = space.split_args(body)
  return space.encode_word(str(seq.count(query[0])))


def target_delete(body, space):
  seq, query = space.split_args(body)
  i = find(seq, query)
  return seq if i < 0 else seq[:i] + seq[i + len(query):]


def target_search(body, space):
  seq, query = space.split_args(body)
  return space.encode_word("yes" if find(seq, query) >= 0 else "no")


def target_sort(body, space):
  seq, order = space.split_args(body)
  rank = dict(zip(order, range(len(order))))  # a repeated token takes its last position
  return sorted(seq, key=rank.__getitem__)


def target_replace(body, space):
  seq, (key, value) = space.split_args(body)
  return [value if t == key else t for t in seq]


# Python's set iteration order, exactly as the authors' generator produced it.
def target_union(body, space):
  a, b = space.split_args(body)
  return list(set(a) | set(b))


def target_intersect(body, space):
  a, b = space.split_args(body)
  return list(set(a) & set(b))


def target_set1_minus_set2(body, space):
  a, b = space.split_args(body)
  return list(set(a) - set(b))


def target_set2_minus_set1(body, space):
  a, b = space.split_args(body)
  return list(set(b) - set(a))


# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SimpleTask:
  """A body-to-output task: the prefix is `prefix` encoded by the vocabulary, then extra_id_0.

  Attributes:
    name: the SeqIO task id.
    prefix: the text whose encoding starts every input (the authors' internal task name), or
      None for no prefix and no divider.
    sample: TaskRandom -> body ids.
    target: (body, TokenSpace) -> output ids, an int, or a string to encode.
  """
  name: str
  prefix: Any
  sample: Callable[[TaskRandom], Sequence[int]]
  target: Callable[[List[int], TokenSpace], Any]


def as_list(ids) -> list:
  """An id sequence as a list (NumPy arrays become lists of Python ints)."""
  if isinstance(ids, list):
    return ids
  if isinstance(ids, np.ndarray):
    return ids.tolist()
  return list(ids)


def output_ids(output, space: TokenSpace) -> List[int]:
  """Normalises a target function's result to a non-empty id list."""
  if isinstance(output, str):
    output = space.encode_word(output)
  elif isinstance(output, (int, np.integer)):
    output = [int(output)]
  return as_list(output) or [space.empty_output]


def make_example(task: SimpleTask, rng: TaskRandom, prefix_ids: Sequence[int]) -> Dict[str, list]:
  """Draws bodies until one fits the length range; returns {'inputs', 'targets'} id lists."""
  for _ in range(MAX_BODY_ATTEMPTS):
    body = as_list(task.sample(rng))
    if rng.min_length <= len(body) <= rng.max_length:
      break
  else:
    raise RuntimeError(
        f"Task {task.name!r}: no body with a length in [{rng.min_length}, {rng.max_length}] after "
        f"{MAX_BODY_ATTEMPTS} draws; widen the length range.")
  targets = output_ids(task.target(body, rng.space), rng.space)
  inputs = list(prefix_ids) + body if task.prefix is not None else body
  return {"inputs": inputs, "targets": targets}


def prefix_ids(task: SimpleTask, space: TokenSpace) -> List[int]:
  """The encoded task name and extra_id_0, or nothing for tasks without a prefix."""
  if task.prefix is None:
    return []
  return name_prefix_ids(task.prefix, space)


def name_prefix_ids(text: str, space: TokenSpace) -> List[int]:
  """`text` encoded by the vocabulary, then extra_id_0: the prefix of a task's inputs."""
  return [int(t) for t in space.encode(text)] + [space.task_name_divider]


# (SeqIO id, the authors' internal name, sampler, target), in the authors' order.
_TABLE = [
    ("set", "set", sample_set, target_set),
    ("identity", "copy", sample_uniform, target_copy),
    ("delete", "delete", sample_delete, target_delete),
    ("sort", "sort", sample_sort, target_sort),
    ("union", "union", sample_set_operation, target_union),
    ("set1_minus_set2", "set_1_minus_2", sample_set_operation, target_set1_minus_set2),
    ("set2_minus_set1", "set_2_minus_1", sample_set_operation, target_set2_minus_set1),
    ("replace", "replace", sample_replace, target_replace),
    ("duplicate", "duplicate", sample_uniform, target_duplicate),
    ("intersect", "intersect", sample_set_operation, target_intersect),
    ("reverse", "reverse", sample_uniform, target_reverse),
    ("deduplicate", "deduplicate", sample_deduplicate, target_deduplicate),
    ("last_token", "last_char", sample_uniform, target_last),
    ("first_token", "first_char", sample_uniform, target_first),
    ("search", "search", sample_search, target_search),
    ("longest_word", "longest_word", sample_longest_word, target_longest_word),
    ("length", "length", sample_uniform, target_length),
    ("count", "count", sample_count, target_count),
]

TASKS: Dict[str, SimpleTask] = {
    name: SimpleTask(name=name, prefix=internal, sample=sample, target=target)
    for name, internal, sample, target in _TABLE}
