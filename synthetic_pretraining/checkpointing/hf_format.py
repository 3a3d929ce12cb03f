"""Hugging Face transformers' T5 format: its config.json, its parameter names, safetensors files.

Shared by `hf_reader` (a transformers directory as a `ParamSource`) and `hf_writer` (our
parameters as a transformers directory). Nothing here imports torch or transformers.

A transformers T5 directory holds `config.json` and `model.safetensors` (or
`model.safetensors.index.json` with its shards, or `pytorch_model.bin`). Its names map to t5x's
as follows (i = layer; kernels are transposed: torch's `Linear.weight` is [out, in], t5x's
kernels are [in, out]; the relative-position table is [buckets, heads] in transformers and
[heads, buckets] in t5x, and only layer 0 of each stack holds it):

    shared.weight                                            token_embedder/embedding
    encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight   encoder/relpos_bias/rel_embedding (T)
    encoder.block.i.layer.0.SelfAttention.{q,k,v,o}.weight   encoder/layers_i/attention/{query,key,value,out}/kernel (T)
    encoder.block.i.layer.0.layer_norm.weight                encoder/layers_i/pre_attention_layer_norm/scale
    encoder.block.i.layer.1.DenseReluDense.{wi,wi_0,wi_1,wo}.weight   encoder/layers_i/mlp/{...}/kernel (T)
    encoder.block.i.layer.1.layer_norm.weight                encoder/layers_i/pre_mlp_layer_norm/scale
    encoder.final_layer_norm.weight                          encoder/encoder_norm/scale
    decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight   decoder/relpos_bias/rel_embedding (T)
    decoder.block.i.layer.0.SelfAttention.{q,k,v,o}.weight   decoder/layers_i/self_attention/{...}/kernel (T)
    decoder.block.i.layer.0.layer_norm.weight                decoder/layers_i/pre_self_attention_layer_norm/scale
    decoder.block.i.layer.1.EncDecAttention.{q,k,v,o}.weight decoder/layers_i/encoder_decoder_attention/{...}/kernel (T)
    decoder.block.i.layer.1.layer_norm.weight                decoder/layers_i/pre_cross_attention_layer_norm/scale
    decoder.block.i.layer.2.DenseReluDense.{...}.weight      decoder/layers_i/mlp/{...}/kernel (T)
    decoder.block.i.layer.2.layer_norm.weight                decoder/layers_i/pre_mlp_layer_norm/scale
    decoder.final_layer_norm.weight                          decoder/decoder_norm/scale
    lm_head.weight                                           decoder/logits_dense/kernel (T; T5 1.1)

The output layer: T5 1.0 ties it to the embedding and multiplies the decoder output by
d_model**-0.5 first, which is our `logits_via_embedding=True` (`attend(y) / sqrt(emb_dim)`).
transformers 5 says so in `scale_decoder_outputs`; older configs in `tie_word_embeddings`. An
unscaled head is our `logits_dense` (T5 1.1), read from `lm_head.weight`, or from the embedding
when the file has no separate head.
"""
import json
import struct
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from synthetic_pretraining import errors
from synthetic_pretraining import paths

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN)

# Our RMSNorm's epsilon (model/layers.py) and what transformers' activations mean in our MLP.
LAYER_NORM_EPSILON = 1e-6
# transformers' dense_act_fn -> our activation name ('gelu' is flax's tanh approximation, which
# is transformers' 'gelu_new' / 'gelu_pytorch_tanh', not its exact 'gelu').
_ACTIVATIONS = {"relu": "relu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu"}
_MODEL_TYPES = ("t5", "mt5")


class HFFormatError(errors.UsageError):
  """A transformers directory that is damaged, foreign, or that our T5 cannot represent."""


class Architecture(NamedTuple):
  """The T5 a transformers config describes, in our `network.T5Config` field names."""
  vocab_size: int
  emb_dim: int
  num_heads: int
  head_dim: int
  mlp_dim: int
  num_encoder_layers: int
  num_decoder_layers: int
  activations: Tuple[str, ...]
  logits_via_embedding: bool
  relpos_num_buckets: int
  relpos_max_distance: int

  def describe(self) -> str:
    """A short human name: 'T5 1.0-style (relu, tied) 6+6 layers, emb 512, ...'."""
    style = "T5 1.0-style" if self.logits_via_embedding else "T5 1.1-style"
    return (f"{style} {self.num_encoder_layers}+{self.num_decoder_layers} layers, "
            f"emb {self.emb_dim}, {self.num_heads} heads of {self.head_dim}, MLP {self.mlp_dim} "
            f"{'-'.join(self.activations)}, vocab {self.vocab_size}")


