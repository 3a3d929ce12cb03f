"""Commands as text a user can read and paste: one per line, quoted the way the README writes them.

`show(["python", "-m", "x", "--gin.MODEL_DIR='runs/x'"])` gives
`python -m x --gin.MODEL_DIR="'runs/x'"`: a flag's value is quoted, not the whole flag, and a
value with single quotes inside (gin strings) goes in double quotes, so nothing turns into
`'"'"'`. `shlex.split` of the result gives the arguments back.
"""
import re
import shlex
from typing import Sequence

_SAFE = re.compile(r"[\w@%+=:,./~-]*")
_FLAG = re.compile(r"(--?[\w./-]+=)(.*)", re.DOTALL)  # gin scopes: --gin.a/b.c=


def quote_value(text: str) -> str:
  """`text` quoted for a POSIX shell: bare when safe, '...' without single quotes inside, else
  "..." (with `"` and `\\` escaped) when nothing inside would expand there, else shlex's form."""
  if text and _SAFE.fullmatch(text):
    return text
  if "'" not in text:
    return f"'{text}'"
  if not re.search(r"[$`!]", text):
    return '"' + re.sub(r'(["\\])', r"\\\1", text) + '"'
  return shlex.quote(text)


def quote(arg: str) -> str:
  """One argument: `--flag=VALUE` keeps the flag bare and quotes the value."""
  match = _FLAG.fullmatch(arg)
  if match and not _SAFE.fullmatch(arg):
    return match.group(1) + quote_value(match.group(2))
  return quote_value(arg)


def show(command: Sequence[str]) -> str:
  """A command on one line."""
  return " ".join(quote(c) for c in command)
