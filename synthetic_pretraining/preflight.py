"""Checks of a run's inputs before it creates anything (no MODEL_DIR for a run that never starts).

Each check raises a one-line user error (`cli.UsageError`, `FileNotFoundError`,
`checkpoints.CheckpointMismatchError`, `data.UnknownTaskError`) naming the flag and what is
expected; `cli.run` prints it. Binaries call `check_run` before their first write.
"""
import logging
import os
from typing import Iterable, Optional

from synthetic_pretraining import checkpoint_resolver
from synthetic_pretraining import checkpoints
from synthetic_pretraining import cli
from synthetic_pretraining import data
from synthetic_pretraining import partitioning
from synthetic_pretraining import paths


def check_dataset(cfg: Optional[data.DatasetConfig], partitioner: partitioning.PjitPartitioner,
                  what: str = "BATCH_SIZE") -> None:
  """The task exists, the lengths are complete and the batch splits over the mesh."""
  if cfg is None:
    return
  data.check_feature_lengths(cfg.task_feature_lengths)
  task = data.get_mixture_or_task(cfg.mixture_or_task_name, cfg.module)
  data.check_batch_size(cfg, partitioner, what)
  for subtask in getattr(task, "tasks", None) or [task]:
    check_split = getattr(getattr(subtask, "source", None), "check_split", None)
    if check_split is not None and cfg.split in subtask.source.splits:
      check_split(cfg.split)  # files exist and are not empty (file-based tasks)


def check_writable(path: paths.PathLike, flag: str) -> None:
  """`path` is a directory that exists or can be created by this user (local paths only).

  Object stores are not probed: a write there would be the only test, and it would create files.
  """
  if paths.is_remote(path):
    return
  target = paths.as_str(path)
  if os.path.exists(target) and not os.path.isdir(target):
    raise cli.UsageError(f"{flag}={target} cannot be used: it is a file, not a directory.")
  existing = target
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise cli.UsageError(f"{flag}={target} cannot be created: {existing} is a file.")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise cli.UsageError(f"{flag}={target} cannot be written: no write permission on {existing}.")


def check_initial_checkpoint(path: Optional[str], abstract_params, flag: str) -> None:
  """`path` holds a checkpoint (ours or t5x's) whose parameters fit the model (metadata only)."""
  if not path:
    return
  try:
    found = checkpoint_resolver.resolve(path)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"{flag}: {e}") from None
  # orbax warns about a missing _CHECKPOINT_METADATA of params-only checkpoints; the check
  # reads only the array metadata, so that note would be the only other line of a refusal.
  absl_logger = logging.getLogger("absl")
  absl_logger.addFilter(_drop_missing_metadata_note)
  try:
    source = found.source
    checkpoints.check_architecture(source.metadata(), checkpoints.flat_abstract(abstract_params),
                                   source.description)
  finally:
    absl_logger.removeFilter(_drop_missing_metadata_note)


def _drop_missing_metadata_note(record: logging.LogRecord) -> bool:
  return not str(record.msg).startswith("Metadata file does not exist")


def check_run(*, partitioner: partitioning.PjitPartitioner,
              datasets: Iterable[Optional[data.DatasetConfig]] = (),
              output_dirs: Iterable[tuple] = (), initial_checkpoint: Optional[str] = None,
              abstract_params=None, checkpoint_flag: str = "INITIAL_CHECKPOINT_PATH") -> None:
  """All checks of one run; `output_dirs` are (path, flag) pairs."""
  for cfg in datasets:
    check_dataset(cfg, partitioner)
  for path, flag in output_dirs:
    check_writable(path, flag)
  check_initial_checkpoint(initial_checkpoint, abstract_params, checkpoint_flag)
