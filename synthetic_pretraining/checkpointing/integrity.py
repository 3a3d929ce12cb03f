"""Is a checkpoint readable completely? One line saying what is wrong, or None.

A run that resumes from a checkpoint with a missing or truncated file would die in orbax or
tensorstore with dozens to hundreds of lines of traceback, or worse, use part of it. So on start the
newest checkpoint is read through once (every item, every array, to host memory) before it is used;
if that fails, `newest_intact_step` reports the problem in one line and falls back to the next
older checkpoint (or stops with that line when falling back is switched off). One checkpoint is
used whole or not at all: parameters, optimizer state, meta and data position all come from the
step that passed the check.

Reading every array costs one extra read of the checkpoint at start-up (host memory for the
largest item); that is the price of knowing before the run commits to it.
"""
import logging
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import orbax.checkpoint as ocp

from synthetic_pretraining import errors
from synthetic_pretraining import paths

# Items a training checkpoint must hold; others present (the data iterator) are read too.
TRAINING_ITEMS = ("params", "opt_state", "meta")
_MAX_DETAIL = 300


class CheckpointDamagedError(errors.UsageError):
  """The newest checkpoint cannot be read and falling back is switched off (or none is intact)."""


def _detail(error: BaseException) -> str:
  text = errors.one_line(error)
  return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def _read_pytree(item: str) -> None:
  """Reads every array of an orbax PyTree item to host memory."""
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(item)
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  restore_args = _map_leaves(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  restored = checkpointer.restore(item, args=ocp.args.PyTreeRestore(restore_args=restore_args))
  _map_leaves(np.asarray, restored)


def _map_leaves(fn, tree):
  if isinstance(tree, dict) or (hasattr(tree, "items") and not hasattr(tree, "shape")):
    return {k: _map_leaves(fn, v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return type(tree)(_map_leaves(fn, v) for v in tree)
  return fn(tree)


def _read_json(item: str) -> None:
  ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(item)


def _read_item(item: str) -> Optional[str]:
  """None if the item reads completely, else what is wrong (raises on a failed read)."""
  names = paths.listdir(item)
  if not [n for n in names if n != "commit_success.txt"]:
    return f"{item} is empty"
  iterators = [n[:-len(".index")] for n in names if n.endswith(".index")]
  if iterators:  # the tf.data iterator state of each process
    for prefix in iterators:
      problem = verify_tf_iterator(paths.join(item, prefix))
      if problem:
        return problem
    for name in names:  # the batches taken but not yet handed out (prefetch's pending.npz)
      if name.endswith(".npz"):
        problem = verify_npz(paths.join(item, name))
        if problem:
          return problem
    return None
  if "_METADATA" in names or "manifest.ocdbt" in names or "_sharding" in names:
    _read_pytree(item)
  elif "metadata" in names:
    _read_json(item)
  else:
    return f"{item} holds no checkpoint files we know ({', '.join(names[:5])})"
  return None


def _drop_orbax_notes(record: logging.LogRecord) -> bool:
  """Orbax's own warnings about a damaged item would repeat our one line at length."""
  return not str(record.msg).startswith(("Metadata file does not exist",
                                         "Failed to get item metadata"))


def verify_checkpoint(step_dir: paths.PathLike, required: Sequence[str] = TRAINING_ITEMS,
                      extra_checks: Iterable[Callable[[str], Optional[str]]] = ()) -> Optional[str]:
  """None if every item of `step_dir` reads completely, else one line naming what is wrong.

  Args:
    step_dir: a `checkpoint_<step>` directory.
    required: items that must be present (a params-only checkpoint needs only 'params').
    extra_checks: functions of `step_dir` for state kept beside the orbax items (the data
      iterator), each returning a problem or None.
  """
  step_dir = paths.as_str(step_dir)
  if not paths.isdir(step_dir):
    return f"{step_dir} is not a directory"
  names = paths.listdir(step_dir)
  if not names:
    return f"{step_dir} is empty"
  missing = [item for item in required if item not in names]
  if missing:
    return f"{step_dir} lacks the item(s) {', '.join(missing)}"
  absl_logger = logging.getLogger("absl")
  absl_logger.addFilter(_drop_orbax_notes)
  try:
    for name in names:
      item = paths.join(step_dir, name)
      if not paths.isdir(item):
        continue
      try:
        problem = _read_item(item)
      except Exception as e:  # pylint: disable=broad-except
        # Orbax and tensorstore report damage with many exception types (ValueError, OSError,
        # tensorstore errors, JSON errors); any failure to read means the item is not intact.
        problem = f"{item} cannot be read: {_detail(e)}"
      if problem:
        return problem
  finally:
    absl_logger.removeFilter(_drop_orbax_notes)
  for check in extra_checks:
    problem = check(step_dir)
    if problem:
      return problem
  return None


def verify_tf_iterator(prefix: str) -> Optional[str]:
  """None if the tf.data iterator state saved at `prefix` reads completely."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if not paths.exists(prefix + ".index"):
    return f"{prefix}.index is missing"
  try:
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    names = sorted(dtypes)
    # RestoreV2 reads every tensor, including the variant-typed iterator state that the
    # checkpoint reader cannot turn into numpy.
    tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                         dtypes=[dtypes[n] for n in names])
  except Exception as e:  # pylint: disable=broad-except
    return f"the data iterator state {prefix} cannot be read: {_detail(e)}"
  return None


def verify_npz(path: str) -> Optional[str]:
  """None if every array of the .npz file at `path` reads completely."""
  import io  # pylint: disable=import-outside-toplevel
  try:
    with np.load(io.BytesIO(paths.read_bytes(path))) as saved:
      for key in saved.files:
        np.asarray(saved[key])
  except Exception as e:  # pylint: disable=broad-except  (zip, zlib, numpy format errors)
    return f"the pending batches {path} cannot be read: {_detail(e)}"
  return None


def newest_intact_step(steps: Sequence[int], step_dir_of: Callable[[int], str], *,
                       fallback: bool = True,
                       verify: Callable[[str], Optional[str]] = verify_checkpoint) -> Optional[int]:
  """The newest step whose checkpoint passes `verify`; None if there are no steps.

  A damaged checkpoint is reported in one line (a warning when falling back); with
  `fallback=False` the first damaged one raises `CheckpointDamagedError` with that line. If every
  checkpoint is damaged this raises too: a silent restart from step 0 would discard the run.
  """
  problems = []
  for step in sorted(steps, reverse=True):
    problem = verify(step_dir_of(step))
    if problem is None:
      for skipped in problems:  # named only now: with none intact, the error lists them all
        logging.warning("Skipping a damaged checkpoint: %s", skipped)
      if problems:
        logging.warning("Resuming from the older intact checkpoint of step %d instead.", step)
      return step
    if not fallback:
      raise CheckpointDamagedError(
          f"The newest checkpoint is damaged: {problem}. Set --gin.RESTORE_FALLBACK=True to "
          "resume from the newest intact one, or delete it.")
    problems.append(problem)
  if problems:
    shown = errors.listing([f"step {s}: {p}" for s, p in
                            zip(sorted(steps, reverse=True), problems)], limit=5)
    raise CheckpointDamagedError(
        f"None of the {len(problems)} checkpoint(s) can be read ({shown}). Move them out of "
        "MODEL_DIR (or delete them) to start again from step 0, or start a new MODEL_DIR from "
        "other parameters with INITIAL_CHECKPOINT_PATH.")
  return None
