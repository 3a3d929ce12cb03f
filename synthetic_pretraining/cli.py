"""The entry wrapper of every binary: bad input ends in one line on stderr and exit code 1.

`run(main, argv)` calls a binary's `main(argv)`; a user error (the classes in `user_errors()`)
raised anywhere below it is printed as `error: <one line>` and the process exits with 1, with the
traceback only under `--verbose`. Anything else is a bug and keeps its traceback. Validation of
inputs happens before a binary creates anything, so a refused run leaves nothing behind.

  if __name__ == "__main__":
    sys.exit(cli.run(main))
"""
import logging
import re
import sys
import traceback
from typing import Callable, Optional, Sequence

# The exit code of a refused run (bad input); 2 stays argparse's usage error.
EXIT_USER_ERROR = 1
_GIN_CONTEXT = re.compile(r"^\s*(In call to configurable|In file|  No values supplied)")
_MAX_LINE = 2000


class UsageError(ValueError):
  """Bad user input (a flag, a gin value, a file): reported in one line, no traceback."""


def user_errors() -> tuple:
  """Exception classes that mean bad input rather than a bug."""
  # Imported here: cli must stay importable before jax/tf are (every binary imports it first).
  from synthetic_pretraining import checkpoints  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import data  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import run_lock  # pylint: disable=import-outside-toplevel
  classes = [UsageError, gin_utils.GinConfigError, data.UnknownTaskError,
             checkpoints.CheckpointMismatchError, run_lock.RunLockError, FileNotFoundError,
             FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError]
  # A module that was never imported raised none of its errors; importing it here could also
  # declare gin configurables after gin has locked its config.
  for module, name in (("synthetic_pretraining.stats_init.errors", "StatsInitError"),
                       ("synthetic_pretraining.report.protocol", "ReportError"),
                       ("synthetic_pretraining.checkpoints", "CheckpointDamagedError"),
                       ("synthetic_pretraining.distributed", "DistributedError"),
                       ("synthetic_pretraining.trainer", "NonFiniteLossError")):
    error = getattr(sys.modules.get(module), name, None)
    if error is not None:
      classes.append(error)
  return tuple(classes)


def one_line(error: BaseException) -> str:
  """The message of `error` on one line: gin's call-site notes dropped, long lists shortened."""
  text = str(error).strip() or type(error).__name__
  lines = [l.strip() for l in text.splitlines() if l.strip() and not _GIN_CONTEXT.match(l)]
  message = lines[0] if lines else type(error).__name__
  if len(lines) > 1:
    shown = "; ".join(lines[1:4])
    more = " ... (--verbose shows all)" if len(lines) > 4 else ""
    message = f"{message} {shown}{more}"
  if len(message) > _MAX_LINE:  # never echo a huge input whole
    message = message[:_MAX_LINE] + f"... ({len(message) - _MAX_LINE} more characters)"
  return message


def pop_verbose(argv: Sequence[str]):
  """(argv without --verbose, whether it was given)."""
  argv = list(argv)
  verbose = "--verbose" in argv
  return [a for a in argv if a != "--verbose"], verbose


def run(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> int:
  """Runs `main(argv)`; a user error becomes one line on stderr and `EXIT_USER_ERROR`."""
  argv, verbose = pop_verbose(sys.argv[1:] if argv is None else argv)
  try:
    return main(argv)
  except user_errors() as e:  # pylint: disable=catching-non-exception
    if verbose:
      traceback.print_exc()
    logging.getLogger().handlers.clear()  # no second copy of the message through logging
    print(f"error: {one_line(e)}", file=sys.stderr)
    return EXIT_USER_ERROR
  finally:
    from synthetic_pretraining import run_lock  # pylint: disable=import-outside-toplevel
    run_lock.release_all()  # a MODEL_DIR is free again once its binary is done
