"""Our orbax checkpoints (local or gs://): training state in MODEL_DIR, and params-only ones.

Layout of one checkpoint directory (a training step `MODEL_DIR/checkpoint_<step>`, or a
params-only checkpoint written by `save_params`): orbax items `params` (the parameter tree with
t5x's paths), `meta` (JSON: step, architecture) and, for training checkpoints, `opt_state` and
`data_iterator` (each process's input position, `data_iterator/process_<index>`). All items of a
step are committed together by orbax (a temporary directory renamed on local disk, a
`commit_success.txt` marker on object stores), so a step never has parameters without its data
position. Every array is saved and restored sharded: each host writes and reads only its shards.
"""
import dataclasses
import logging
import re
from typing import Any, Dict, Mapping, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import integrity
from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing.param_source import Metadata, ParamSource

STEP_PREFIX = "checkpoint"
ITERATOR_ITEM = "data_iterator"
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}_(\d+)$")
_COMMIT_MARKER = "commit_success.txt"
# Where runs written before the iterator became a checkpoint item kept it.
_LEGACY_ITERATOR_DIR = "data_iterators"


class CheckpointMismatchError(errors.UsageError):
  """A checkpoint's parameters do not fit the model being built."""


def step_dir(model_dir: str, step: int) -> str:
  return paths.join(model_dir, f"{STEP_PREFIX}_{step}")


def _is_committed(directory: str) -> bool:
  # Local orbax commits by renaming, so a `checkpoint_<step>` name is already final; object
  # stores have no rename, and only the marker says the step is whole.
  return not paths.is_remote(directory) or paths.exists(paths.join(directory, _COMMIT_MARKER))


def checkpoint_steps(model_dir: str):
  """Steps of the complete `checkpoint_<step>` directories in `model_dir`, ascending."""
  steps = [int(m.group(1)) for name in paths.listdir(model_dir) if (m := _STEP_DIR.match(name))]
  return sorted(s for s in steps if _is_committed(step_dir(model_dir, s)))


def latest_checkpoint_step_dir(model_dir: str) -> Optional[str]:
  """The newest complete `checkpoint_<step>` directory in `model_dir`, or None."""
  steps = checkpoint_steps(model_dir)
  return step_dir(model_dir, steps[-1]) if steps else None


def is_checkpoint_dir(path: str) -> bool:
  """One of our checkpoints: a directory with a `params` item."""
  return paths.isdir(paths.join(path, "params"))


def _to_dict(tree):
  if isinstance(tree, dict) or hasattr(tree, "items"):
    return {k: _to_dict(v) for k, v in tree.items()}
  return tree


def params_metadata(directory: str) -> Metadata:
  """{'encoder/layers_0/...': (shape, dtype)} of a checkpoint's parameters, reading no arrays."""
  item = paths.join(directory, "params")
  if not paths.isdir(item):
    raise errors.MissingInputError(f"{directory} is not a checkpoint of ours: no 'params' item in it "
                            f"(expected {item}).")
  metadata = ocp.StandardCheckpointer().metadata(item)
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  flat = traverse_util.flatten_dict(_to_dict(tree), sep="/")
  return {k: (tuple(v.shape), str(np.dtype(v.dtype))) for k, v in flat.items()}


def read_meta(directory: str) -> Dict[str, Any]:
  """The JSON `meta` item (step, architecture), or {} for checkpoints without one."""
  item = paths.join(directory, "meta")
  if not paths.isdir(item):
    return {}
  return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(item)


def check_architecture(saved: Metadata, wanted: Mapping[str, Any], where: str,
                       noun: str = "checkpoint") -> None:
  """Raises `CheckpointMismatchError` naming every parameter whose path or shape differs.

  Args:
    saved: {path: (shape, dtype)} of the checkpoint. wanted: {path: leaf with .shape} of the
      model. where: the checkpoint's path, for the message. noun: what the message calls it.
  """
  wanted = {k: tuple(v.shape) for k, v in wanted.items()}
  problems = []
  for name in sorted(set(saved) | set(wanted)):
    if name not in wanted:
      problems.append(f"{name}: in the {noun} {tuple(saved[name][0])}, not in the model")
    elif name not in saved:
      problems.append(f"{name}: in the model {wanted[name]}, not in the {noun}")
    elif tuple(saved[name][0]) != wanted[name]:
      problems.append(f"{name}: {noun} {tuple(saved[name][0])} vs model {wanted[name]}")
  if problems:
    raise CheckpointMismatchError(
        f"The {noun} at {where} was written for another architecture; "
        f"{len(problems)} parameter(s) differ: {errors.listing(problems)}.")


