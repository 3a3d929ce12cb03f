"""Checks of a run's inputs before it creates anything (no MODEL_DIR for a run that never starts).

Each check raises a one-line user error (an `errors.UsageError`: `errors.MissingInputError`,
`orbax_format.CheckpointMismatchError`, `pipeline.UnknownTaskError`) naming the flag and what is
expected; `cli.run` prints it. Binaries call `check_run` before their first write.
"""
import logging
from typing import Iterable, Optional

from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths


def check_dataset(cfg: Optional[pipeline.DatasetConfig], partitioner: partitioning.PjitPartitioner,
                  what: str = "BATCH_SIZE") -> None:
  """The task exists, the lengths are complete and the batch splits over the mesh."""
  if cfg is None:
    return
  pipeline.check_feature_lengths(cfg.task_feature_lengths)
  check_task_split(cfg.mixture_or_task_name, cfg.module, cfg.split,
                   after_lookup=lambda: pipeline.check_batch_size(cfg, partitioner, what))


def check_task_split(name: str, module, split: str, after_lookup=None) -> None:
  """The task or mixture exists (closest names if not), each of its tasks has `split`, and a
  file-based task's files exist, are not empty and start well-formed."""
  task = pipeline.get_mixture_or_task(name, module)
  if after_lookup is not None:
    after_lookup()
  for subtask in getattr(task, "tasks", None) or [task]:
    splits = list(getattr(getattr(subtask, "source", None), "splits", None) or ())
    if splits and split not in splits:
      raise errors.UsageError(
          f"SPLIT={split!r} is not a split of task {subtask.name!r}; it has "
          f"{', '.join(map(repr, splits))}.")
    source = getattr(subtask, "source", None)
    if split in (getattr(source, "splits", None) or ()):
      for check in (getattr(source, "check_split", None), getattr(source, "check_head", None)):
        if check is not None:
          check(split)  # files exist, are not empty and start well-formed (file-based tasks)


def check_writable(path: paths.PathLike, flag: str) -> None:
  """`path` is a directory that exists or can be created by this user (local paths only:
  `paths.check_writable_dir`)."""
  paths.check_writable_dir(path, flag)


def check_initial_checkpoint(path: Optional[str], abstract_params, flag: str,
                             model_config=None) -> Optional[resolver.ResolvedCheckpoint]:
  """`path` holds a checkpoint whose parameters fit the model (metadata only; `model_config`,
  the model's T5Config, for what shapes do not show); returns what was found, so that the
  caller reads it without resolving and checking it again."""
  if not path:
    return None
  try:
    found = resolver.resolve(path)
  except FileNotFoundError as e:
    raise errors.MissingInputError(f"{flag}: {e}") from None
  # orbax warns about a missing _CHECKPOINT_METADATA of params-only checkpoints; the check
  # reads only the array metadata, so that note would be the only other line of a refusal.
  absl_logger = logging.getLogger("absl")
  absl_logger.addFilter(_drop_missing_metadata_note)
  try:
    return resolver.check_params(found, abstract_params, model_config)
  finally:
    absl_logger.removeFilter(_drop_missing_metadata_note)


def _drop_missing_metadata_note(record: logging.LogRecord) -> bool:
  return not str(record.msg).startswith("Metadata file does not exist")


def check_count(value, flag: str, *, minimum: int = 1, allow_none: bool = False) -> None:
  """`value` (a gin setting) is an integer >= `minimum` (or None where that means 'no limit')."""
  if value is None and allow_none:
    return
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    if minimum == 1:
      wanted = "a positive integer"
    elif minimum == 0:
      wanted = "an integer >= 0"
    else:
      wanted = "an integer" if minimum is None else f"an integer >= {minimum}"
    none = " or None" if allow_none else ""
    raise errors.UsageError(f"{flag} must be {wanted}{none}, got {value!r}.")


def check_int(value, flag: str) -> None:
  """`value` is an integer of any sign (a seed)."""
  if isinstance(value, bool) or not isinstance(value, int):
    raise errors.UsageError(f"{flag} must be an integer, got {value!r}.")


def check_run(*, partitioner: partitioning.PjitPartitioner,
              datasets: Iterable[Optional[pipeline.DatasetConfig]] = (),
              output_dirs: Iterable[tuple] = (), initial_checkpoint: Optional[str] = None,
              abstract_params=None,
              checkpoint_flag: str = "INITIAL_CHECKPOINT_PATH",
              model_config=None) -> Optional[resolver.ResolvedCheckpoint]:
  """All checks of one run; `output_dirs` are (path, flag) pairs.

  Returns the checked `initial_checkpoint` (None without one): pass it on to
  `resolver.read_params`, which then neither resolves nor checks it again.
  """
  for cfg in datasets:
    check_dataset(cfg, partitioner)
  for path, flag in output_dirs:
    check_writable(path, flag)
  return check_initial_checkpoint(initial_checkpoint, abstract_params, checkpoint_flag,
                                  model_config)
