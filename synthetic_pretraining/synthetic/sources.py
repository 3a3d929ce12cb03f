"""`SyntheticSource`: a seqio DataSource whose examples are pure functions of their position.

Example `index` of split `split` under `seed` is drawn from a `TaskRandom` seeded with
(task, seed, split, index, attempt). Nothing is stored, so every host generates its own indices
(index = shard_index + k * num_shards), a restored tf.data iterator continues exactly where it
stopped, and two shards never produce the same example.

Train/validation disjointness is by construction:

* the validation split is the first `validation_size` distinct inputs drawn from a fixed seed
  (independent of the run's seed), generated once per process and kept in memory;
* a train draw whose input is one of those validation inputs is rejected and redrawn (attempt + 1).

So no validation input can ever appear in train, whatever the seed, and the check costs one hash
lookup per example. (Deciding the split from the input's hash would also work, but generating the
validation split would then cost as many draws as the hash buckets.)
"""
import dataclasses
import functools
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import gin
import numpy as np
import seqio
import tensorflow as tf

from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.synthetic import common
from synthetic_pretraining.synthetic import workers

DEFAULT_SEED = 0  # seed=None means this: runs are reproducible by default.
VALIDATION_SEED = 0x5EED  # the validation split never depends on the run's seed.
MAX_TRAIN_ATTEMPTS = 1000
UNBOUNDED = 1 << 62
BLOCK_SIZE = 64  # examples per Python call: amortises the tf.numpy_function overhead.

Generator = Callable[[common.TaskRandom], Dict[str, Any]]


@gin.configurable
def split_sizes(validation: int = 10_000, train: Optional[int] = None) -> Tuple[int, Optional[int]]:
  """Sizes of the synthetic splits, read when a dataset is built.

  Gin: `sources.split_sizes.validation = 2000`. `train=None` draws fresh examples for ever; an
  integer fixes the train set to that many indices, repeated (and reshuffled) every epoch, as the
  paper's 1M-example files were.
  """
  if validation < 1:
    raise ValueError(f"split_sizes(validation={validation}) must be at least 1.")
  if train is not None and train < 1:
    raise ValueError(f"split_sizes(train={train}) must be None or at least 1.")
  return validation, train


@dataclasses.dataclass(frozen=True)
class GlobalRowsShardInfo(seqio.ShardInfo):
  """A process's rows of every global batch, for sources whose examples are rows one to one.

  The global stream is the one-process stream; position q of it is row q % batch_size of global
  batch q // batch_size, and process `index` of `num_shards` keeps rows
  [index * b, (index + 1) * b) with b = batch_size / num_shards. So the global batch at a step
  holds the same examples in the same rows whatever the number of processes, and each process
  generates only its own rows. Positions restart when seqio repeats a finite split, so a finite
  split must hold a whole number of global batches (`data.process_layout` sees to it).
  """
  batch_size: int = 1

  def keeps(self, position):
    """Whether this process keeps stream position `position` (a tf int64 scalar)."""
    rows = self.batch_size // self.num_shards
    row = position % self.batch_size
    return (row >= self.index * rows) & (row < (self.index + 1) * rows)


class _State:
  """A source resolved against the current vocabulary and gin configuration."""

  def __init__(self, space, generator, min_length, max_length, validation_size, train_size):
    self.space = space
    self.generator = generator
    self.min_length = min_length
    self.max_length = max_length
    self.validation_size = validation_size
    self.train_size = train_size
    self.validation: Optional[List[Dict[str, Any]]] = None
    self.validation_keys: Optional[set] = None