def flat_abstract(tree) -> Dict[str, Any]:
  """{path: leaf} of a parameter tree (or of a flat dict already)."""
  if tree and all(isinstance(k, str) and not isinstance(v, Mapping) for k, v in tree.items()):
    return dict(tree)
  return traverse_util.flatten_dict(tree, sep="/")


class OrbaxParamSource(ParamSource):
  """The `params` item of one of our checkpoints, read partially and sharded."""

  def __init__(self, directory: str):
    self.step_dir = paths.as_str(directory)
    meta = read_meta(self.step_dir)
    super().__init__(self.step_dir, params_metadata(self.step_dir), reader=None,
                     step=int(meta.get("step", 0)))

  def read(self, abstract):
    tree = traverse_util.unflatten_dict(dict(abstract), sep="/")
    restored = ocp.PyTreeCheckpointer().restore(
        paths.join(self.step_dir, "params"),
        args=ocp.args.PyTreeRestore(
            item=tree,
            restore_args=jax.tree.map(
                lambda s: ocp.ArrayRestoreArgs(sharding=s.sharding, dtype=s.dtype,
                                               global_shape=tuple(s.shape)), tree),
            partial_restore=True))
    flat = traverse_util.flatten_dict(restored, sep="/")
    return {p: flat[p] for p in abstract}

  def read_numpy(self) -> Dict[str, np.ndarray]:
    # Host numpy arrays, no device placement: for inspecting checkpoints a host can hold.
    restored = ocp.PyTreeCheckpointer().restore(
        paths.join(self.step_dir, "params"),
        args=ocp.args.PyTreeRestore(restore_args=traverse_util.unflatten_dict(
            {k: ocp.RestoreArgs(restore_type=np.ndarray) for k in self._metadata}, sep="/")))
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(restored, sep="/").items()}


def restore_params(directory: str, abstract_params):
  """Restores all `params` of a checkpoint into the shardings of `abstract_params` (a tree)."""
  source = OrbaxParamSource(directory)
  wanted = flat_abstract(abstract_params)
  check_architecture(source.metadata(), wanted, source.description)
  return traverse_util.unflatten_dict(source.read(wanted), sep="/")


def save_params(directory: str, params, meta: Optional[Dict[str, Any]] = None) -> None:
  """Writes a params-only checkpoint that INITIAL_CHECKPOINT_PATH can load."""
  directory = paths.as_str(directory)
  if paths.exists(paths.join(directory, "params")):
    raise errors.OutputExistsError(f"{directory} already holds a checkpoint; choose an empty directory.")
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  checkpointer.save(directory, ocp.args.Composite(
      params=ocp.args.StandardSave(params),
      meta=ocp.args.JsonSave(dict(meta or {}, step=int((meta or {}).get("step", 0))))),
                    force=True)


# ------------------------------------------------------------------ the data-iterator item
class DataIteratorHandler(ocp.CheckpointHandler):
  """Saves each process's input position as `<item>/process_<index>` (as t5x and MaxText do).

  Orbax has no handler for a tf.data iterator; this one delegates to the iterator's own
  `save(prefix)` / `restore(prefix)` (tf.train.Checkpoint files, which speak gs:// through
  tf.io.gfile). It runs synchronously inside `CheckpointManager.save`, so the position saved is
  the one at the moment of the save, and orbax commits it with the other items.
  """

  def save(self, directory, args: "DataIteratorSave"):
    paths.makedirs(directory)
    args.iterator.save(paths.join(directory, f"process_{jax.process_index()}"))

  def restore(self, directory, args: "DataIteratorRestore" = None):
    prefix = paths.join(directory, f"process_{jax.process_index()}")
    if not paths.exists(prefix + ".index"):
      raise errors.MissingInputError(f"{directory} holds no data position for process "
                              f"{jax.process_index()} (expected {prefix}.index).")
    if args is not None and args.iterator is not None:
      args.iterator.restore(prefix)
    return args.iterator if args is not None else None

  def metadata(self, directory):
    del directory
    return None


@ocp.args.register_with_handler(DataIteratorHandler, for_save=True)
@dataclasses.dataclass
class DataIteratorSave(ocp.args.CheckpointArgs):
  iterator: Any


