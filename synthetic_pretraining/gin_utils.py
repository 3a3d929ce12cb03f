"""Command-line gin handling shared by the binaries: `--gin_file=...` and `--gin.NAME=VALUE`.

As in t5x, `--gin.NAME=VALUE` is a gin binding `NAME = VALUE` (a macro or `configurable.param`).
A gin file (or an `include`) is found relative to the working directory first, else among the
gin files shipped with the package (`resources.root()`: the installed copies or a checkout's
gin/), as t5x finds its `t5x/configs/...`; so the README's commands work from any directory.
"""
import argparse
import difflib
import logging
import os
import re
import tokenize
from typing import List, Sequence, Tuple

import gin
from gin import config_parser

from synthetic_pretraining import errors
from synthetic_pretraining import resources

_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""", re.M)
_MACRO_REF = re.compile(r"%([A-Za-z_][A-Za-z0-9_.]*)")
_MACRO_DEF = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)\s*=", re.M)
# Macros that Python code reads (gin.query_parameter) rather than gin files.
_MACROS_READ_IN_PYTHON = frozenset({"VOCABULARY"})  # vocabularies.VOCABULARY_MACRO


class GinConfigError(errors.UsageError):
  """A gin file or binding on the command line is wrong."""


def split_gin_args(argv: Sequence[str]) -> Tuple[List[str], List[str], List[str]]:
  """Separates --gin_file, --gin_bindings / --gin.NAME=VALUE, and all other arguments."""
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument("--gin_file", action="append", default=[])
  parser.add_argument("--gin_bindings", action="append", default=[])
  parser.add_argument("--gin_search_paths", action="append", default=[])
  known, rest = parser.parse_known_args(argv)
  bindings, others = list(known.gin_bindings), []
  for arg in rest:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      bindings.append(f"{name} = {value}")
    else:
      others.append(arg)
  for path in known.gin_search_paths:
    gin.add_config_file_search_path(path)
  return known.gin_file, bindings, others


def _resolve(path: str) -> str:
  """A file under the working directory wins over the shipped one of the same name."""
  if os.path.exists(path):
    return path
  shipped = resources.find_gin_file(path)
  if shipped is None:
    known = sorted(str(p.relative_to(resources.root()))
                   for p in (resources.root() / "gin").rglob("*.gin"))
    close = difflib.get_close_matches(path, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise GinConfigError(f"Gin file {path!r} not found (looked in {os.getcwd()} and "
                         f"{resources.root()}).{hint}")
  return shipped


def _file_texts(path: str, seen=None) -> List[str]:
  """The text of a gin file and of everything it includes."""
  seen = set() if seen is None else seen
  path = _resolve(path)
  if path in seen:
    return []
  seen.add(path)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except IsADirectoryError:
    raise GinConfigError(f"Gin file {path!r} is a directory; name a .gin file in it.") from None
  except UnicodeDecodeError as e:
    raise GinConfigError(f"Gin file {path!r} is not UTF-8 text (byte {e.start}); is it a gin "
                         "file?") from None
  except OSError as e:
    raise GinConfigError(f"Gin file {path!r} cannot be read: {e.strerror or e}.") from None
  _check_file_syntax(path, text)
  texts = [text]
  for included in _INCLUDE.findall(text):
    texts += _file_texts(included, seen)
  return texts


_REQUIRED_MACRO = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)\s*=\s*%gin\.REQUIRED\b", re.M)


def required_macros(gin_files: Sequence[str]) -> List[str]:
  """Macros the gin files (and their includes) declare as `%gin.REQUIRED`."""
  return sorted({m for f in gin_files for t in _file_texts(f) for m in _REQUIRED_MACRO.findall(t)})


def parse(gin_files: Sequence[str], bindings: Sequence[str]) -> None:
  """Parses gin files and bindings; unknown configurables and unused macros are errors.

  A macro set on the command line that no gin file uses (a typo such as TRAIN_STEP) would be
  silently ignored by gin, so it is rejected here with the closest known names.
  """
  gin.add_config_file_search_path(str(resources.root()))  # for gin's own `include` lookups
  texts = [t for f in gin_files for t in _file_texts(f)]
  referenced = {m for t in texts for m in _MACRO_REF.findall(t)}
  referenced |= {m for b in bindings for m in _MACRO_REF.findall(b)}
  referenced |= _MACROS_READ_IN_PYTHON
  defined = {m for t in texts for m in _MACRO_DEF.findall(t)}
  for binding in bindings:
    name = binding.split("=", 1)[0].strip()
    if "." not in name and "/" not in name and name not in referenced:
      close = difflib.get_close_matches(name, sorted(referenced | defined), n=3)
      hint = f" Did you mean {', '.join(close)}?" if close else ""
      raise GinConfigError(f"--gin.{name} sets a macro that no gin file uses.{hint}")
  for binding in bindings:
    check_binding_syntax(binding)
  root = logging.getLogger()
  root.addFilter(_drop_gin_chatter)
  try:
    gin.parse_config_files_and_bindings([_resolve(f) for f in gin_files], bindings)
  except (ValueError, ImportError, SyntaxError, tokenize.TokenError) as e:
    raise GinConfigError(f"Invalid gin configuration: {_describe_parse_error(e)}") from e
  finally:
    root.removeFilter(_drop_gin_chatter)


def _check_file_syntax(path: str, text: str) -> None:
  """A gin file parses as gin (names are checked later, by gin); else one line naming the file."""
  try:
    for _ in config_parser.ConfigParser(text, gin.config.ParserDelegate(skip_unknown=True)):
      pass
  except (ValueError, SyntaxError, tokenize.TokenError) as e:
    line = getattr(e, "lineno", None)
    where = f" (line {line})" if line and f"line {line}" not in str(e) else ""
    raise GinConfigError(f"Gin file {path!r} is not valid gin{where}: "
                         f"{_describe_parse_error(e)}") from None


def check_binding_syntax(binding: str) -> None:
  """A command-line binding `NAME = VALUE` parses as gin; else one line naming the flag.

  The usual mistake is a string without its inner quotes (`--gin.MODEL_DIR=runs/x`: the shell
  eats the only quotes); the message shows the quoted form.
  """
  name, _, value = binding.partition("=")
  name, value = name.strip(), value.strip()
  flag = f"--gin.{name}={value}"
  try:
    for _ in config_parser.ConfigParser(binding, gin.config.ParserDelegate(skip_unknown=True)):
      pass
  except (ValueError, SyntaxError, tokenize.TokenError) as e:
    if not value:
      raise GinConfigError(f"{flag} has no value after '='.") from None
    if value[0] not in "'\"([{%@-0123456789" and value not in ("True", "False", "None"):
      raise GinConfigError(
          f"{flag} is not a gin value: a string needs its own quotes inside the shell's, "
          f"e.g. --gin.{name}=\"'{value}'\".") from None
    raise GinConfigError(f"{flag} is not a gin value: {_describe_parse_error(e)}") from None


def _describe_parse_error(error: BaseException) -> str:
  """Gin's parse errors without the parser's internals (ast node reprs, token tuples)."""
  if isinstance(error, tokenize.TokenError):
    return f"{error.args[0] if error.args else error} (an unclosed bracket or quote?)"
  text = re.sub(r"malformed node or string(?: on line \d+)?: <ast\.\w+ object at 0x[0-9a-f]+>\s*",
                "", str(error))
  return " ".join(text.split())


def _drop_gin_chatter(record: logging.LogRecord) -> bool:
  """Gin logs an error for every search path an include is not under before finding it, and an
  INFO line for every file it reads (`system_path_file_exists:...`); neither is the user's."""
  if str(record.msg).startswith("Path not found:"):
    return False
  return not (record.levelno < logging.WARNING
              and record.pathname.startswith(os.path.dirname(gin.__file__)))