def read_config(directory: str) -> Dict[str, Any]:
  """config.json of a transformers directory, parsed; a one-line error when it is not JSON."""
  path = paths.join(directory, CONFIG)
  try:
    config = json.loads(paths.read_text(path))
  except ValueError as e:
    raise HFFormatError(f"{path} is damaged: not JSON ({e}).") from None
  if not isinstance(config, dict):
    raise HFFormatError(f"{path} is damaged: expected a JSON object, got {type(config).__name__}.")
  return config


def architecture(config: Mapping[str, Any], where: str) -> Architecture:
  """The T5 described by a transformers config; HFFormatError naming what we cannot represent."""
  model_type = config.get("model_type")
  if model_type not in _MODEL_TYPES:
    names = config.get("architectures") or []
    raise HFFormatError(
        f"{where} is a transformers {model_type or 'model of unknown type'}"
        f"{' (' + ', '.join(map(str, names)) + ')' if names else ''}, not a T5: only model_type "
        f"{' or '.join(map(repr, _MODEL_TYPES))} (T5 1.0, T5 1.1, mT5) can be read.")
  if config.get("is_encoder_decoder", True) is False:
    raise HFFormatError(f"{where}: is_encoder_decoder is false; only encoder-decoder T5 is read.")
  projection = str(config.get("feed_forward_proj", "relu"))
  parts = projection.split("-")
  gated = len(parts) == 2 and parts[0] == "gated"
  if len(parts) > 2 or (len(parts) == 2 and not gated):
    raise HFFormatError(f"{where}: feed_forward_proj={projection!r} is not a T5 MLP "
                        "(expected 'relu', 'gated-gelu' or 'gated-relu').")
  act = "gelu_new" if projection == "gated-gelu" else parts[-1]
  if act not in _ACTIVATIONS:
    raise HFFormatError(
        f"{where}: feed_forward_proj={projection!r} uses activation {act!r}, which our T5 cannot "
        f"represent (ours: relu, or gelu as tanh approximation = transformers' gelu_new).")
  activations = (_ACTIVATIONS[act], "linear") if gated else (_ACTIVATIONS[act],)
  epsilon = float(config.get("layer_norm_epsilon", LAYER_NORM_EPSILON))
  if epsilon != LAYER_NORM_EPSILON:
    raise HFFormatError(f"{where}: layer_norm_epsilon={epsilon:g}, ours is fixed at "
                        f"{LAYER_NORM_EPSILON:g}.")
  if "scale_decoder_outputs" in config:
    scaled = bool(config["scale_decoder_outputs"])
  else:
    scaled = config.get("tie_word_embeddings", True) is not False
  try:
    num_layers = int(config.get("num_layers", 6))
    decoder_layers = config.get("num_decoder_layers")
    return Architecture(
        vocab_size=int(config.get("vocab_size", 32128)), emb_dim=int(config.get("d_model", 512)),
        num_heads=int(config.get("num_heads", 8)), head_dim=int(config.get("d_kv", 64)),
        mlp_dim=int(config.get("d_ff", 2048)), num_encoder_layers=num_layers,
        num_decoder_layers=int(decoder_layers) if decoder_layers is not None else num_layers,
        activations=activations, logits_via_embedding=scaled,
        relpos_num_buckets=int(config.get("relative_attention_num_buckets", 32)),
        relpos_max_distance=int(config.get("relative_attention_max_distance", 128)))
  except (TypeError, ValueError) as e:
    raise HFFormatError(f"{where}: a size in config.json is not an integer ({e}).") from None