@ocp.args.register_with_handler(DataIteratorHandler, for_restore=True)
@dataclasses.dataclass
class DataIteratorRestore(ocp.args.CheckpointArgs):
  iterator: Any = None


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)


CheckpointDamagedError = integrity.CheckpointDamagedError


@dataclasses.dataclass
class TrainingCheckpoints:
  """Saves and restores full training state in MODEL_DIR (asynchronously, keeping `keep`).

  One step's parameters, optimizer state, metadata and data position are one orbax checkpoint;
  retention (`keep`) removes them together.
  """
  model_dir: str
  keep: Optional[int] = None
  async_save: bool = True
  restore_fallback: bool = True  # see latest_intact_step

  def __post_init__(self):
    self.model_dir = paths.as_str(self.model_dir)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.keep, step_prefix=STEP_PREFIX, create=True,
        enable_async_checkpointing=self.async_save)
    self.manager = ocp.CheckpointManager(
        self.model_dir, options=options,
        item_names=("params", "opt_state", "meta", ITERATOR_ITEM),
        item_handlers={ITERATOR_ITEM: DataIteratorHandler()})

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def latest_intact_step(self, fallback: Optional[bool] = None) -> Optional[int]:
    """The newest step whose checkpoint reads completely (every item), None if there is none.

    A newer damaged checkpoint is named in one line; with `fallback` (RESTORE_FALLBACK) it is
    moved aside to `checkpoint_<step>.damaged` (kept for inspection, out of the way of the step
    being saved again) and the run resumes from the older one; without, the run stops with that
    line (`CheckpointDamagedError`). If all are damaged the run stops: never a silent step 0.
    """
    steps = self.all_steps()
    intact = integrity.newest_intact_step(
        steps, lambda s: step_dir(self.model_dir, s),
        fallback=self.restore_fallback if fallback is None else fallback)
    damaged = [s for s in steps if intact is not None and s > intact]
    if damaged:
      _sync("checkpoint_integrity_verified")
      if jax.process_index() == 0:
        for step in damaged:
          source = step_dir(self.model_dir, step)
          paths.as_path(source).rename(f"{source}.damaged")
          logging.warning("Moved the damaged checkpoint aside: %s.damaged", source)
      _sync("damaged_checkpoints_moved")
      self.manager.reload()
    return intact

  def save(self, step: int, params, opt_state, meta: Dict[str, Any], iterator=None) -> None:
    items = dict(params=ocp.args.StandardSave(params),
                 opt_state=ocp.args.StandardSave(opt_state),
                 meta=ocp.args.JsonSave(dict(meta, step=int(step))))
    if iterator is not None:
      items[ITERATOR_ITEM] = DataIteratorSave(iterator)
    self.manager.save(step, args=ocp.args.Composite(**items))

  def restore(self, step: int, abstract_params, abstract_opt_state, iterator=None):
    """(params, opt_state) of `step`; restores `iterator` to that step's data position.

    Runs written before the data position became an item of the checkpoint kept it in
    `MODEL_DIR/data_iterators/step_<step>/`; that is still read.
    """
    directory = step_dir(self.model_dir, step)
    check_architecture(params_metadata(directory), flat_abstract(abstract_params), directory)
    items = dict(params=ocp.args.StandardRestore(abstract_params),
                 opt_state=ocp.args.StandardRestore(abstract_opt_state))
    has_item = paths.isdir(paths.join(directory, ITERATOR_ITEM))
    if iterator is not None and has_item:
      items[ITERATOR_ITEM] = DataIteratorRestore(iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    if iterator is not None and not has_item:
      self._restore_legacy_iterator(step, iterator)
    return restored["params"], restored["opt_state"]

  def _restore_legacy_iterator(self, step: int, iterator) -> None:
    prefix = paths.join(self.model_dir, _LEGACY_ITERATOR_DIR, f"step_{step}",
                        f"process_{jax.process_index()}")
    if not paths.exists(prefix + ".index"):
      raise errors.MissingInputError(
          f"{step_dir(self.model_dir, step)} has no '{ITERATOR_ITEM}' item and no data position "
          f"was found at {prefix}: the run cannot resume exactly. Restart it in a new MODEL_DIR, "
          "or start from these parameters with INITIAL_CHECKPOINT_PATH.")
    logging.info("Data position of step %d from the older layout %s.", step, prefix)
    iterator.restore(prefix)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()

  def all_steps(self):
    return list(self.manager.all_steps())
