"""A transformers T5 directory (local or gs://) as a `ParamSource` with t5x's names and layouts.

    source = hf_reader.HFParamSource("/models/t5-small")   # config.json + model.safetensors
    source.architecture      # hf_format.Architecture (sizes, activations, tied head)
    source.metadata()        # {'encoder/layers_0/attention/query/kernel': ((512, 512), 'float32'), ...}

T5 1.0 (ReLU, tied embedding, decoder output scaled by d_model**-0.5) and T5 1.1 / mT5 (gated
GELU, separate `lm_head`) of any depth, encoder and decoder depths independent. Weights come from
`model.safetensors`, a sharded `model.safetensors.index.json`, or `pytorch_model.bin` (needs torch;
read whole). safetensors tensors are read per host shard: each requested slice reads only the rows
it needs (transposed kernels read their columns' rows). The names and layouts are in
`hf_format`'s docstring; a config our T5 cannot represent, a foreign model or a damaged directory
raises `hf_format.HFFormatError` (a `UsageError`: one line through `cli.run`).
"""
import io
import json
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing import hf_format
from synthetic_pretraining.checkpointing.hf_format import HFFormatError
from synthetic_pretraining.checkpointing.param_source import ParamSource

KIND = "transformers"
# Rows compared at a time when checking whether a stored lm_head is the embedding.
_COMPARE_ROWS = 4096


def is_hf_dir(path: str) -> bool:
  """A directory that holds a transformers config.json (weights are checked when opened)."""
  return paths.exists(paths.join(path, hf_format.CONFIG)) and not paths.isdir(
      paths.join(path, hf_format.CONFIG))


class _Stored:
  """The tensors of a directory: name -> reader of a row range, whatever the file format."""

  def __init__(self, directory: str):
    self.directory = directory
    self.files: Dict[str, hf_format.SafetensorsFile] = {}
    self.where: Dict[str, str] = {}
    self.arrays: Optional[Dict[str, np.ndarray]] = None
    single = paths.join(directory, hf_format.SAFETENSORS)
    index = paths.join(directory, hf_format.SAFETENSORS_INDEX)
    torch_bin = paths.join(directory, hf_format.TORCH_BIN)
    if paths.exists(single):
      self._add_file(single)
    elif paths.exists(index):
      try:
        weight_map = json.loads(paths.read_text(index))["weight_map"]
      except (ValueError, KeyError, TypeError):
        raise HFFormatError(f"{index} is damaged: expected JSON with a 'weight_map'.") from None
      for name in sorted(set(weight_map.values())):
        shard = paths.join(directory, name)
        if not paths.exists(shard):
          raise HFFormatError(f"{directory} is damaged: {index} names {name}, which is missing.")
        self._add_file(shard)
    elif paths.exists(torch_bin):
      self.arrays = _load_torch(torch_bin)
    else:
      raise HFFormatError(
          f"{directory} has a config.json but no weights: expected {hf_format.SAFETENSORS}, "
          f"{hf_format.SAFETENSORS_INDEX} or {hf_format.TORCH_BIN}.")

  def _add_file(self, path: str) -> None:
    stored = hf_format.SafetensorsFile(path)
    stored.check_size()
    self.files[path] = stored
    for name in stored.tensors:
      self.where[name] = path

  def names(self):
    """Every stored tensor name."""
    return set(self.arrays) if self.arrays is not None else set(self.where)

  def shape_dtype(self, name: str) -> Tuple[Tuple[int, ...], np.dtype]:
    """(shape, dtype) of a stored tensor, reading no data."""
    if self.arrays is not None:
      return tuple(self.arrays[name].shape), self.arrays[name].dtype
    info = self.files[self.where[name]].tensors[name]
    return info.shape, info.dtype

  def rows(self, name: str, rows: slice = slice(None)) -> np.ndarray:
    """Rows of a stored tensor (the first axis), as numpy."""
    if self.arrays is not None:
      return self.arrays[name][rows]
    return self.files[self.where[name]].read_rows(name, rows)


def _load_torch(path: str) -> Dict[str, np.ndarray]:
  """pytorch_model.bin as numpy arrays (whole; torch's pickle has no per-tensor reads)."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise HFFormatError(f"{path} is a PyTorch pickle, which needs torch to read; install torch "
                        "or save the model with safetensors (save_pretrained does).") from None
  try:
    state = torch.load(io.BytesIO(paths.read_bytes(path)), map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  (any unpickling failure: damaged file)
    raise HFFormatError(f"{path} is damaged: torch cannot load it ({type(e).__name__}).") from None
  out = {}
  for name, tensor in state.items():
    if tensor.dtype == torch.bfloat16:
      import ml_dtypes  # pylint: disable=import-outside-toplevel
      out[name] = tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
      out[name] = tensor.numpy()
  return out


class _View:
  """One t5x parameter, index-able by t5x's layout, reading only the stored rows it needs."""

  def __init__(self, stored: _Stored, name: str, transpose: bool, shape, dtype,
               scale: Optional[float] = None):
    self.stored, self.name, self.transpose, self.scale = stored, name, transpose, scale
    self.shape, self.dtype = tuple(shape), dtype

  def __getitem__(self, index) -> np.ndarray:
    index = index if isinstance(index, tuple) else (index,)
    index = tuple(index) + (slice(None),) * (len(self.shape) - len(index))
    if not self.shape:
      value = self.stored.rows(self.name)
    else:
      # The stored tensor's rows are t5x's axis 1 when transposed, else its axis 0.
      row_axis = 1 if self.transpose else 0
      rows = index[row_axis]
      if isinstance(rows, slice) and rows.step in (None, 1):
        value = self.stored.rows(self.name, rows)
        index = tuple(slice(None) if i == row_axis else s for i, s in enumerate(index))
      else:
        value = self.stored.rows(self.name)
      value = (value.T if self.transpose else value)[index]
    value = np.asarray(value)
    if self.scale is not None:
      value = (value.astype(np.float32) * np.float32(self.scale)).astype(value.dtype)
    return value


