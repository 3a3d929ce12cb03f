"""The entry wrapper of every binary: bad input ends in one line on stderr and exit code 1.

`run(main, argv)` calls a binary's `main(argv)`; an `errors.UsageError` raised anywhere below it
is printed as `error: <one line>` and the process exits with 1, with the traceback only under
`--verbose`. A mistyped, missing or malformed flag is bad input too: the binaries parse their
flags with `ArgumentParser`, whose errors are one line and exit code 1 (not argparse's usage
text and 2). A Ctrl-C that reaches it (a second one during training, or one before the loop
starts) ends in one line and exit code 130. Anything else is a bug and keeps its traceback.
Validation of inputs happens before a binary creates anything, so a refused run leaves nothing
behind. How a binary starts (`--help`, the quiet start) is `startup.py`.

  if __name__ == "__main__":
    sys.exit(cli.run(main))
"""
import argparse
import logging
import sys
import traceback
from typing import Callable, Optional, Sequence

from synthetic_pretraining.errors import UsageError, one_line  # noqa: F401  (cli.UsageError stays importable)

# The exit code of a refused run (bad input, flags included).
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
INTERRUPTED = ("Interrupted: quit at once without saving; MODEL_DIR keeps its newest checkpoint, "
               "so rerunning the same command resumes from it.")


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the binaries: a flag error (unknown, mistyped, missing, malformed) raises a
  `UsageError`, so `run` prints it in one line with exit code 1; `--help` is argparse's own."""

  def error(self, message):
    raise UsageError(f"{message} ({self.prog} --help lists the flags).")


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
  except UsageError as e:
    if verbose:
      traceback.print_exc()
    logging.getLogger().handlers.clear()  # no second copy of the message through logging
    print(f"error: {one_line(e)}", file=sys.stderr)
    return EXIT_USER_ERROR
  except KeyboardInterrupt:
    # A Ctrl-C outside the training loop's handlers, or a second one inside it (the first asks
    # the loop to save and stop; the second means "now").
    if verbose:
      traceback.print_exc()
    logging.getLogger().handlers.clear()
    print(INTERRUPTED, file=sys.stderr)
    return EXIT_INTERRUPTED
  finally:
    run_lock = sys.modules.get("synthetic_pretraining.training.run_lock")
    if run_lock is not None:  # a MODEL_DIR is free again once its binary is done
      run_lock.release_all()