def config_for(arch: Architecture, dropout_rate: float = 0.1) -> Dict[str, Any]:
  """The config.json transformers needs for `arch` (read by transformers 4 and 5 alike)."""
  activations = tuple(arch.activations)
  inverse = {("relu",): "relu", ("gelu", "linear"): "gated-gelu", ("relu", "linear"): "gated-relu",
             ("gelu",): "gelu_new"}
  if activations not in inverse:
    raise HFFormatError(f"The model's MLP activations {activations} have no transformers T5 "
                        f"equivalent (expected one of {sorted(inverse)}).")
  return {
      "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
      "vocab_size": arch.vocab_size, "d_model": arch.emb_dim, "d_kv": arch.head_dim,
      "d_ff": arch.mlp_dim, "num_layers": arch.num_encoder_layers,
      "num_decoder_layers": arch.num_decoder_layers, "num_heads": arch.num_heads,
      "relative_attention_num_buckets": arch.relpos_num_buckets,
      "relative_attention_max_distance": arch.relpos_max_distance,
      "dropout_rate": float(dropout_rate), "layer_norm_epsilon": LAYER_NORM_EPSILON,
      "initializer_factor": 1.0, "feed_forward_proj": inverse[activations],
      "is_encoder_decoder": True, "use_cache": True, "pad_token_id": 0, "eos_token_id": 1,
      "decoder_start_token_id": 0, "tie_word_embeddings": bool(arch.logits_via_embedding),
      "scale_decoder_outputs": bool(arch.logits_via_embedding), "dtype": "float32",
  }


class Entry(NamedTuple):
  """One t5x parameter and where it lives in transformers: name, and whether it is transposed."""
  t5x: str
  hf: str
  transpose: bool


def _mlp_names(activations: Iterable[str]) -> List[str]:
  activations = list(activations)
  wi = ["wi"] if len(activations) == 1 else [f"wi_{i}" for i in range(len(activations))]
  return wi + ["wo"]


def name_map(arch: Architecture) -> List[Entry]:
  """Every t5x parameter of `arch` with its transformers name (see the module docstring)."""
  entries = [Entry("token_embedder/embedding", "shared.weight", False)]
  attention = (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o"))
  mlp = _mlp_names(arch.activations)
  for stack, layers in (("encoder", arch.num_encoder_layers), ("decoder", arch.num_decoder_layers)):
    entries.append(Entry(f"{stack}/relpos_bias/rel_embedding",
                         f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                         True))
    for i in range(layers):
      ours, theirs = f"{stack}/layers_{i}", f"{stack}.block.{i}.layer"
      if stack == "encoder":
        blocks = (("attention", "pre_attention_layer_norm", "0.SelfAttention"),)
        mlp_index = 1
      else:
        blocks = (("self_attention", "pre_self_attention_layer_norm", "0.SelfAttention"),
                  ("encoder_decoder_attention", "pre_cross_attention_layer_norm",
                   "1.EncDecAttention"))
        mlp_index = 2
      for name, norm, where in blocks:
        for t5x_proj, hf_proj in attention:
          entries.append(Entry(f"{ours}/{name}/{t5x_proj}/kernel",
                               f"{theirs}.{where}.{hf_proj}.weight", True))
        entries.append(Entry(f"{ours}/{norm}/scale", f"{theirs}.{where.split('.')[0]}.layer_norm.weight",
                             False))
      for w in mlp:
        entries.append(Entry(f"{ours}/mlp/{w}/kernel",
                             f"{theirs}.{mlp_index}.DenseReluDense.{w}.weight", True))
      entries.append(Entry(f"{ours}/pre_mlp_layer_norm/scale",
                           f"{theirs}.{mlp_index}.layer_norm.weight", False))
    norm = "encoder_norm" if stack == "encoder" else "decoder_norm"
    entries.append(Entry(f"{stack}/{norm}/scale", f"{stack}.final_layer_norm.weight", False))
  if not arch.logits_via_embedding:
    entries.append(Entry("decoder/logits_dense/kernel", "lm_head.weight", True))
  return entries


# Names transformers may store besides the ones we map: copies of the embedding and an unused
# relative-position table that old checkpoints carry in the first cross-attention.
IGNORED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
           "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight")

# ---------------------------------------------------------------------------------------------
# safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
# data_offsets}} (offsets relative to the end of the header), then the tensors' bytes, row-major.

_DTYPES = {"F64": np.dtype("float64"), "F32": np.dtype("float32"), "F16": np.dtype("float16"),
           "I64": np.dtype("int64"), "I32": np.dtype("int32"), "I8": np.dtype("int8"),
           "U8": np.dtype("uint8"), "BOOL": np.dtype("bool")}
_MAX_HEADER = 100 * 1024 * 1024


def _dtype(code: str) -> np.dtype:
  if code == "BF16":
    import ml_dtypes  # pylint: disable=import-outside-toplevel  (comes with jax)
    return np.dtype(ml_dtypes.bfloat16)
  return _DTYPES[code]