class SyntheticSource(seqio.DataSource):
  """Generates examples on the fly from a generator function.

  Args:
    name: the task name (part of every example's seed).
    build: TokenSpace -> generator; the generator maps a seeded `TaskRandom` to a dict of
      features (id lists, or strings when `text=True`). Called when a dataset is built, so the
      vocabulary and gin bindings in force then are used.
    features: the feature names the generator returns.
    text: features are strings (tokenized later by the task's preprocessors), not ids.
    length_range: (min, max) body length given to the generator's `TaskRandom`; None reads
      `simple_tasks.length_range()` from gin.
    validation_size, train_size: override `split_sizes()` for this task.
    vocabulary: the vocabulary whose ids are generated (default: the configured one, read
      when a dataset is built).
    config: returns the gin-dependent settings of `build` (anything hashable), so that a change
      of bindings builds a new generator.
    key_feature: the feature that must differ between train and validation examples, and that
      is distinct within the validation split (default: inputs if there are inputs); language-
      model tasks whose inputs are a fixed prefix use 'targets'.
    description: the task's one-line description in `python -m synthetic_pretraining.tasks`.
  """

  def __init__(self, name: str, build: Callable[[common.TokenSpace], Generator], *,
               features: Sequence[str] = ("inputs", "targets"), text: bool = False,
               length_range: Optional[Tuple[int, int]] = None,
               validation_size: Optional[int] = None, train_size: Optional[int] = None,
               vocabulary: Optional[seqio.Vocabulary] = None,
               config: Optional[Callable[[], Any]] = None, key_feature: Optional[str] = None,
               description: Optional[str] = None):
    super().__init__(splits=("train", "validation"), caching_permitted=False,
                     performs_internal_shuffling=True)
    self.name = name
    self._task_id = common.stable_id(name)
    self._build = build
    self.features = tuple(features)
    self.text = text
    self._length_range = length_range
    self._validation_size = validation_size
    self._train_size = train_size
    self._vocabulary = vocabulary
    self._config = config or (lambda: None)
    if key_feature is not None and key_feature not in self.features:
      raise ValueError(f"key_feature {key_feature!r} is not one of the features {self.features}.")
    self._key_feature = key_feature or ("inputs" if "inputs" in self.features else self.features[0])
    self.description = description
    self._states: Dict[Tuple, _State] = {}
    self._lock = threading.Lock()

  # seqio.DataSource interface ------------------------------------------------------------------

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def list_shards(self, split: str) -> Sequence[str]:
    return [f"{self.name}-{split}"]

  def num_input_examples(self, split: str) -> Optional[int]:
    state = self.state()
    return state.validation_size if split == "validation" else state.train_size

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, *, sequence_length=None,
                  use_cached: bool = False, num_epochs: Optional[int] = 1) -> tf.data.Dataset:
    """This shard's examples of `split`: train is unbounded unless a train size is set."""
    del sequence_length, use_cached, num_epochs  # repetition is seqio's job
    state = self.state()
    seed = _as_seed(seed)
    rows = shard_info if isinstance(shard_info, GlobalRowsShardInfo) else None
    first, step = (shard_info.index, shard_info.num_shards) if shard_info and not rows else (0, 1)
    if split == "validation":
      self._ensure_validation(state)
      indices = tf.data.Dataset.range(first, state.validation_size, step)
    elif split == "train":
      indices = tf.data.Dataset.range(first, state.train_size or UNBOUNDED, step)
      if state.train_size and shuffle:
        indices = indices.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    else:
      raise ValueError(f"Task {self.name!r} has splits 'train' and 'validation', not {split!r}.")
    if rows is not None:
      indices = indices.enumerate().filter(lambda q, _: rows.keeps(q)).map(lambda _, i: i)
    count = workers.generation_workers() if split == "train" else 0
    block = functools.partial(self._block_arrays, state, split, seed, count)
    blocks = indices.batch(BLOCK_SIZE)
    if count <= 1:
      return blocks.map(functools.partial(self._to_tensors, block)).unbatch()
    # Each call waits on a worker process (without the GIL); twice as many calls as workers keep
    # them busy while results travel back. Deterministic: blocks come out in index order.
    return blocks.map(functools.partial(self._to_tensors, block), num_parallel_calls=2 * count,
                      deterministic=True).unbatch()

  # Pure access ----------------------------------------------------------------------------------

  def state(self) -> _State:
    """Resolves the vocabulary, length range and split sizes now in force (cached)."""
    space = _token_space(self._vocabulary or vocabularies.configured_vocabulary())
    if self._length_range is not None:
      min_length, max_length = self._length_range
    else:
      from synthetic_pretraining.synthetic import simple_tasks  # pylint: disable=import-outside-toplevel
      min_length, max_length = simple_tasks.length_range()
    validation_size, train_size = split_sizes()
    validation_size = self._validation_size or validation_size
    train_size = self._train_size or train_size
    key = (space.fingerprint, min_length, max_length, validation_size, train_size, self._config())
    with self._lock:
      if key not in self._states:
        self._states[key] = _State(space, self._build(space), min_length, max_length,
                                   validation_size, train_size)
      return self._states[key]

  def example(self, split: str, index: int, seed: Optional[int] = None) -> Dict[str, Any]:
    """Example `index` of `split` exactly as the dataset yields it (before preprocessing)."""
    state = self.state()
    if split == "validation":
      return self._ensure_validation(state)[index]
    return self._train_example(state, self._rng(state), _as_seed(seed), index)

  def validation_examples(self) -> List[Dict[str, Any]]:
    """The whole validation split (distinct inputs, a fixed seed)."""
    return self._ensure_validation(self.state())

  def draw(self, split: str, index: int, seed: Optional[int] = None, attempt: int = 0):
    """The raw draw for (split, index, attempt), before any rejection."""
    state = self.state()
    return self._draw(state, self._rng(state), _as_seed(seed), split, index, attempt)

  def membership_key(self, example: Mapping[str, Any]):
    """The value that must differ between train and validation examples (their input, or the
    source's `key_feature`)."""
    value = example[self._key_feature]
    return value if isinstance(value, str) else tuple(value)

  # Internals -------------------------------------------------------------------------------------

  def _rng(self, state: _State) -> common.TaskRandom:
    return common.TaskRandom(state.space, state.min_length, state.max_length)

  def _draw(self, state, rng, seed, split, index, attempt):
    stream = common.stream_key(self._task_id, seed, split)
    rng.seed(common.example_key(stream, index, attempt))
    return state.generator(rng)

  def _ensure_validation(self, state: _State) -> List[Dict[str, Any]]:
    with self._lock:
      if state.validation is None:
        rng, examples, seen = self._rng(state), [], set()
        limit = 20 * state.validation_size + 1000
        index = 0
        while len(examples) < state.validation_size:
          if index >= limit:
            raise RuntimeError(
                f"Task {self.name!r}: only {len(examples)} distinct inputs in {limit} draws; "
                f"its input space is too small for a validation split of "
                f"{state.validation_size} (lower split_sizes.validation).")
          example = self._draw(state, rng, VALIDATION_SEED, "validation", index, 0)
          index += 1
          key = self.membership_key(example)
          if key not in seen:
            seen.add(key)
            examples.append(example)
        state.validation, state.validation_keys = examples, seen
    return state.validation

  def _train_blocks(self, state: _State) -> "_TrainBlocks":
    self._ensure_validation(state)
    return _TrainBlocks(self.name, self._task_id, state.generator, state.space, state.min_length,
                        state.max_length, state.validation_keys, self._key_feature,
                        self.features, self.text)

  def _train_example(self, state, rng, seed, index):
    return self._train_blocks(state).example(rng, seed, index)

  def _block_arrays(self, state: _State, split: str, seed: int, workers_count: int,
                    indices: np.ndarray):
    """Examples for a block of indices, as flat arrays (values and lengths per id feature),
    generated by `workers_count` worker processes (in this process if <= 1)."""
    if split == "validation":
      validation = self._ensure_validation(state)
      return _as_arrays([validation[i] for i in indices.tolist()], self.features, self.text)
    pool = workers.pool_for(state, functools.partial(self._train_blocks, state), workers_count)
    if pool is not None:
      return pool(seed, indices)
    return self._train_blocks(state)(seed, indices)

  def _to_tensors(self, block, indices):
    tout = []
    for _ in self.features:
      tout += [tf.string] if self.text else [tf.int32, tf.int64]
    arrays = tf.numpy_function(block, [indices], tout, stateful=False)
    features, i = {}, 0
    for name in self.features:
      if self.text:
        arrays[i].set_shape([None])
        features[name] = arrays[i]
        i += 1
      else:
        values, lengths = arrays[i], arrays[i + 1]
        values.set_shape([None])
        lengths.set_shape([None])
        features[name] = tf.RaggedTensor.from_row_lengths(values, lengths, validate=False)
        i += 2
    return features


