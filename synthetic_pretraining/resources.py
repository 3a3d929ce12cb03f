"""Files that ship with the package: gin configs (gin/), the CPU vocabulary and offline data (data/).

The repository keeps them, and the SeqIO registrations (tasks/), in top-level folders (DESIGN.md).
setup.py copies gin/ and data/ into an installed package as `synthetic_pretraining/assets/gin` and
`.../assets/data`, and installs tasks/ as the subpackage `synthetic_pretraining.tasks`. `root()` is
the folder holding gin/ and data/ in either layout, found from where the imported package lives
(importlib.resources): a wheel reads the copies it carries, a checkout (editable install or
PYTHONPATH) its own top-level folders, so edits in a checkout take effect without reinstalling.
"""
import functools
import importlib.abc
import importlib.resources
import importlib.util
import pathlib
import sys
from typing import Optional

PACKAGE = "synthetic_pretraining"
ASSETS = "assets"  # the installed copies of gin/ and data/: synthetic_pretraining/assets/{gin,data}
TASKS_MODULE = f"{PACKAGE}.tasks"


def _package_dir() -> pathlib.Path:
  # A real directory: gin, SentencePiece and tf.data open these files by name (pip installs
  # wheels unzipped, so the package's resources are plain files).
  return pathlib.Path(str(importlib.resources.files(PACKAGE)))


def _checkout_dir() -> Optional[pathlib.Path]:
  """The repository the package is imported from, or None for an installed package."""
  package = _package_dir()
  repository = package.parent
  if (package / ASSETS).is_dir() or not (repository / "setup.py").is_file():
    return None
  return repository


@functools.lru_cache(maxsize=None)
def root() -> pathlib.Path:
  """The folder holding the shipped gin/ and data/ folders (the installed copies or a checkout's).

  An install that lacks them gets its own (absent) assets folder, so that the file missing is
  named where it is first needed.
  """
  checkout = _checkout_dir()
  if checkout is not None and (checkout / "gin").is_dir():
    return checkout
  return _package_dir() / ASSETS


def path(relative: str) -> str:
  """A shipped file or folder, named as in the repository, e.g. 'data/vocab/cpu_sp.model'."""
  return str(root() / relative)


def find_gin_file(name: str) -> Optional[str]:
  """A shipped gin file named as on the command line ('gin/models/t5_1_0/cpu.gin'), or None."""
  candidate = root() / name
  return str(candidate) if not pathlib.PurePath(name).is_absolute() and candidate.is_file() else None


class _CheckoutTasksFinder(importlib.abc.MetaPathFinder):
  """Answers `synthetic_pretraining.tasks` with a checkout's top-level tasks/ folder."""

  def __init__(self, tasks_dir: pathlib.Path):
    self.tasks_dir = tasks_dir

  def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
    if fullname != TASKS_MODULE:
      return None  # its submodules are found through the package's __path__
    return importlib.util.spec_from_file_location(
        fullname, self.tasks_dir / "__init__.py", submodule_search_locations=[str(self.tasks_dir)])


def alias_checkout_tasks() -> None:
  """Makes `synthetic_pretraining.tasks` importable from a checkout, as it is when installed.

  The finder goes first on sys.meta_path so that an editable install of another checkout (whose
  finder maps the name to that checkout) cannot shadow the checkout actually imported.
  """
  checkout = _checkout_dir()
  if checkout is None or not (checkout / "tasks" / "__init__.py").is_file():
    return
  if not any(isinstance(f, _CheckoutTasksFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutTasksFinder(checkout / "tasks"))
