"""What is at this path? The one place that classifies a checkpoint path, local or gs://.

    found = resolver.resolve("gs://bucket/pretrain/set")
    found.kind      # 'ours', 't5x_msgpack', 't5x_tensorstore', 't5x_orbax', 'transformers'
                    # (a transformers T5 directory: config.json + model.safetensors) or 'stats'
    found.step_dir  # the checkpoint directory (a MODEL_DIR resolves to its latest step)
    found.step
    found.source    # a ParamSource reading its parameters sharded (None for 'stats')

The trainer (INITIAL_CHECKPOINT_PATH), `eval`, `infer`, `inspect_checkpoint` and `stats_init`
all ask here, so they accept the same paths and fail with the same message.
"""
import contextlib
import dataclasses
import logging
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from flax import traverse_util

from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import hf_format
from synthetic_pretraining.checkpointing import hf_reader
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing import t5x_reader
from synthetic_pretraining.checkpointing.param_source import ParamSource

EXPECTED = ("one of our checkpoints (a checkpoint_<step> directory, a params-only checkpoint or "
            "a MODEL_DIR holding them), a t5x checkpoint (a .msgpack file, a directory with a "
            "'checkpoint' file or a 'state' item, or a t5x MODEL_DIR), or a transformers T5 directory "
            "(config.json with model.safetensors or pytorch_model.bin)")


# What a damaged or foreign file raises in the readers (orbax, tensorstore, msgpack, numpy).
# AssertionError: flax's msgpack restore asserting on what a foreign file decodes to.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, IndexError,
                AssertionError)


class CheckpointReadError(errors.UsageError):
  """A checkpoint path was found but cannot be read: damaged, truncated or not a checkpoint."""


@contextlib.contextmanager
def reading(path: str, kind: str):
  """Turns a reader's failure on `path` into one `CheckpointReadError` line (user errors pass)."""
  try:
    yield
  except errors.UsageError:
    raise
  except _READ_ERRORS as e:
    detail = errors.one_line(e)
    detail = detail if len(detail) <= 300 else detail[:300] + "..."
    what = {"ours": "our checkpoint", "t5x_msgpack": "a t5x msgpack checkpoint"}.get(
        kind, f"a {kind} checkpoint")
    raise CheckpointReadError(
        f"{path} cannot be read as {what}: it is damaged or not a checkpoint "
        f"({type(e).__name__}: {detail}). Expected {EXPECTED}.") from e


@dataclasses.dataclass
class ResolvedCheckpoint:
  """A classified checkpoint path. `source` is opened lazily (it reads metadata)."""
  path: str
  kind: str
  step_dir: str
  _opener: Optional[Callable[[], ParamSource]] = dataclasses.field(default=None, repr=False)
  _source: Optional[ParamSource] = dataclasses.field(default=None, repr=False)
  # Set once the parameters were checked against a model (preflight), so reading them for that
  # model reads no metadata again (one round trip fewer on gs://).
  checked_against: Optional[Any] = dataclasses.field(default=None, repr=False)

  @property
  def source(self) -> Optional[ParamSource]:
    if self._source is None and self._opener is not None:
      with reading(self.step_dir, self.kind):
        self._source = self._opener()
    return self._source

  @property
  def step(self) -> int:
    return self.source.step if self.source is not None else 0


def _classify_dir(directory: str) -> Optional[ResolvedCheckpoint]:
  if orbax_format.is_checkpoint_dir(directory):
    return ResolvedCheckpoint(directory, "ours", directory,
                              lambda: orbax_format.OrbaxParamSource(directory))
  if t5x_reader.is_step_dir(directory):
    kind = "t5x_orbax" if paths.isdir(paths.join(directory, "state")) else "t5x_tensorstore"
    return ResolvedCheckpoint(directory, kind, directory,
                              lambda: t5x_reader.step_dir_source(directory))
  if hf_reader.is_hf_dir(directory):
    return ResolvedCheckpoint(directory, hf_reader.KIND, directory,
                              lambda: hf_reader.HFParamSource(directory))
  return None


def resolve(path: str, *, allow_stats: bool = False) -> ResolvedCheckpoint:
  """Classifies `path` (see the module docstring); FileNotFoundError naming what was expected."""
  path = paths.as_str(path)
  if paths.isdir(path):
    found = _classify_dir(path)
    if found is None:
      latest = orbax_format.latest_checkpoint_step_dir(path)
      if latest is not None:
        found = _classify_dir(latest)
        if found is not None:
          logging.debug("Using the latest checkpoint in %s: %s", path, latest)
          found.path = path
    if found is not None:
      return found
    raise errors.MissingInputError(f"{path} holds no checkpoint: expected {EXPECTED}.")
  if paths.exists(path):
    if path.rsplit("/", 1)[-1] in (hf_format.CONFIG,) + hf_format.WEIGHT_FILES:
      parent = path.rsplit("/", 1)[0]
      if hf_reader.is_hf_dir(parent):  # a file of a transformers directory names the directory
        return resolve(parent, allow_stats=allow_stats)
    if path.endswith(".json"):
      if allow_stats:
        return ResolvedCheckpoint(path, "stats", path)
      raise errors.MissingInputError(f"{path} is a statistics file, not a checkpoint: expected {EXPECTED}. "
                              "Statistics files are read by stats_init (--stats_file, STATS_SOURCE).")
    if path.rsplit("/", 1)[-1] == "checkpoint":
      return resolve(path.rsplit("/", 1)[0], allow_stats=allow_stats)
    return ResolvedCheckpoint(path, "t5x_msgpack", path,
                              lambda: t5x_reader.msgpack_source(path))
  raise errors.MissingInputError(f"No checkpoint at {path}: nothing exists there (expected {EXPECTED}).")


def check_params(found: ResolvedCheckpoint, abstract_params,
                 model_config=None) -> ResolvedCheckpoint:
  """Checks that `found`'s parameters fit the model (metadata only); returns `found`.

  `model_config` (the model's `network.T5Config`, optional) is compared with what a checkpoint
  says beyond its shapes (a transformers config's activations, relative-position distance, ...).
  """
  source = found.source
  hf_reader.check_model(source, model_config)
  with reading(found.step_dir, found.kind):
    metadata = source.metadata()
  orbax_format.check_architecture(metadata, orbax_format.flat_abstract(abstract_params),
                                  source.description)
  found.checked_against = abstract_params
  return found


def read_params(checkpoint: Union[str, ResolvedCheckpoint], abstract_params,
                skip: Sequence[str] = ()) -> Tuple[Dict, int]:
  """(parameter tree, step) of a checkpoint (a path or what `resolve` found), read sharded.

  The architecture is checked against the model first, unless `check_params` already did for
  these `abstract_params`. Parameters named in `skip` are not read and come back as None (the
  caller fills them in, e.g. a fresh embedding).
  """
  found = checkpoint if isinstance(checkpoint, ResolvedCheckpoint) else resolve(checkpoint)
  if found.checked_against is not abstract_params:
    check_params(found, abstract_params)
  source = found.source
  wanted = orbax_format.flat_abstract(abstract_params)
  with reading(found.step_dir, found.kind):
    arrays = source.read({p: t for p, t in wanted.items() if p not in skip})
  logging.info("Parameters from %s (%s, step %d).", found.step_dir, found.kind, source.step)
  tree: Dict[str, Any] = traverse_util.unflatten_dict({p: arrays.get(p) for p in wanted}, sep="/")
  return tree, source.step
