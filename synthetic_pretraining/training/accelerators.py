"""Accelerator set-up every binary does first: keep TensorFlow off the GPUs that JAX uses.

TensorFlow is only the data pipeline's engine here (tf.data under SeqIO). A CUDA-enabled
TensorFlow installed beside JAX would otherwise grab most of each GPU's memory the first time it
runs an op, before or alongside JAX's own allocator; t5x calls
`tf.config.set_visible_devices([], 'GPU')` at start-up for this reason, and so do we.

`hide_gpus_from_tensorflow()` is called at the top of each binary's `main`, before JAX creates a
backend. It needs no TensorFlow itself: if TensorFlow is already imported, its GPUs are hidden at
once; if it is installed but not imported yet, they are hidden the moment it is imported (an
import hook), so a binary that never touches TensorFlow never pays for importing it.
"""
import importlib.abc
import importlib.util
import sys
from typing import List

_TF = "tensorflow"
# What happened, in order (for tests and --verbose start-up logs).
events: List[str] = []


def _hide(tf_module) -> None:
  """Hides every GPU from an imported TensorFlow (a no-op for a CPU-only TensorFlow)."""
  config = getattr(tf_module, "config", None)
  if config is None or not hasattr(config, "set_visible_devices"):
    return
  try:
    config.set_visible_devices([], "GPU")
    events.append("tensorflow GPUs hidden")
  except RuntimeError as e:  # TensorFlow already initialised its devices: too late to change
    events.append(f"tensorflow GPUs could not be hidden: {e}")


class _HidingLoader(importlib.abc.Loader):
  """TensorFlow's own loader, then `_hide` on the loaded module; all else is delegated."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    self._loader.exec_module(module)
    _hide(module)

  def __getattr__(self, name):  # resource readers and the like
    return getattr(self._loader, name)


class _HideOnImport(importlib.abc.MetaPathFinder):
  """Finds `tensorflow` through the other finders and wraps its loader in `_HidingLoader`."""

  def __init__(self):
    self._finding = False

  def find_spec(self, fullname, path=None, target=None):
    if fullname != _TF or self._finding:
      return None
    self._finding = True
    try:
      spec = importlib.util.find_spec(fullname)  # the other finders (this one says None)
    finally:
      self._finding = False
    if spec is not None and spec.loader is not None:
      spec.loader = _HidingLoader(spec.loader)
    return spec


def hide_gpus_from_tensorflow() -> str:
  """Makes TensorFlow see no GPU, now or when it is first imported; returns what it did.

  Call it before JAX allocates (first thing in a binary's `main`). Returns 'hidden' (TensorFlow
  was imported: done now), 'on import' (installed, not imported yet: done when it is) or
  'absent' (TensorFlow is not installed: nothing to do).
  """
  if _TF in sys.modules:
    _hide(sys.modules[_TF])
    return "hidden"
  if any(isinstance(f, _HideOnImport) for f in sys.meta_path):
    return "on import"
  if importlib.util.find_spec(_TF) is None:
    return "absent"
  sys.meta_path.insert(0, _HideOnImport())
  return "on import"
