"""User errors: bad input (a flag, a gin value, a path, a checkpoint) that the user must change.

Every such error subclasses `UsageError`; `cli.run` prints it as one line, `error: <message>`, and
exits with code 1, whichever module raised it. Anything else is a bug and keeps its traceback.
A module's own error classes (`pipeline.UnknownTaskError`, `orbax_format.CheckpointMismatchError`,
...) subclass these, so a new error needs no edit elsewhere. This module imports nothing of the
package: it is the bottom of the import graph, and any module can raise from it.
"""
import re

_GIN_CONTEXT = re.compile(r"^\s*(In call to configurable|In file|  No values supplied)")
_MAX_LINE = 2000


class UsageError(ValueError):
  """Bad user input: reported in one line naming what was wrong and what is expected."""


class MissingInputError(UsageError, FileNotFoundError):
  """A path the user named holds nothing usable (no file, no checkpoint, no data)."""


class OutputExistsError(UsageError, FileExistsError):
  """An output path the user named is already taken and would be overwritten."""


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


def listing(items, limit: int = 20) -> str:
  """Items for a one-line message: 'a; b; c' with at most `limit` shown, the rest counted."""
  items = list(items)
  shown = "; ".join(str(i) for i in items[:limit])
  return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")
