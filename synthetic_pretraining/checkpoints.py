"""Orbax checkpoints: training state in MODEL_DIR, and params-only checkpoints.

Layout of one checkpoint directory (a training step `MODEL_DIR/checkpoint_<step>`, or a
params-only checkpoint written by `save_params`): orbax items `params` (the parameter tree with
t5x's paths), `meta` (JSON: step, architecture) and, for training checkpoints, `opt_state`.
Every array is saved and restored sharded: each host writes and reads only its own shards.
The tf.data iterator position of each process sits beside them in
`MODEL_DIR/data_iterators/step_<step>/process_<index>`.
"""
import dataclasses
import logging
import os
import re
import shutil
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

STEP_PREFIX = "checkpoint"
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}_(\d+)$")


class CheckpointMismatchError(ValueError):
  """A checkpoint's parameters do not fit the model being built."""


def _abs(path) -> str:
  path = os.fspath(path)
  return path if "://" in path else os.path.abspath(path)


def step_dir(model_dir: str, step: int) -> str:
  return os.path.join(model_dir, f"{STEP_PREFIX}_{step}")


def checkpoint_steps(model_dir: str):
  """Steps of the complete checkpoints in `model_dir` (orbax only renames finished ones)."""
  if not os.path.isdir(model_dir):
    return []
  steps = [int(m.group(1)) for name in os.listdir(model_dir) if (m := _STEP_DIR.match(name))]
  return sorted(steps)


def latest_checkpoint_step_dir(model_dir: str) -> Optional[str]:
  """The newest `checkpoint_<step>` directory in `model_dir`, or None."""
  steps = checkpoint_steps(model_dir)
  return step_dir(model_dir, steps[-1]) if steps else None


def is_checkpoint_dir(path: str) -> bool:
  return os.path.isdir(os.path.join(path, "params"))


def params_metadata(directory: str) -> Dict[str, Tuple[tuple, str]]:
  """{'encoder/layers_0/...': (shape, dtype)} of a checkpoint's parameters, reading no arrays."""
  item = os.path.join(_abs(directory), "params")
  if not os.path.isdir(item):
    raise FileNotFoundError(f"{directory} is not a checkpoint of ours: no 'params' item in it "
                            f"(expected {item}).")
  metadata = ocp.StandardCheckpointer().metadata(item)
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  flat = traverse_util.flatten_dict(_to_dict(tree), sep="/")
  return {k: (tuple(v.shape), str(np.dtype(v.dtype))) for k, v in flat.items()}


def _to_dict(tree):
  if isinstance(tree, dict) or hasattr(tree, "items"):
    return {k: _to_dict(v) for k, v in tree.items()}
  return tree


def read_meta(directory: str) -> Dict[str, Any]:
  """The JSON `meta` item (step, architecture), or {} for checkpoints without one."""
  item = os.path.join(_abs(directory), "meta")
  if not os.path.isdir(item):
    return {}
  return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(item)


def check_compatible(directory: str, abstract_params) -> None:
  """Raises `CheckpointMismatchError` naming every parameter whose path or shape differs."""
  saved = params_metadata(directory)
  wanted = {k: tuple(v.shape) for k, v in
            traverse_util.flatten_dict(abstract_params, sep="/").items()}
  problems = []
  for name in sorted(set(saved) | set(wanted)):
    if name not in wanted:
      problems.append(f"  {name}: in the checkpoint {saved[name][0]}, not in the model")
    elif name not in saved:
      problems.append(f"  {name}: in the model {wanted[name]}, not in the checkpoint")
    elif saved[name][0] != wanted[name]:
      problems.append(f"  {name}: checkpoint {saved[name][0]} vs model {wanted[name]}")
  if problems:
    raise CheckpointMismatchError(
        f"The checkpoint at {directory} was written for another architecture; "
        f"{len(problems)} parameter(s) differ:\n" + "\n".join(problems[:40]) +
        ("\n  ..." if len(problems) > 40 else ""))


def _restore_item(directory: str, item: str, abstract_tree):
  path = os.path.join(_abs(directory), item)
  return ocp.StandardCheckpointer().restore(path, abstract_tree)


def restore_params(directory: str, abstract_params, only=None):
  """Restores the `params` of a checkpoint straight into the shardings of `abstract_params`.

  Args:
    directory: a `checkpoint_<step>` directory or a params-only checkpoint.
    abstract_params: tree of `jax.ShapeDtypeStruct(shape, dtype, sharding=...)`.
    only: optional predicate on '/'-joined paths; parameters it rejects are not read and come
      back as None (the caller keeps its own values for them).
  """
  check_compatible(directory, abstract_params)
  if only is None:
    return _restore_item(directory, "params", abstract_params)
  flat = traverse_util.flatten_dict(abstract_params, sep="/")
  wanted = {k: v for k, v in flat.items() if only(k)}
  restored = ocp.PyTreeCheckpointer().restore(
      os.path.join(_abs(directory), "params"),
      args=ocp.args.PyTreeRestore(
          item=traverse_util.unflatten_dict(wanted, sep="/"),
          restore_args=jax.tree.map(lambda s: ocp.ArrayRestoreArgs(sharding=s.sharding),
                                    traverse_util.unflatten_dict(wanted, sep="/")),
          partial_restore=True))
  restored_flat = traverse_util.flatten_dict(restored, sep="/")
  return traverse_util.unflatten_dict({k: restored_flat.get(k) for k in flat}, sep="/")


def save_params(directory: str, params, meta: Optional[Dict[str, Any]] = None) -> None:
  """Writes a params-only checkpoint that INITIAL_CHECKPOINT_PATH can load."""
  directory = _abs(directory)
  if os.path.exists(os.path.join(directory, "params")):
    raise FileExistsError(f"{directory} already holds a checkpoint; choose an empty directory.")
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  checkpointer.save(directory, ocp.args.Composite(
      params=ocp.args.StandardSave(params),
      meta=ocp.args.JsonSave(dict(meta or {}, step=int((meta or {}).get("step", 0))))),
                    force=True)


@dataclasses.dataclass
class TrainingCheckpoints:
  """Saves and restores full training state in MODEL_DIR (asynchronously, keeping `keep`)."""
  model_dir: str
  keep: Optional[int] = None
  async_save: bool = True

  def __post_init__(self):
    self.model_dir = _abs(self.model_dir)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.keep, step_prefix=STEP_PREFIX, create=True,
        enable_async_checkpointing=self.async_save)
    self.manager = ocp.CheckpointManager(self.model_dir, options=options,
                                         item_names=("params", "opt_state", "meta"))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, step: int, params, opt_state, meta: Dict[str, Any]) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(dict(meta, step=int(step)))))

  def restore(self, step: int, abstract_params, abstract_opt_state):
    directory = step_dir(self.model_dir, step)
    check_compatible(directory, abstract_params)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params),
        opt_state=ocp.args.StandardRestore(abstract_opt_state)))
    return restored["params"], restored["opt_state"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()

  def all_steps(self):
    return list(self.manager.all_steps())


def prune_data_iterators(model_dir: str, keep_steps) -> None:
  """Removes saved iterator positions whose checkpoint has been deleted."""
  root = os.path.join(model_dir, "data_iterators")
  if not os.path.isdir(root):
    return
  keep = {f"step_{s}" for s in keep_steps}
  for name in os.listdir(root):
    if name not in keep:
      shutil.rmtree(os.path.join(root, name), ignore_errors=True)
      logging.debug("Removed data iterator state %s", name)
