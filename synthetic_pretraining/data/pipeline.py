"""Input pipeline: SeqIO task -> feature converter -> per-process batches -> global jax.Arrays.

Each process builds its rows of the global batch; `make_array_from_process_local_data` assembles
the global array sharded over 'data'. Which rows a process reads depends on the task
(`process_layout`):

* 'rows': synthetic tasks whose examples are rows one to one (no packing, per-example
  preprocessors): global batch s holds examples s * B .. s * B + B - 1 of the one-process stream,
  and process p generates only rows [p * B / P, (p + 1) * B / P). The global batch is the same for
  every process count P.
* 'global': other synthetic tasks and mixtures (span corruption, packing, LIME's mixture): every
  process builds the whole global stream and keeps its rows of each batch. The same for every P,
  at the cost of generating the whole batch on every host.
* 'shards': file-based tasks: each process reads its own seqio shard (`seqio.ShardInfo`), so
  which examples meet in a global batch depends on P (the data seen per epoch does not).

The tf.data iterator is checkpointable, so a resumed run continues from the same data position.
"""
import dataclasses
import difflib
import importlib
import importlib.util
import logging
from typing import Dict, Mapping, Optional

import gin
import jax
import numpy as np
import seqio
import tensorflow as tf

from synthetic_pretraining import errors
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths
from synthetic_pretraining.synthetic import sources as synthetic_sources
from synthetic_pretraining import resources


# Gin names this `data.DatasetConfig`, as before the data package had modules (gin files and
# run directories' config.gin spell it so).
@gin.configurable(module="synthetic_pretraining.data")
@dataclasses.dataclass
class DatasetConfig:
  """What to read (t5x's `utils.DatasetConfig`).

  Attributes:
    mixture_or_task_name: a registered SeqIO task or mixture.
    task_feature_lengths: {'inputs': N, 'targets': M}; longer examples are cut (and counted).
    split: 'train', 'validation', 'test', ...
    batch_size: global batch size (all processes together).
    shuffle: shuffle the task's data (train).
    seed: data seed; None is the run's seed.
    pack: pack several examples per row (seqio's packing of the model's features:
      `feature_converter`).
    use_cached: read a SeqIO cache instead of running preprocessors.
    module: module to import first so that the task is registered (MIXTURE_OR_TASK_MODULE).
  """
  mixture_or_task_name: str = gin.REQUIRED
  task_feature_lengths: Mapping[str, int] = gin.REQUIRED
  split: str = "train"
  batch_size: int = gin.REQUIRED
  shuffle: bool = True
  seed: Optional[int] = None
  pack: bool = False
  use_cached: bool = False
  module: Optional[str] = None

  def __post_init__(self):
    check_feature_lengths(self.task_feature_lengths)
    if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or (
        self.batch_size < 1):
      raise errors.UsageError(f"BATCH_SIZE must be a positive integer, got {self.batch_size!r}.")


# The encoder-decoder feature converter needs a length for both.
REQUIRED_FEATURES = ("inputs", "targets")


def check_feature_lengths(lengths) -> None:
  """Raises a one-line `UsageError` unless `lengths` is {'inputs': N, 'targets': M}, N, M > 0."""
  example = "e.g. {'inputs': 512, 'targets': 512}"
  if not isinstance(lengths, Mapping):
    raise errors.UsageError(f"TASK_FEATURE_LENGTHS must be a dict of feature lengths ({example}), "
                         f"got {lengths!r:.200}.")
  missing = [k for k in REQUIRED_FEATURES if k not in lengths]
  if missing:
    raise errors.UsageError(f"TASK_FEATURE_LENGTHS={dict(lengths)!r:.200} has no length for "
                         f"{', '.join(map(repr, missing))} ({example}).")
  for key, value in lengths.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise errors.UsageError(f"TASK_FEATURE_LENGTHS[{key!r}] must be a positive integer, got "
                           f"{value!r:.100} ({example}).")


def check_batch_size(cfg: "DatasetConfig", partitioner: partitioning.PjitPartitioner,
                     what: str = "BATCH_SIZE") -> None:
  """The global batch must split evenly over the processes and the mesh's 'data' axis."""
  data_parallel = partitioner.mesh.shape["data"]
  if cfg.batch_size % data_parallel or cfg.batch_size % jax.process_count():
    raise errors.UsageError(
        f"{what}={cfg.batch_size} is not divisible by the data-parallel size {data_parallel} "
        f"({partitioner.mesh.devices.size} devices / num_partitions "
        f"{partitioner.num_partitions}) and the {jax.process_count()} process(es); use a "
        f"multiple of {int(np.lcm(data_parallel, jax.process_count()))}.")


