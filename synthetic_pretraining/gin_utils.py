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
from typing import List, Sequence, Tuple

import gin

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
    raise GinConfigError(f"Gin file {path!r} not found (looked in {os.getcwd()} and {resources.root()}).")
  return shipped


def _file_texts(path: str, seen=None) -> List[str]:
  """The text of a gin file and of everything it includes."""
  seen = set() if seen is None else seen
  path = _resolve(path)
  if path in seen:
    return []
  seen.add(path)
  with open(path) as f:
    text = f.read()
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
  root = logging.getLogger()
  root.addFilter(_drop_search_path_misses)
  try:
    gin.parse_config_files_and_bindings([_resolve(f) for f in gin_files], bindings)
  except (ValueError, ImportError, SyntaxError) as e:
    raise GinConfigError(f"Invalid gin configuration: {e}") from e
  finally:
    root.removeFilter(_drop_search_path_misses)


def _drop_search_path_misses(record: logging.LogRecord) -> bool:
  """Gin logs an error for every search path an include is not under before finding it."""
  return not str(record.msg).startswith("Path not found:")
