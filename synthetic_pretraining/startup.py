"""How every binary starts: `--help` before any heavy import, and a quiet start.

`python -m synthetic_pretraining.<binary>` imports the package first; its `__init__` calls
`on_import()`, which recognises the binary from `sys.orig_argv` and, before TensorFlow, JAX, gin
or orbax are imported:

- `--help` / `-h`: prints the binary's docstring (its flags, main macros and an example, read
  from the source file without importing it) and exits with 0, in well under a second. The
  launchers (`synthetic_pretraining.launch.*`, argparse programs that import only the standard
  library before parsing) print argparse's help instead: their docstring and every flag.
- a quiet start (unless `--verbose`, or SYNTHETIC_PRETRAINING_VERBOSE=1): TensorFlow's and XLA's
  C++ start-up lines (`All log messages before absl::InitializeLog()`, oneDNN, CUDA probing,
  `failed call to cuInit`) are written to file descriptor 2 by native code before Python runs
  any of ours, and TF_CPP_MIN_LOG_LEVEL does not stop all of them. So descriptor 2 is routed
  through a small filter process that drops native log lines (absl/glog format, levels I, W
  and E) and passes everything else (fatal `F` lines, crash reports, `tf.print`; a fatal error
  it can name, such as a dead peer of a multi-process run, becomes one line), while Python's
  `sys.stderr` (our log lines, progress bars, the one-line `error:`) keeps writing to the real
  stderr directly. Warnings of other packages and the INFO/WARNING chatter of library loggers
  (absl, orbax, gin) are dropped too. With `--verbose` nothing is filtered.

This module imports nothing but the standard library, so it is safe to run first.
"""
import ast
import io
import os
import pathlib
import re
import signal
import sys
import warnings
from typing import List, Optional, Sequence, Tuple

PACKAGE = "synthetic_pretraining"
VERBOSE_ENV = "SYNTHETIC_PRETRAINING_VERBOSE"
HELP_FLAGS = ("--help", "-h")

# absl / glog native log lines: `I0000 00:00:1796581634.490414    2669 port.cc:153] ...` (the
# time is HH:MM:SS.micros, or 00:00:<epoch seconds> before absl is initialised); F stays.
_NATIVE_LOG = re.compile(rb"^[IWE]\d{4} [\d:.]+\s+\d+\s+\S+:\d+\]")
_NATIVE_NOISE = (
    re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(rb"^To enable the following instructions: .* rebuild TensorFlow"),
)

# Python loggers of the libraries (absl carries orbax's and TensorFlow's Python messages).
LIBRARY_LOGGERS = ("absl", "tensorflow", "jax._src", "orbax", "etils")

# Native fatal errors we can name: (pattern, our one line). The rest of the stream (the native
# stack trace of the abort that follows) is dropped. The JAX runtime ends a survivor this way
# when a peer of a multi-process run died; Python cannot catch it (training/distributed.py).
_FATAL = (
    (re.compile(rb"Terminating process because the JAX distributed service detected fatal"),
     lambda: ("error: another process of this run died or stopped answering (no heartbeat within "
              "JAX_HEARTBEAT_TIMEOUT_SECONDS="
              f"{os.environ.get('JAX_HEARTBEAT_TIMEOUT_SECONDS') or 100} s), so this one stops "
              "too. Rerun every process with the same command to resume from the newest "
              "checkpoint.\n")),
)

_quiet = False
_started = False
_kept_streams = []  # the replaced sys.stderr objects (closing one would close descriptor 2)


def quiet() -> bool:
  """Whether this process started quietly (a binary without --verbose)."""
  return _quiet


def library_log_level() -> int:
  """The level for library loggers (absl, orbax, tensorflow, jax): ERROR when quiet."""
  import logging  # pylint: disable=import-outside-toplevel
  return logging.ERROR if _quiet else logging.WARNING