# The models' feature layouts (`feature_converter.architecture`).
ARCHITECTURES = ("encoder_decoder", "decoder_only")


@gin.configurable(module="synthetic_pretraining.data")
def feature_converter(has_inputs: bool, pack: bool, architecture: str = "encoder_decoder",
                      apply_length_check: bool = True) -> seqio.FeatureConverter:
  """The seqio feature converter of the model's architecture (gin: `data.feature_converter`).

  'encoder_decoder' (the default): seqio's `EncDecFeatureConverter` (`encoder_input_tokens`, ...).
  'decoder_only' (gin/models/decoder_only/*.gin set it): a task with inputs becomes a prefix LM,
  seqio's `PrefixLMFeatureConverter` (inputs then targets in one row of inputs + targets
  positions, `decoder_causal_attention` on the inputs, loss weights on the targets only); a
  targets-only task a causal LM, seqio's `LMFeatureConverter`. Both pack as seqio does.
  `apply_length_check` as seqio's (off where the examples were trimmed to the lengths already).
  """
  if architecture not in ARCHITECTURES:
    raise errors.UsageError(f"data.feature_converter.architecture={architecture!r}; expected one "
                            f"of {', '.join(map(repr, ARCHITECTURES))}.")
  if architecture == "encoder_decoder":
    return seqio.EncDecFeatureConverter(pack=pack, apply_length_check=apply_length_check)
  if has_inputs:
    return seqio.PrefixLMFeatureConverter(pack=pack, apply_length_check=apply_length_check)
  return seqio.LMFeatureConverter(pack=pack, apply_length_check=apply_length_check)


def convert_features(ds: tf.data.Dataset, task, lengths: Mapping[str, int],
                     pack: bool) -> tf.data.Dataset:
  """`ds` (trimmed task examples) as model features of the configured `feature_converter`."""
  has_inputs = "inputs" in task.output_features
  # seqio's length check cannot fire on trimmed examples, and it costs a traced tf.function per
  # dataset (about 0.3 CPU-seconds each, a toy run builds several).
  converter = feature_converter(has_inputs, pack, apply_length_check=False)
  if isinstance(converter, seqio.LMFeatureConverter) and not has_inputs:
    lengths = {"targets": lengths["targets"]}  # a causal LM has no inputs to size
  return converter(ds, dict(lengths))


class UnknownTaskError(errors.UsageError):
  """MIXTURE_OR_TASK_NAME names no registered task or mixture."""


TASKS_MODULE = resources.TASKS_MODULE
_OLD_TASKS_MODULE = "tasks"


def _task_module_name(name: str) -> str:
  """'tasks' (and 'tasks.x'), the module name of runs made from a checkout before the package
  carried its tasks, means `synthetic_pretraining.tasks` where no top-level `tasks` is importable
  (an installed package), so their config.gin and commands keep working."""
  if name.split(".")[0] == _OLD_TASKS_MODULE and importlib.util.find_spec(_OLD_TASKS_MODULE) is None:
    return f"{TASKS_MODULE}{name[len(_OLD_TASKS_MODULE):]}"
  return name


def import_task_modules(modules) -> None:
  """Imports MIXTURE_OR_TASK_MODULE (a name or a list of names) so its tasks get registered."""
  if not modules:
    return
  for name in [modules] if isinstance(modules, str) else modules:
    if not isinstance(name, str) or not name:
      raise errors.UsageError(f"MIXTURE_OR_TASK_MODULE must name a module, got {name!r}.")
    module = _task_module_name(name)
    # Task modules may define gin configurables of their own; gin locks its registry after
    # parsing, and the module is only known once the config has been parsed.
    try:
      with gin.unlock_config():
        importlib.import_module(module)
    except ModuleNotFoundError as e:
      if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
        raise  # the module exists; something it imports is missing (a bug or an install issue)
      raise errors.UsageError(
          f"MIXTURE_OR_TASK_MODULE={name!r} cannot be imported: no module named {e.name!r} "
          "(is its folder on PYTHONPATH, or the package installed?).") from None


