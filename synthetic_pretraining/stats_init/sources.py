"""Where statistics come from: our orbax checkpoints, t5x checkpoints, or a stats.json file.

`open_source(path)` recognises:

  * one of our checkpoints (a `checkpoint_<step>` directory, a params-only checkpoint, or a
    MODEL_DIR, whose latest checkpoint is used): restored sharded through `checkpoints`;
  * a legacy t5x msgpack file (`{'optimizer': {'target': params, 'state': ...}}`, as
    `t5_1_1_tiny.msgpack`). The format has no index, so the whole file is read on every host;
  * a t5x tensorstore checkpoint directory (`checkpoint_<step>/checkpoint`, a msgpack tree whose
    large arrays are tensorstore specs of zarr arrays beside it, such as
    `target.encoder.layers_0.attention.key.kernel/`), or a t5x MODEL_DIR of them;
  * a t5x orbax checkpoint directory (`checkpoint_<step>/state`, an orbax PyTree of
    `{'target': params, 'state': ...}`);
  * a stats.json file (see `artifact`), which needs no checkpoint at all.

Array sources read only the requested parameters, and only each host's own shards (except the
msgpack file, see above), straight into the requested shardings.
"""
import logging
import os
import re
from typing import Any, Callable, Dict, Mapping, Tuple, Union

import jax
import numpy as np
from flax import serialization
from flax import traverse_util

from synthetic_pretraining import checkpoints
from synthetic_pretraining.stats_init import artifact

Metadata = Dict[str, Tuple[Tuple[int, ...], str]]
_T5X_PREFIXES = ("optimizer/target/", "target/")


class ArraySource:
  """Parameters held by a callable per path (also used for arrays already in memory).

  Attributes:
    description: names the source in stats.json and messages.
    step: the checkpoint's step, when known.
  """

  def __init__(self, description: str, metadata: Metadata,
               reader: Callable[[str], Any], step: int = 0):
    self.description = description
    self.step = step
    self._metadata = metadata
    self._reader = reader

  def metadata(self) -> Metadata:
    """{path: (shape, dtype)} of every parameter, without reading arrays."""
    return dict(self._metadata)

  def read(self, abstract: Mapping[str, jax.ShapeDtypeStruct]) -> Dict[str, jax.Array]:
    """The requested parameters, each host reading only its shards, in the given shardings."""
    out = {}
    for path, target in abstract.items():
      source = self._reader(path)
      if isinstance(source, jax.Array):
        out[path] = jax.device_put(source, target.sharding)
        continue
      out[path] = jax.make_array_from_callback(
          tuple(target.shape), target.sharding,
          lambda index, s=source, t=target: np.asarray(s[index], dtype=t.dtype))
    return out

  def bind(self, full_abstract) -> None:
    """Tells the source the model's whole abstract parameter tree (some formats need it)."""
    del full_abstract

  def read_numpy(self) -> Dict[str, np.ndarray]:
    """Every parameter as a host numpy array (for inspection)."""
    return {p: np.asarray(self._reader(p)[()]) for p in self._metadata}


class OrbaxSource(ArraySource):
  """One of our checkpoints (via `checkpoints.restore_params`, sharded, partial)."""

  def __init__(self, step_dir: str):
    self.step_dir = step_dir
    meta = checkpoints.read_meta(step_dir)
    super().__init__(os.path.abspath(step_dir) if "://" not in step_dir else step_dir,
                     checkpoints.params_metadata(step_dir), reader=None,
                     step=int(meta.get("step", 0)))
    self.full_abstract = None

  def bind(self, full_abstract) -> None:
    self.full_abstract = full_abstract

  def read(self, abstract):
    if self.full_abstract is None:
      raise ValueError("OrbaxSource.read needs the model's full abstract tree: call bind().")
    wanted = set(abstract)
    restored = checkpoints.restore_params(self.step_dir, self.full_abstract,
                                          only=lambda name: name in wanted)
    flat = traverse_util.flatten_dict(restored, sep="/")
    return {p: flat[p] for p in abstract}