def configure_logging(level: int) -> None:
  """A binary's logging: our records at `level` with a timestamp on stderr, the libraries' at
  `library_log_level()` (their INFO lines say nothing a user can act on), Python warnings as
  log records."""
  import logging  # pylint: disable=import-outside-toplevel
  logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", force=True)
  for name in LIBRARY_LOGGERS:
    logging.getLogger(name).setLevel(library_log_level())
  # Warnings that get through (ours; everything with --verbose) become one log line each, so that
  # on a terminal they are written above the training loop's progress bar, not through it.
  warnings.showwarning = _warning_as_log_record


def _warning_as_log_record(message, category, filename, lineno, file=None, line=None):
  """`warnings.showwarning` of a binary: one WARNING record of logger py.warnings."""
  del line
  if file is not None:  # written to a stream on purpose
    file.write(warnings.formatwarning(message, category, filename, lineno))
    return
  import logging  # pylint: disable=import-outside-toplevel
  logging.getLogger("py.warnings").warning("%s: %s (%s:%d)", category.__name__, message,
                                           filename, lineno)


def binary_from_argv(orig_argv: Sequence[str]) -> Optional[Tuple[str, List[str]]]:
  """(module, arguments) when the interpreter was started as `python -m synthetic_pretraining.X`."""
  argv = list(orig_argv)
  for i, arg in enumerate(argv[1:], start=1):
    if arg == "-m" and i + 1 < len(argv):
      module, args = argv[i + 1], argv[i + 2:]
    elif arg.startswith("-m") and len(arg) > 2:
      module, args = arg[2:], argv[i + 1:]
    elif arg in ("-c", "-") or not arg.startswith("-"):
      return None  # a script, `-c` or stdin: not one of our binaries
    else:
      continue
    if module == PACKAGE or module.startswith(PACKAGE + "."):
      return module, args
    return None
  return None


def on_import() -> None:
  """Called by the package's `__init__`: starts a binary run with `python -m` (once)."""
  found = binary_from_argv(getattr(sys, "orig_argv", ()))
  if found is not None:
    start(*found)


def start(module: str, args: Sequence[str]) -> None:
  """`--help` (prints and exits) and the quiet start for binary `module` run with `args`."""
  global _started
  if _started:
    return
  _started = True
  own = list(args)[:list(args).index("--")] if "--" in args else args  # after `--`: another's
  if any(a in HELP_FLAGS for a in own) and module.startswith(f"{PACKAGE}.launch."):
    return  # the launchers' argparse --help (their docstring and every flag; stdlib imports)
  if any(a in HELP_FLAGS for a in own):
    try:
      print(help_text(module))
      sys.stdout.flush()
    except BrokenPipeError:  # `--help | head`
      pass
    os._exit(0)  # pylint: disable=protected-access  (nothing else was started)
  if "--verbose" in args or os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
    return
  start_quietly()


def help_text(module: str) -> str:
  """The docstring of binary `module`, read from its source without importing it."""
  doc = None
  for source in _sources_of(module):  # a package's __main__, else (a stub) its __init__
    doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")), clean=True)
    if doc and len(doc.splitlines()) >= 3:
      break
  name = module[:-len(".__main__")] if module.endswith(".__main__") else module
  text = (doc or f"python -m {name}").rstrip()
  if "--verbose" not in text:
    text += ("\n\n--verbose shows the libraries' start-up messages and, for a refused run, "
             "the traceback.")
  return text


def _sources_of(module: str) -> List[pathlib.Path]:
  """The source files whose docstring may document binary `module`, best first."""
  package_dir = pathlib.Path(__file__).resolve().parent
  parts = module.split(".")[1:]
  if parts and parts[-1] == "__main__":
    parts = parts[:-1]
  bases = [package_dir]
  if parts[:1] == ["tasks"]:  # a checkout keeps tasks/ beside the package (resources.py)
    bases.append(package_dir.parent)
  for base in bases:
    target = base.joinpath(*parts)
    candidates = [target / "__main__.py", target / "__init__.py"]
    if parts:
      candidates.append(target.with_suffix(".py"))
    found = [c for c in candidates if c.is_file()]
    if found:
      return found
  return []