def _code(dtype: np.dtype) -> str:
  if dtype.name == "bfloat16":
    return "BF16"
  for code, known in _DTYPES.items():
    if known == dtype:
      return code
  raise ValueError(f"safetensors has no dtype for {dtype}")


class TensorInfo(NamedTuple):
  """Where one tensor of a safetensors file is: dtype, shape and absolute byte offset."""
  dtype: np.dtype
  shape: Tuple[int, ...]
  start: int


class SafetensorsFile:
  """Reads a safetensors file (local or gs://) one tensor, or one row range, at a time."""

  def __init__(self, path: str):
    self.path = path
    with paths.open_file(path, "rb") as f:
      head = f.read(8)
      if len(head) < 8:
        raise HFFormatError(f"{path} is damaged: shorter than a safetensors header.")
      (length,) = struct.unpack("<Q", head)
      if length > _MAX_HEADER:
        raise HFFormatError(f"{path} is damaged: not a safetensors file (header of {length} bytes).")
      raw = f.read(length)
    try:
      header = json.loads(raw)
    except ValueError:
      raise HFFormatError(f"{path} is damaged: its safetensors header is not JSON.") from None
    self.metadata = header.pop("__metadata__", None) or {}
    self.tensors: Dict[str, TensorInfo] = {}
    for name, info in header.items():
      try:
        dtype, shape = _dtype(info["dtype"]), tuple(int(d) for d in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
      except (KeyError, TypeError, ValueError):
        raise HFFormatError(f"{path} is damaged: bad header entry for {name}.") from None
      if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise HFFormatError(f"{path} is damaged: {name} has {end - begin} bytes for shape {shape}.")
      self.tensors[name] = TensorInfo(dtype, shape, 8 + length + begin)
    self._size = 8 + length + max((int(i["data_offsets"][1]) for i in header.values()), default=0)

  def check_size(self) -> None:
    """A file shorter than its header says (a truncated copy) is damaged."""
    actual = paths.as_path(self.path).stat().length
    if actual < self._size:
      raise HFFormatError(f"{self.path} is damaged: {actual} bytes, its header needs {self._size}.")

  def read_rows(self, name: str, rows: slice = slice(None)) -> np.ndarray:
    """Rows `rows` (a step-1 slice of the first axis) of tensor `name`, as numpy."""
    info = self.tensors[name]
    if not info.shape:
      start, stop = 0, 1
    else:
      start, stop, _ = rows.indices(info.shape[0])
      stop = max(start, stop)
    row_bytes = int(np.prod(info.shape[1:], dtype=np.int64)) * info.dtype.itemsize
    with paths.open_file(self.path, "rb") as f:
      f.seek(info.start + start * row_bytes)
      data = f.read((stop - start) * row_bytes)
    if len(data) != (stop - start) * row_bytes:
      raise HFFormatError(f"{self.path} is damaged: {name} is cut short.")
    shape = (stop - start,) + info.shape[1:] if info.shape else ()
    return np.frombuffer(data, dtype=info.dtype).reshape(shape)


def write_safetensors(path: str, shapes: Mapping[str, Tuple[Tuple[int, ...], np.dtype]],
                      arrays: Iterable[Tuple[str, np.ndarray]],
                      metadata: Optional[Mapping[str, str]] = None) -> None:
  """Streams tensors into a safetensors file (local or gs://), one array in memory at a time.

  Args:
    shapes: {name: (shape, dtype)} of every tensor, in the order `arrays` yields them.
    arrays: (name, array) pairs in that order.
    metadata: the file's `__metadata__` (transformers wants {'format': 'pt'}).
  """
  header: Dict[str, Any] = {"__metadata__": dict(metadata or {})}
  offset = 0
  for name, (shape, dtype) in shapes.items():
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    header[name] = {"dtype": _code(np.dtype(dtype)), "shape": list(shape),
                    "data_offsets": [offset, offset + size]}
    offset += size
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
  names = list(shapes)
  with paths.atomic_writer(path, "wb") as f:
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for i, (name, array) in enumerate(arrays):
      shape, dtype = shapes[name]
      if i >= len(names) or names[i] != name or tuple(array.shape) != tuple(shape):
        raise ValueError(f"write_safetensors: {name} {array.shape} out of order or shape.")
      f.write(np.ascontiguousarray(array, dtype=dtype).tobytes())