def _strip_target(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """The parameters of a t5x state tree (under optimizer/target or target)."""
  for prefix in _T5X_PREFIXES:
    found = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
    if found:
      return found
  return dict(flat)


def _t5x_step(flat: Mapping[str, Any]) -> int:
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


def _open_tensorstore(spec: Mapping, directory: str):
  """Opens a t5x tensorstore spec, its relative path resolved against the checkpoint dir."""
  import tensorstore as ts  # pylint: disable=import-outside-toplevel
  spec = _to_json(dict(spec))
  kvstore = spec.get("kvstore")
  if isinstance(kvstore, dict) and "path" in kvstore:
    if kvstore.get("driver") in ("gfile", "gcs") and "://" not in directory:
      kvstore["driver"] = "file"
      kvstore.pop("bucket", None)
    if not os.path.isabs(kvstore["path"]) and "://" not in kvstore["path"]:
      kvstore["path"] = os.path.join(os.path.abspath(directory), kvstore["path"])
  elif "path" in spec:  # tensorstore < 0.1.14 layout
    spec["kvstore"] = {"driver": "file",
                       "path": os.path.join(os.path.abspath(directory), spec.pop("path"))}
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


def _t5x_msgpack_tree(path: str) -> Dict[str, Any]:
  with open(path, "rb") as f:
    return serialization.msgpack_restore(f.read())


def t5x_msgpack_source(path: str) -> ArraySource:
  """A legacy single-file t5x checkpoint (read whole, on every host)."""
  flat = traverse_util.flatten_dict(_t5x_msgpack_tree(path), sep="/")
  params = {k: v for k, v in _strip_target(flat).items() if isinstance(v, np.ndarray)}
  return ArraySource(os.path.abspath(path), _array_metadata(params), params.__getitem__,
                     step=_t5x_step(flat))


def t5x_tensorstore_source(directory: str) -> ArraySource:
  """A t5x tensorstore checkpoint directory (the `checkpoint` msgpack file + zarr arrays)."""
  flat = _flatten_state(_t5x_msgpack_tree(os.path.join(directory, "checkpoint")))
  params = {}
  for path, value in _strip_target(flat).items():
    if _is_ts_spec(value):
      params[path] = _LazyTensorStore(value, directory)
    elif isinstance(value, np.ndarray):
      params[path] = value
  return ArraySource(os.path.abspath(directory), _array_metadata(params), params.__getitem__,
                     step=_t5x_step(flat))


def _orbax_tree_metadata(item_dir: str) -> Dict[str, Any]:
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  metadata = ocp.PyTreeCheckpointer().metadata(item_dir)
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  return traverse_util.flatten_dict(checkpoints._to_dict(tree), sep="/")  # pylint: disable=protected-access


class T5xOrbaxSource(ArraySource):
  """A t5x orbax checkpoint: `checkpoint_<step>/state`, a PyTree with the params under target."""

  def __init__(self, item_dir: str):
    flat = _orbax_tree_metadata(item_dir)
    prefix = next((p for p in _T5X_PREFIXES if any(k.startswith(p) for k in flat)), "")
    self.item_dir, self.prefix = item_dir, prefix
    meta = {k[len(prefix):]: (tuple(v.shape), str(np.dtype(v.dtype)))
            for k, v in flat.items() if k.startswith(prefix) and hasattr(v, "shape")}
    step = re.search(r"checkpoint_(\d+)", os.path.abspath(item_dir))
    super().__init__(os.path.abspath(item_dir), meta, reader=None,
                     step=int(step.group(1)) if step else 0)

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
    """Every parameter as a host numpy array (for inspection)."""
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    args = {self.prefix + p: ocp.RestoreArgs(restore_type=np.ndarray) for p in self._metadata}
    flat = traverse_util.flatten_dict(
        self._restore(traverse_util.unflatten_dict(args, sep="/")), sep="/")
    return {p: np.asarray(flat[self.prefix + p]) for p in self._metadata}


def _is_t5x_dir(path: str) -> bool:
  return (os.path.isfile(os.path.join(path, "checkpoint")) or
          os.path.isdir(os.path.join(path, "state")))


def _t5x_dir_source(path: str) -> ArraySource:
  if os.path.isfile(os.path.join(path, "checkpoint")):
    return t5x_tensorstore_source(path)
  return T5xOrbaxSource(os.path.join(path, "state"))


def is_t5x_checkpoint(path: str) -> bool:
  """True for a local t5x checkpoint: a msgpack file, a tensorstore/orbax t5x directory, or a
  t5x MODEL_DIR whose latest `checkpoint_<step>` is one (as t5x's INITIAL_CHECKPOINT_PATH)."""
  path = os.fspath(path)
  if "://" in path:
    return False
  if os.path.isfile(path):
    return not path.endswith(".json")
  if not os.path.isdir(path) or checkpoints.is_checkpoint_dir(path):
    return False
  if _is_t5x_dir(path):
    return True
  latest = checkpoints.latest_checkpoint_step_dir(path)
  return (latest is not None and not checkpoints.is_checkpoint_dir(latest) and
          _is_t5x_dir(latest))


def open_source(path: str) -> Union[ArraySource, artifact.Plan]:
  """The statistics source at `path` (see the module docstring for the formats)."""
  path = os.fspath(path)
  if "://" in path:
    return OrbaxSource(path)  # remote: only our own (orbax) checkpoints are read from there
  if os.path.isfile(path):
    if path.endswith(".json"):
      return artifact.read(path)
    if os.path.basename(path) == "checkpoint":
      return _t5x_dir_source(os.path.dirname(path))
    return t5x_msgpack_source(path)
  if os.path.isdir(path):
    if checkpoints.is_checkpoint_dir(path):
      return OrbaxSource(path)
    if _is_t5x_dir(path):
      return _t5x_dir_source(path)
    latest = checkpoints.latest_checkpoint_step_dir(path)
    if latest is not None:
      logging.info("Statistics from the latest checkpoint in %s: %s", path, latest)
      return open_source(latest)
  raise FileNotFoundError(
      f"No statistics source at {path!r}: expected one of our checkpoints (a checkpoint_<step> "
      "directory, a params-only checkpoint or a MODEL_DIR), a t5x checkpoint (a .msgpack file, "
      "or a directory with a 'checkpoint' file or a 'state' item), or a stats.json file.")


def load_t5x_params(path: str) -> Tuple[int, Dict[str, np.ndarray]]:
  """(step, {path: numpy array}) of a t5x checkpoint: msgpack file, tensorstore or orbax dir.

  Used by `inspect_checkpoint`; reads every parameter onto the host.
  """
  path = os.fspath(path)
  if os.path.isdir(path) and not _is_t5x_dir(path):
    latest = checkpoints.latest_checkpoint_step_dir(path)
    path = latest if latest is not None and _is_t5x_dir(latest) else path
  if os.path.isfile(path) and os.path.basename(path) == "checkpoint":
    path = os.path.dirname(path)
  if os.path.isfile(path) and not path.endswith(".json"):
    source = t5x_msgpack_source(path)
  elif os.path.isdir(path) and _is_t5x_dir(path):
    source = _t5x_dir_source(path)
  else:
    raise FileNotFoundError(f"{path} is not a t5x checkpoint (a msgpack file, or a directory "
                            "with a 'checkpoint' file or a 'state' item).")
  return source.step, source.read_numpy()
