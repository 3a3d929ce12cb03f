"""Readers of t5x's checkpoint formats (local or gs://), as `ParamSource`s.

  * a legacy msgpack file (`{'optimizer': {'target': params, 'state': ...}}`, such as
    `t5_1_1_tiny.msgpack`). The format has no index, so the whole file is read on every host;
  * a tensorstore checkpoint directory (`checkpoint_<step>/checkpoint`, a msgpack tree whose
    large arrays are tensorstore specs of zarr arrays beside it, such as
    `target.encoder.layers_0.attention.key.kernel/`);
  * an orbax checkpoint directory (`checkpoint_<step>/state`, an orbax PyTree of
    `{'target': params, 'state': ...}`).

A t5x MODEL_DIR (holding `checkpoint_<step>` directories) is resolved to its latest step by
`checkpoint_resolver`. Array formats read only the requested parameters and only each host's
own shards.
"""
import posixpath
import re
from typing import Any, Dict, Mapping

import jax
import numpy as np
from flax import serialization
from flax import traverse_util

from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing.param_source import Metadata, ParamSource

_TARGET_PREFIXES = ("optimizer/target/", "target/")


def _strip_target(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """The parameters of a t5x state tree (under optimizer/target or target)."""
  for prefix in _TARGET_PREFIXES:
    found = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
    if found:
      return found
  return dict(flat)


def _step_of(flat: Mapping[str, Any]) -> int:
  for key in ("optimizer/state/step", "state/step"):
    if key in flat and not isinstance(flat[key], dict):
      return int(np.asarray(flat[key]).reshape(-1)[0])
  return 0


def _is_ts_spec(value) -> bool:
  return isinstance(value, dict) and "driver" in value and ("kvstore" in value or "path" in value)


def _flatten_state(tree, prefix="") -> Dict[str, Any]:
  """Flattens a msgpack state tree, keeping tensorstore specs (dicts) as leaves."""
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict) and not _is_ts_spec(value):
      out.update(_flatten_state(value, path + "/"))
    else:
      out[path] = value
  return out