class HFParamSource(ParamSource):
  """The parameters of a transformers T5 directory under t5x's names (module docstring).

  Attributes:
    architecture: the T5 the config describes (`hf_format.Architecture`).
    config: config.json as parsed.
  """

  def __init__(self, directory: str):
    directory = paths.as_str(directory).rstrip("/")
    self.config = hf_format.read_config(directory)
    arch = hf_format.architecture(self.config, directory)
    stored = _Stored(directory)
    names = stored.names()
    if "shared.weight" not in names:
      for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        if alias in names:  # a copy of the embedding under another name
          stored.where.setdefault("shared.weight", stored.where.get(alias))
          if stored.arrays is not None:
            stored.arrays["shared.weight"] = stored.arrays[alias]
          else:
            stored.files[stored.where[alias]].tensors["shared.weight"] = (
                stored.files[stored.where[alias]].tensors[alias])
          names = stored.names()
          break
    head_scale = None
    if arch.logits_via_embedding and "lm_head.weight" in names and not _same(
        stored, "lm_head.weight", "shared.weight"):
      # A scaled output layer with its own weights: the scale folds into an untied kernel.
      arch = arch._replace(logits_via_embedding=False)
      head_scale = arch.emb_dim ** -0.5
    entries = hf_format.name_map(arch)
    metadata, views = {}, {}
    missing = []
    for entry in entries:
      hf_name = entry.hf
      if hf_name == "lm_head.weight" and hf_name not in names:
        hf_name = "shared.weight"  # an untied, unscaled head stored as the embedding itself
      if hf_name not in names:
        missing.append(hf_name)
        continue
      shape, dtype = stored.shape_dtype(hf_name)
      shape = tuple(reversed(shape)) if entry.transpose else shape
      views[entry.t5x] = _View(stored, hf_name, entry.transpose, shape, dtype,
                               head_scale if entry.t5x == "decoder/logits_dense/kernel" else None)
      metadata[entry.t5x] = (shape, str(np.dtype(dtype)))
    if missing:
      raise HFFormatError(f"{directory} is damaged or not the T5 its config.json describes "
                          f"({arch.describe()}): {len(missing)} tensor(s) missing: "
                          f"{'; '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}.")
    used = {e.hf for e in entries} | set(hf_format.IGNORED) | {"lm_head.weight"}
    extra = sorted(names - used)
    if extra:
      raise HFFormatError(f"{directory} holds tensors no {arch.describe()} has (a T5 variant we "
                          f"cannot represent?): {'; '.join(extra[:5])}"
                          f"{' ...' if len(extra) > 5 else ''}.")
    _check_shapes(directory, arch, metadata)
    self.architecture = arch
    self.directory = directory
    super().__init__(directory, metadata, views.__getitem__, step=0)


def _same(stored: _Stored, a: str, b: str) -> bool:
  """Whether two stored tensors are equal (compared a block of rows at a time)."""
  if b not in stored.names() or stored.shape_dtype(a)[0] != stored.shape_dtype(b)[0]:
    return False
  rows = stored.shape_dtype(a)[0][0]
  for start in range(0, rows, _COMPARE_ROWS):
    block = slice(start, min(rows, start + _COMPARE_ROWS))
    if not np.array_equal(stored.rows(a, block), stored.rows(b, block)):
      return False
  return True


def _check_shapes(directory: str, arch: hf_format.Architecture,
                  metadata: Mapping[str, Tuple[Tuple[int, ...], Any]]) -> None:
  """The stored shapes are the ones config.json implies (else the directory is inconsistent)."""
  inner = arch.num_heads * arch.head_dim
  expected = {"token_embedder/embedding": (arch.vocab_size, arch.emb_dim),
              "encoder/relpos_bias/rel_embedding": (arch.num_heads, arch.relpos_num_buckets),
              "encoder/layers_0/attention/query/kernel": (arch.emb_dim, inner),
              "encoder/layers_0/mlp/wo/kernel": (arch.mlp_dim, arch.emb_dim)}
  for name, shape in expected.items():
    if tuple(metadata[name][0]) != shape:
      raise HFFormatError(f"{directory} is damaged: {name} is stored {tuple(metadata[name][0])}, "
                          f"its config.json implies {shape}.")


def check_model(source: ParamSource, model_config: Any) -> None:
  """Raises HFFormatError naming each architecture fact (not visible in parameter shapes) in
  which a transformers checkpoint and the model (`network.T5Config`) differ."""
  arch = getattr(source, "architecture", None)
  if arch is None or model_config is None:
    return
  differences = []
  for field in ("activations", "relpos_max_distance", "num_heads", "head_dim",
                "logits_via_embedding"):
    theirs, ours = getattr(arch, field), getattr(model_config, field, None)
    if ours is None:
      continue
    if field == "activations":
      theirs, ours = tuple(theirs), tuple(ours)
    if theirs != ours:
      differences.append(f"{field}: checkpoint {theirs!r} vs model {ours!r}")
  if differences:
    raise HFFormatError(f"The transformers checkpoint at {source.description} "
                        f"({arch.describe()}) does not fit the model: {'; '.join(differences)}.")
