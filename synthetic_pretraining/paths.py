"""One path layer for every file the project reads or writes, on local disk or an object store.

Every user path (MODEL_DIR, checkpoints, statistics files, task data, reports) goes through here,
so `gs://bucket/run` behaves like a local directory. `etils.epath` (installed with orbax, and the
path type orbax itself takes) does the work: it speaks gs:// through tf.io.gfile, or through
fsspec/gcsfs when `EPATH_USE_TF=false`. Never use `os.path` or `open` on a user path.
"""
import contextlib
import os
import tempfile
import uuid
from typing import Iterator, Union

from etils import epath

from synthetic_pretraining import errors

PathLike = Union[str, os.PathLike, epath.Path]
# The object stores this layer speaks; any other scheme is refused before it is used.
SUPPORTED_SCHEMES = ("gs",)


class UnsupportedSchemeError(errors.UsageError):
  """A path names a scheme (s3://, foo://) that the path layer does not speak."""


def is_remote(path: PathLike) -> bool:
  """True for a URL-like path (gs://, s3://, ...), which has no local meaning."""
  return "://" in os.fspath(path)


def check_scheme(path: PathLike, flag: str = "") -> None:
  """Raises `UnsupportedSchemeError` for a URL whose scheme is not in SUPPORTED_SCHEMES."""
  text = os.fspath(path)
  if not is_remote(text):
    return
  scheme = text.split("://", 1)[0]
  if scheme not in SUPPORTED_SCHEMES:
    where = f"{flag}={text}" if flag else f"Path {text}"
    supported = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
    raise UnsupportedSchemeError(
        f"{where} uses {scheme}://, which is not supported: use a local path or {supported}.")


def check_writable_dir(path: PathLike, flag: str) -> None:
  """`path` is a directory that exists or can be created by this user; else one line naming
  `flag` (a `errors.UsageError`). Object stores are not probed: a write there would be the only
  test, and it would create files."""
  check_scheme(path, flag)
  if is_remote(path):
    return
  target = os.path.abspath(os.fspath(path))
  if os.path.exists(target) and not os.path.isdir(target):
    raise errors.UsageError(f"{flag}={target} cannot be used: it is a file, not a directory.")
  existing = target
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise errors.UsageError(f"{flag}={target} cannot be created: {existing} is a file.")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise errors.UsageError(f"{flag}={target} cannot be written: no write permission on {existing}.")


def as_path(path: PathLike) -> epath.Path:
  """An `epath.Path`; a local path is made absolute (so it does not follow later chdirs)."""
  text = os.fspath(path)
  check_scheme(text)
  return epath.Path(text if is_remote(text) else os.path.abspath(text))


def as_str(path: PathLike) -> str:
  """The canonical string of `path` (absolute if local), as written in logs and records."""
  return os.fspath(as_path(path))


def join(path: PathLike, *parts: str) -> str:
  return os.fspath(as_path(path).joinpath(*parts))


def exists(path: PathLike) -> bool:
  return as_path(path).exists()


def isdir(path: PathLike) -> bool:
  return as_path(path).is_dir()


def listdir(path: PathLike) -> list:
  """Names in a directory; [] for a directory that does not exist."""
  directory = as_path(path)
  if not directory.is_dir():
    return []
  return sorted(child.name for child in directory.iterdir())


def makedirs(path: PathLike) -> None:
  as_path(path).mkdir(parents=True, exist_ok=True)


def rmtree(path: PathLike) -> None:
  directory = as_path(path)
  if directory.exists():
    directory.rmtree()


def glob(pattern: PathLike) -> list:
  """Sorted paths matching a glob pattern (`*` and `?` in the last components)."""
  text = os.fspath(pattern)
  if not is_remote(text):
    text = os.path.abspath(text)
  head, tail = _split_glob(text)
  if not tail:
    return [text] if exists(text) else []
  # On GCS, tf.io.gfile's glob also matches a directory's marker object `dir/` against `dir/*`
  # (the `*` matching the empty name after the slash); a true match has as many components as
  # the pattern.
  depth = len(tail.split("/"))
  matches = (os.fspath(p) for p in epath.Path(head).glob(tail))
  return sorted(m for m in matches if len(m[len(head):].strip("/").split("/")) == depth)


def _split_glob(pattern: str):
  """('fixed/prefix', 'pattern/part') at the first component holding a wildcard."""
  parts = pattern.split("/")
  for i, part in enumerate(parts):
    if any(c in part for c in "*?["):
      return "/".join(parts[:i]) or "/", "/".join(parts[i:])
  return pattern, ""


def open_file(path: PathLike, mode: str = "r"):
  """A file object for reading or writing (text or 'b' modes); parents are created for writes."""
  target = as_path(path)
  if any(m in mode for m in "wa"):
    target.parent.mkdir(parents=True, exist_ok=True)
  return target.open(mode)


def read_text(path: PathLike) -> str:
  return as_path(path).read_text()


def read_bytes(path: PathLike) -> bytes:
  return as_path(path).read_bytes()


def write_atomic(path: PathLike, content: Union[str, bytes]) -> None:
  """Writes a whole file so readers see the old content or the new, never a part.

  Local disk: write a temporary sibling, then rename over the target. Object stores: an object
  becomes visible only when its upload completes, so writing it in one piece is already atomic.
  """
  target = as_path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  mode = "wb" if isinstance(content, bytes) else "w"
  if is_remote(target):
    with target.open(mode) as f:
      f.write(content)
    return
  temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
  try:
    with temporary.open(mode) as f:
      f.write(content)
    os.replace(temporary, target)
  finally:
    if temporary.exists():
      temporary.unlink()


def iter_lines(path: PathLike) -> Iterator[str]:
  """Lines of a text file without their newline, streamed."""
  with open_file(path, "r") as f:
    for line in f:
      yield line.rstrip("\n")


@contextlib.contextmanager
def atomic_writer(path: PathLike, mode: str = "w"):
  """A file object to stream a large file into; `path` gets it whole when the block completes.

  On an error inside the block `path` is left as it was. Local disk: a temporary sibling renamed
  over the target. Object stores: a local scratch file uploaded when complete (writing the object
  directly would publish a partial one, since closing the handle after an error uploads it).
  """
  target = as_path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(target):
    handle, scratch = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".partial")
    os.close(handle)
    try:
      with open(scratch, mode) as f:  # a private local scratch file, not a user path
        yield f
      epath.Path(scratch).copy(target, overwrite=True)
    finally:
      os.remove(scratch)
    return
  temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
  try:
    with temporary.open(mode) as f:
      yield f
    os.replace(temporary, target)
  finally:
    if temporary.exists():
      temporary.unlink()
