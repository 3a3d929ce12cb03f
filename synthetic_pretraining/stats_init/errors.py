"""Errors of the statistics-only initialisation; each names what was wrong and what was expected.

Configuration errors also derive from `gin_utils.GinConfigError` and architecture mismatches from
`orbax_format.CheckpointMismatchError`, so the binaries report them as one clear line.
"""
from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import gin_utils


class StatsInitError(errors.UsageError):
  """Base class of the statistics-initialisation errors."""


class UnknownSchemeError(StatsInitError, gin_utils.GinConfigError):
  """A scheme (init_id) that is not registered; the message lists the valid ones."""


class GroupingError(StatsInitError, gin_utils.GinConfigError):
  """A grouping does not fit the model: a rule selects nothing, or two rules overlap."""


class ArchitectureMismatchError(StatsInitError, orbax_format.CheckpointMismatchError):
  """The statistics source and the target model have different parameters."""


class StatsFileError(StatsInitError):
  """A stats.json file that is malformed or does not fit the model."""