def _to_json(value):
  if isinstance(value, dict):
    return {k: _to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_to_json(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, bytes):
    return value.decode()
  return value


def kvstore_for(path: str) -> Dict[str, str]:
  """The tensorstore kvstore of an absolute local path or a gs:// URL."""
  if path.startswith("gs://"):
    bucket, _, key = path[len("gs://"):].partition("/")
    return {"driver": "gcs", "bucket": bucket, "path": key}
  if paths.is_remote(path):
    raise ValueError(f"tensorstore cannot read {path}: only local paths and gs:// are supported.")
  return {"driver": "file", "path": path}


def _open_tensorstore(spec: Mapping, directory: str):
  """Opens a t5x tensorstore spec, its relative path resolved against the checkpoint dir.

  t5x records paths relative to the checkpoint directory (and a 'gfile' or 'gcs' driver), so the
  same checkpoint opens wherever it was copied to.
  """
  import tensorstore as ts  # pylint: disable=import-outside-toplevel
  spec = _to_json(dict(spec))
  kvstore = spec.pop("kvstore", None)
  relative = kvstore.get("path") if isinstance(kvstore, dict) else spec.pop("path", None)
  if relative is None:
    raise ValueError(f"A tensorstore spec in {directory} names no path: {spec}")
  absolute = relative if (paths.is_remote(relative) or posixpath.isabs(relative)) else (
      paths.join(directory, relative))
  spec["kvstore"] = kvstore_for(absolute)
  return ts.open(spec, open=True, read=True).result()


class _LazyTensorStore:
  """Index-able view of a tensorstore array that is opened on first access."""

  def __init__(self, spec: Mapping, directory: str):
    self.spec, self.directory, self._store = spec, directory, None

  def _get(self):
    if self._store is None:
      self._store = _open_tensorstore(self.spec, self.directory)
    return self._store

  @property
  def shape(self):
    shape = (self.spec.get("metadata") or {}).get("shape")
    return tuple(int(d) for d in shape) if shape is not None else tuple(self._get().shape)

  @property
  def dtype(self):
    return str(self.spec.get("dtype") or self._get().dtype.numpy_dtype)

  def __getitem__(self, index):
    return np.asarray(self._get()[index].read().result())


def _array_metadata(flat: Mapping[str, Any]) -> Metadata:
  out = {}
  for path, value in flat.items():
    if isinstance(value, _LazyTensorStore):
      out[path] = (value.shape, value.dtype)
    else:
      value = np.asarray(value)
      out[path] = (tuple(value.shape), str(value.dtype))
  return out


def _msgpack_tree(path: str) -> Dict[str, Any]:
  return serialization.msgpack_restore(paths.read_bytes(path))


def msgpack_source(path: str) -> ParamSource:
  """A legacy single-file t5x checkpoint (read whole, on every host)."""
  flat = traverse_util.flatten_dict(_msgpack_tree(path), sep="/")
  params = {k: v for k, v in _strip_target(flat).items() if isinstance(v, np.ndarray)}
  return ParamSource(paths.as_str(path), _array_metadata(params), params.__getitem__,
                     step=_step_of(flat))


def tensorstore_source(directory: str) -> ParamSource:
  """A t5x tensorstore checkpoint directory (the `checkpoint` msgpack file + zarr arrays)."""
  directory = paths.as_str(directory)
  flat = _flatten_state(_msgpack_tree(paths.join(directory, "checkpoint")))
  params = {}
  for path, value in _strip_target(flat).items():
    if _is_ts_spec(value):
      params[path] = _LazyTensorStore(value, directory)
    elif isinstance(value, np.ndarray):
      params[path] = value
  return ParamSource(directory, _array_metadata(params), params.__getitem__, step=_step_of(flat))


def _to_dict(tree):
  if isinstance(tree, dict) or hasattr(tree, "items"):
    return {k: _to_dict(v) for k, v in tree.items()}
  return tree


class OrbaxStateSource(ParamSource):
  """A t5x orbax checkpoint: `checkpoint_<step>/state`, a PyTree with the params under target."""

  def __init__(self, item_dir: str):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    item_dir = paths.as_str(item_dir)
    metadata = ocp.PyTreeCheckpointer().metadata(item_dir)
    tree = getattr(metadata, "item_metadata", metadata)
    flat = traverse_util.flatten_dict(_to_dict(getattr(tree, "tree", tree)), sep="/")
    prefix = next((p for p in _TARGET_PREFIXES if any(k.startswith(p) for k in flat)), "")
    self.item_dir, self.prefix = item_dir, prefix
    meta = {k[len(prefix):]: (tuple(v.shape), str(np.dtype(v.dtype)))
            for k, v in flat.items() if k.startswith(prefix) and hasattr(v, "shape")}
    step = re.search(r"checkpoint_(\d+)", item_dir)
    super().__init__(item_dir, meta, reader=None, step=int(step.group(1)) if step else 0)

  def _restore(self, restore_args):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    item = jax.tree.map(lambda _: 0, restore_args)
    return ocp.PyTreeCheckpointer().restore(self.item_dir, args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True))

  def read(self, abstract):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    args = {self.prefix + p: ocp.ArrayRestoreArgs(sharding=t.sharding, dtype=t.dtype,
                                                  global_shape=tuple(t.shape))
            for p, t in abstract.items()}
    flat = traverse_util.flatten_dict(
        self._restore(traverse_util.unflatten_dict(args, sep="/")), sep="/")
    return {p: flat[self.prefix + p] for p in abstract}

  def read_numpy(self) -> Dict[str, np.ndarray]:
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    args = {self.prefix + p: ocp.RestoreArgs(restore_type=np.ndarray) for p in self._metadata}
    flat = traverse_util.flatten_dict(
        self._restore(traverse_util.unflatten_dict(args, sep="/")), sep="/")
    return {p: np.asarray(flat[self.prefix + p]) for p in self._metadata}


def is_step_dir(path: str) -> bool:
  """A t5x checkpoint directory: a tensorstore `checkpoint` file or an orbax `state` item."""
  return (paths.exists(paths.join(path, "checkpoint")) and
          not paths.isdir(paths.join(path, "checkpoint"))) or paths.isdir(paths.join(path, "state"))


def step_dir_source(path: str) -> ParamSource:
  """The parameters of a t5x checkpoint directory (tensorstore or orbax layout)."""
  if paths.exists(paths.join(path, "checkpoint")) and not paths.isdir(paths.join(path, "checkpoint")):
    return tensorstore_source(path)
  return OrbaxStateSource(paths.join(path, "state"))