def start_quietly() -> None:
  """Silences the libraries' start-up output for the rest of this process (see the docstring)."""
  global _quiet
  _quiet = True
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
  warnings.filterwarnings("ignore")
  warnings.filterwarnings("default", module=PACKAGE)
  sys.unraisablehook = _without_library_shutdown_noise(sys.unraisablehook)
  import logging  # pylint: disable=import-outside-toplevel
  for name in LIBRARY_LOGGERS:
    # A filter, not only a level: absl resets its logger's level when its flags are parsed.
    logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger(name).addFilter(_errors_only)
  _filter_native_stderr()


def _is_shutdown_noise(error: BaseException) -> bool:
  """tensorstore completing a read after orbax gave up on a damaged checkpoint calls into a
  closed asyncio loop from a native thread; Python reports that as an unraisable exception
  (a traceback) that says nothing the user can act on: the refusal, or the fallback to an
  older checkpoint, is our own line."""
  return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _without_library_shutdown_noise(hook):
  def unraisablehook(unraisable):
    if not _is_shutdown_noise(unraisable.exc_value):
      hook(unraisable)
  return unraisablehook


def _errors_only(record) -> bool:
  return record.levelno >= 40  # logging.ERROR


def is_native_noise(line: bytes) -> bool:
  """Whether a line written to descriptor 2 is a native library's log line (dropped when quiet)."""
  return bool(_NATIVE_LOG.match(line)) or any(p.match(line) for p in _NATIVE_NOISE)


def filter_lines(lines: Sequence[bytes], continued: bool = False):
  """What the quiet start's filter does with `lines`, read from descriptor 2 at once (one read:
  the bytes of one or more writes): (the lines to show, whether the last one continues a
  dropped message, our one line for a fatal error or None).

  A native log line is dropped, and so are the lines after it in the same read when it ends
  with ':' (absl writes a message whole, with one write, and such a message goes on: the JAX
  coordination service's "the following tasks are unhealthy ...:" before a dead peer's fatal
  error, with the task list and a note after it). `continued`: the first line goes on such a
  message, cut by the previous read. After a fatal error we can name, the rest is not shown.
  """
  shown = []
  for line in lines:
    if not line:
      continue
    fatal = next((say for pattern, say in _FATAL if pattern.search(line)), None)
    if fatal is not None:
      return shown, False, fatal()
    if is_native_noise(line):
      continued = line.rstrip().endswith(b":")
    elif not continued:
      shown.append(line)
  return shown, continued, None


def _filter_native_stderr() -> None:
  """Routes descriptor 2 through a forked filter; Python's sys.stderr keeps the real one."""
  if not hasattr(os, "fork"):
    return
  try:
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    pid = os.fork()
  except OSError:
    return
  if pid == 0:  # the filter: reads until every writer of the pipe is gone
    code = 0
    try:
      os.close(write_end)
      for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)  # Ctrl-C reaches the whole group; EOF ends the filter
      null = os.open(os.devnull, os.O_RDWR)
      os.dup2(null, 0)
      os.dup2(null, 1)
      os.dup2(real, 2)
      os.closerange(3, read_end)
      os.closerange(read_end + 1, 65536)
      warnings.filterwarnings("ignore")
      pending, continued = b"", False
      while True:
        chunk = os.read(read_end, 1 << 16)
        if chunk:
          *lines, pending = (pending + chunk).split(b"\n")
          lines = [line + b"\n" for line in lines]
        else:  # the end: a last line without its newline
          lines, pending = [pending], b""
        shown, continued, fatal = filter_lines(lines, continued)
        continued = continued and bool(pending)  # a message ends with its write
        for line in shown:
          os.write(2, line)
        if fatal is not None:
          os.write(2, fatal.encode())
          while os.read(read_end, 1 << 16):  # the abort's stack trace: drained, not shown
            pass
          break
        if not chunk:
          break
    except BaseException:  # pylint: disable=broad-except
      code = 1
    os._exit(code)  # pylint: disable=protected-access
  os.close(read_end)
  os.dup2(write_end, 2)  # native writers (and child processes) now go through the filter
  os.close(write_end)
  stream = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), encoding=sys.stderr.encoding,
                            errors="backslashreplace", line_buffering=True)
  _kept_streams.append((sys.stderr, sys.__stderr__))
  sys.stderr = sys.__stderr__ = stream