class _TrainBlocks:
  """Generates blocks of train examples: all a worker process needs, and picklable (cloudpickle)."""

  def __init__(self, name, task_id, generator, space, min_length, max_length, validation_keys,
               key_feature, features, text):
    self.name, self.task_id, self.generator, self.space = name, task_id, generator, space
    self.min_length, self.max_length = min_length, max_length
    self.validation_keys, self.key_feature = validation_keys, key_feature
    self.features, self.text = features, text

  def example(self, rng: common.TaskRandom, seed: int, index: int) -> Dict[str, Any]:
    """Train example `index`: the first draw whose input is not a validation input."""
    stream = common.stream_key(self.task_id, seed, "train")
    for attempt in range(MAX_TRAIN_ATTEMPTS):
      rng.seed(common.example_key(stream, index, attempt))
      example = self.generator(rng)
      value = example[self.key_feature]
      if (value if isinstance(value, str) else tuple(value)) not in self.validation_keys:
        return example
    raise RuntimeError(f"Task {self.name!r}: {MAX_TRAIN_ATTEMPTS} train draws in a row were "
                       "validation inputs; the task's input space is too small.")

  def __call__(self, seed: int, indices: np.ndarray):
    rng = common.TaskRandom(self.space, self.min_length, self.max_length)
    examples = [self.example(rng, seed, i) for i in indices.tolist()]
    return _as_arrays(examples, self.features, self.text)


def _as_arrays(examples, features, text):
  """Flat arrays of a block: per id feature its values and lengths, per text feature its bytes."""
  out = []
  for name in features:
    values = [ex[name] for ex in examples]
    if text:
      out.append(np.array([v.encode("utf-8") for v in values], dtype=object))
    else:
      out.append(np.fromiter((t for v in values for t in v), np.int32))
      out.append(np.array([len(v) for v in values], np.int64))
  return tuple(out)


_SPACES: List[Tuple[Any, common.TokenSpace]] = []


def _token_space(vocabulary) -> common.TokenSpace:
  """The token space of a vocabulary, computed once per distinct (unequal) vocabulary."""
  # seqio vocabularies compare by their settings but are not hashable: a short list, not a dict.
  for known, space in _SPACES:
    if known is vocabulary or known == vocabulary:
      return space
  space = common.TokenSpace.from_vocabulary(vocabulary)
  _SPACES.append((vocabulary, space))
  return space


def _as_seed(seed) -> int:
  if seed is None:
    return DEFAULT_SEED
  return int(seed.numpy()) if hasattr(seed, "numpy") else int(seed)