def get_mixture_or_task(name: str, module: Optional[str] = None):
  """Looks up a task or mixture, with a helpful error for names that are not registered."""
  import_task_modules(module)
  # Tasks registered before the vocabulary was configured take it now.
  from synthetic_pretraining.synthetic import registry  # pylint: disable=import-outside-toplevel
  registry.sync_vocabulary()
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError:
    known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
    close = difflib.get_close_matches(name, known, n=5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    module_hint = (f" (MIXTURE_OR_TASK_MODULE={module!r} was imported)" if module else
                   " Set MIXTURE_OR_TASK_MODULE (e.g. "
                   f"{TASKS_MODULE!r}) so the task gets registered.")
    raise UnknownTaskError(f"Unknown task or mixture {name!r}.{hint}{module_hint} "
                     f"{len(known)} names are registered (python -m synthetic_pretraining.tasks "
                     "lists them).") from None


class TruncationCounter:
  """Counts examples and tokens that the feature lengths cut off, per feature.

  The counts are kept in tf.Variables updated inside the tf.data pipeline, so that cutting is
  reported without a second pass over the data.
  """

  def __init__(self, feature_lengths: Mapping[str, int]):
    self.feature_lengths = dict(feature_lengths)
    self.examples = {k: tf.Variable(0, dtype=tf.int64, trainable=False) for k in feature_lengths}
    self.tokens = {k: tf.Variable(0, dtype=tf.int64, trainable=False) for k in feature_lengths}
    self.seen = tf.Variable(0, dtype=tf.int64, trainable=False)

  def count(self, example):
    self.seen.assign_add(1)
    for key, limit in self.feature_lengths.items():
      if key in example:
        excess = tf.maximum(tf.cast(tf.size(example[key]), tf.int64) - limit, 0)
        self.examples[key].assign_add(tf.cast(excess > 0, tf.int64))
        self.tokens[key].assign_add(excess)
    return example

  def totals(self) -> Dict[str, int]:
    out = {"examples_seen": int(self.seen.numpy())}
    for key in self.feature_lengths:
      out[f"{key}_examples_cut"] = int(self.examples[key].numpy())
      out[f"{key}_tokens_cut"] = int(self.tokens[key].numpy())
    return out


def _untrimmed_examples(task, cfg: DatasetConfig, *, seed, shard_info, num_epochs):
  """The task's examples before the feature lengths cut them, so cutting can be counted.

  Preprocessors that shape examples to the lengths themselves (span corruption, say) cannot run
  without them; such tasks get the lengths, and their examples fit by construction.
  """
  kwargs = dict(split=cfg.split, use_cached=cfg.use_cached, shuffle=cfg.shuffle,
                seed=cfg.seed if cfg.seed is not None else seed, shard_info=shard_info,
                num_epochs=num_epochs, trim_output_features=False)
  try:
    return task.get_dataset(sequence_length=None, **kwargs)
  except (TypeError, KeyError, ValueError) as e:
    logging.info("Task %s needs its feature lengths in preprocessing (%s); passing them.",
                 task.name, e)
    return task.get_dataset(sequence_length=dict(cfg.task_feature_lengths), **kwargs)


def _trim(example, lengths: Mapping[str, int], output_features):
  """Cuts features to their lengths, keeping a final EOS where the feature ends with one."""
  out = dict(example)
  for key, limit in lengths.items():
    if key not in example:
      continue
    x = example[key]
    feature = output_features.get(key)
    if feature is not None and feature.add_eos:
      eos = tf.constant([feature.vocabulary.eos_id], dtype=x.dtype)
      cut = tf.concat([x[: limit - 1], eos], axis=0)
    else:
      cut = x[:limit]
    out[key] = tf.cond(tf.size(x) > limit, lambda c=cut: c, lambda x=x: x)
  return out


# Preprocessors that map each example to one example (so synthetic examples stay rows).
_ONE_TO_ONE = (seqio.preprocessors.append_eos_after_trim, seqio.preprocessors.append_eos,
               seqio.preprocessors.tokenize, seqio.preprocessors.rekey)


def _one_to_one(preprocessor) -> bool:
  return getattr(preprocessor, "func", preprocessor) in _ONE_TO_ONE


def process_layout(task, cfg: DatasetConfig) -> str:
  """How processes share the data of `task`: 'rows', 'global' or 'shards' (module docstring).

  A finite split is repeated by seqio per process, restarting each process's row positions every
  epoch; rows stay aligned only when the split size is a multiple of the batch size.
  """
  leaves = task.tasks if isinstance(task, seqio.Mixture) else [task]
  if not all(isinstance(t.source, synthetic_sources.SyntheticSource) for t in leaves):
    return "shards"
  if (isinstance(task, seqio.Task) and not cfg.pack
      and all(map(_one_to_one, task.preprocessors))):
    size = task.source.num_input_examples(cfg.split)
    if size is None or size % cfg.batch_size == 0:
      return "rows"
  return "global"


def build_dataset(cfg: DatasetConfig, *, seed: int, shard_info: seqio.ShardInfo,
                  num_epochs: Optional[int], counter: Optional[TruncationCounter] = None,
                  drop_remainder: bool = True) -> tf.data.Dataset:
  """This process's rows of every global batch, as model features (see `process_layout`)."""
  task = get_mixture_or_task(cfg.mixture_or_task_name, cfg.module)
  processes, process = shard_info.num_shards, shard_info.index
  if cfg.batch_size % processes:
    raise ValueError(f"BATCH_SIZE={cfg.batch_size} is not divisible by the number of processes "
                     f"({processes}).")
  rows = cfg.batch_size // processes
  layout = process_layout(task, cfg)
  if layout == "rows":
    source_shard = synthetic_sources.GlobalRowsShardInfo(
        index=process, num_shards=processes, batch_size=cfg.batch_size)
  else:
    source_shard = None if layout == "global" else shard_info
  ds = _untrimmed_examples(task, cfg, seed=seed, shard_info=source_shard, num_epochs=num_epochs)
  if counter is not None:
    ds = ds.map(counter.count)
  ds = ds.map(lambda ex: _trim(ex, cfg.task_feature_lengths, task.output_features))
  ds = convert_features(ds, task, cfg.task_feature_lengths, cfg.pack)
  if layout == "global" and processes > 1:
    ds = ds.batch(cfg.batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda batch: {k: v[process * rows:(process + 1) * rows] for k, v in batch.items()})
    # A short final batch may have no rows for this process.
    ds = ds.filter(lambda batch: tf.shape(next(iter(batch.values())))[0] > 0)
  else:
    ds = ds.batch(rows, drop_remainder=drop_remainder)
  options = tf.data.Options()
  # Examples are pure functions of their position, so state outside tf.data (python generators,
  # the truncation counters) need not be saved with the iterator.
  options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
  options.deterministic = True
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


class CheckpointableIterator:
  """A tf.data iterator yielding numpy batches, whose position can be saved and restored."""

  def __init__(self, dataset: tf.data.Dataset):
    self._iterator = iter(dataset)
    self._checkpoint = tf.train.Checkpoint(iterator=self._iterator)

  def __iter__(self):
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    try:
      return {k: v.numpy() for k, v in next(self._iterator).items()}
    except tf.errors.InvalidArgumentError as e:
      raise _data_error(e) from e

  def save(self, prefix: str) -> None:
    paths.makedirs(paths.as_path(prefix).parent)
    self._checkpoint.write(prefix)

  def restore(self, prefix: str) -> None:
    self._checkpoint.read(prefix).assert_consumed()


def _data_error(error: tf.errors.InvalidArgumentError) -> Exception:
  """A failed check in the input pipeline (a malformed line of a file task) as one clear line."""
  text = error.message if hasattr(error, "message") else str(error)
  first = text.strip().splitlines()[0] if text.strip() else ""
  marker = first.find("assertion failed: ")
  if marker < 0:
    return error
  # tf.debugging.Assert prints its message pieces as "[a] [b] ..."; join them back.
  body = first[marker + len("assertion failed: "):].strip()
  body = body[1:-1] if body.startswith("[") and body.endswith("]") else body
  return errors.UsageError(body.replace("] [", " "))


def shard_info() -> seqio.ShardInfo:
  """This process's shard of the data: one shard per JAX process."""
  return seqio.ShardInfo(index=jax.process_index(), num_shards=jax.process_count())


def to_global_batch(local_batch: Mapping[str, np.ndarray],
                    partitioner: partitioning.PjitPartitioner) -> Dict[str, jax.Array]:
  """Assembles the processes' slices into global arrays sharded over the 'data' axis."""
  return {k: jax.make_array_from_process_local_data(partitioner.batch_sharding(v.ndim), v)
          for k, v in local_batch.items()}


def pad_batch(batch: Mapping[str, np.ndarray], batch_size: int) -> Dict[str, np.ndarray]:
  """Pads a short final eval batch with all-zero rows (zero loss weight, so they do not count)."""
  n = next(iter(batch.values())).shape[0]
  if n == batch_size:
    return dict(batch)
  return {k: np.concatenate([v, np.zeros((batch_size - n,) + v.shape[1:], v.dtype)])
          for k, v in batch.items()}


def log_truncation(counter: TruncationCounter, split: str, warned: set) -> Dict[str, int]:
  """Warns once per feature when examples were cut, and returns the running totals."""
  totals = counter.totals()
  for key in counter.feature_lengths:
    cut = totals[f"{key}_examples_cut"]
    if cut and key not in warned:
      warned.add(key)
      logging.warning(
          "TASK_FEATURE_LENGTHS[%r]=%d cuts examples short on the %s split: %d of %d examples so "
          "far lost %d tokens. Raise the length to keep them whole.", key,
          counter.feature_lengths[key], split, cut, totals["examples_seen"],
          totals[f"{key}_tokens_cut"])
  return totals
