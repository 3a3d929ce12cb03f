"""Writes parameters with t5x's names as a transformers T5 directory (local or gs://).

    <output_dir>/model.safetensors       the weights under transformers' names (numpy, no torch)
    <output_dir>/spiece.model            the vocabulary's SentencePiece model, when it has one
    <output_dir>/tokenizer_config.json   T5Tokenizer (SentencePiece) or ByT5Tokenizer (bytes)
    <output_dir>/special_tokens_map.json
    <output_dir>/config.json             written last: a directory with it is a finished export

`transformers.T5ForConditionalGeneration.from_pretrained(output_dir)` loads it with no missing,
unexpected or mismatched key, and `AutoTokenizer.from_pretrained(output_dir)` gives the ids our
vocabulary gives. The tensors are streamed into the file one at a time.
"""
import json
from typing import Any, Callable, Optional

import numpy as np

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing import hf_format

SPIECE = "spiece.model"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS = "special_tokens_map.json"


def check_output(output_dir: paths.PathLike) -> None:
  """`output_dir` is new or an empty directory that can be written (an export is never mixed
  into a folder holding other files, such as a run directory or an earlier export)."""
  paths.check_writable_dir(output_dir, "--output_dir")
  output_dir = paths.as_str(output_dir).rstrip("/")
  if not paths.isdir(output_dir):
    return
  held = sorted(paths.listdir(output_dir))
  if held:
    raise errors.OutputExistsError(
        f"--output_dir={output_dir} is not empty (it holds {errors.listing(held, 5)}); choose a "
        "new or empty directory.")


def write_tokenizer(output_dir: str, vocabulary: Any) -> Optional[str]:
  """The tokenizer files of a seqio vocabulary; returns the tokenizer class (None: not written).

  A SentencePiece vocabulary (T5's layout: pad 0, eos 1, unk 2, sentinels at the top) becomes a
  T5Tokenizer with its `extra_ids`; a ByteVocabulary becomes a ByT5Tokenizer.
  """
  extra_ids = int(getattr(vocabulary, "extra_ids", getattr(vocabulary, "_extra_ids", 0)) or 0)
  specials = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
  model_file = getattr(vocabulary, "sentencepiece_model_file", None)
  if model_file:
    paths.write_atomic(paths.join(output_dir, SPIECE), paths.read_bytes(model_file))
    tokenizer_class = "T5Tokenizer"
  elif type(vocabulary).__name__ == "ByteVocabulary":
    tokenizer_class = "ByT5Tokenizer"
  else:
    return None
  sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
  config = dict(specials, tokenizer_class=tokenizer_class, extra_ids=extra_ids,
                additional_special_tokens=sentinels, model_max_length=512)
  paths.write_atomic(paths.join(output_dir, TOKENIZER_CONFIG), json.dumps(config, indent=1) + "\n")
  paths.write_atomic(paths.join(output_dir, SPECIAL_TOKENS),
                     json.dumps(dict(specials, additional_special_tokens=sentinels), indent=1) + "\n")
  return tokenizer_class


def write(output_dir: paths.PathLike, arch: hf_format.Architecture,
          get: Callable[[str], np.ndarray], *, vocabulary: Any = None,
          dropout_rate: float = 0.1, dtype: Optional[np.dtype] = None) -> str:
  """Writes a transformers T5 directory; returns its path.

  Args:
    output_dir: local or gs:// directory, new or empty (`check_output`).
    arch: the model's architecture (`hf_format.Architecture`).
    get: `get(t5x_name)` -> the parameter as a host array (called once per parameter, in order,
      so a caller may read each from its checkpoint only when asked).
    vocabulary: the seqio vocabulary whose tokenizer files to write (None: none).
    dropout_rate: recorded in config.json (transformers uses it when finetuning).
    dtype: the stored dtype (default: each parameter's own).
  """
  output_dir = paths.as_str(output_dir).rstrip("/")
  check_output(output_dir)
  paths.makedirs(output_dir)
  config = hf_format.config_for(arch, dropout_rate)  # refuses activations transformers lacks
  entries = hf_format.name_map(arch)
  shapes, cache = {}, {}
  first = entries[0]
  # Shapes come from the architecture; the first array fixes the default dtype.
  cache[first.t5x] = np.asarray(get(first.t5x))
  stored_dtype = np.dtype(dtype) if dtype is not None else cache[first.t5x].dtype
  inner = arch.num_heads * arch.head_dim
  for entry in entries:
    shapes[entry.hf] = (_hf_shape(entry, arch, inner), stored_dtype)

  def arrays():
    for entry in entries:
      value = cache.pop(entry.t5x) if entry.t5x in cache else np.asarray(get(entry.t5x))
      yield entry.hf, (value.T if entry.transpose else value).astype(stored_dtype, copy=False)

  hf_format.write_safetensors(paths.join(output_dir, hf_format.SAFETENSORS), shapes, arrays(),
                              metadata={"format": "pt"})
  if vocabulary is not None:
    write_tokenizer(output_dir, vocabulary)
  paths.write_atomic(paths.join(output_dir, hf_format.CONFIG),
                     json.dumps(config, indent=1, sort_keys=True) + "\n")
  return output_dir


def _hf_shape(entry: hf_format.Entry, arch: hf_format.Architecture, inner: int):
  """transformers' shape of one mapped tensor, from the architecture alone."""
  name = entry.t5x
  if name == "token_embedder/embedding":
    return (arch.vocab_size, arch.emb_dim)
  if name.endswith("rel_embedding"):
    return (arch.relpos_num_buckets, arch.num_heads)
  if name.endswith("/scale"):
    return (arch.emb_dim,)
  if name == "decoder/logits_dense/kernel":
    return (arch.vocab_size, arch.emb_dim)
  if "/mlp/" in name:
    return (arch.emb_dim, arch.mlp_dim) if name.endswith("wo/kernel") else (arch.mlp_dim,
                                                                             arch.emb_dim)
  return (arch.emb_dim, inner) if name.endswith("out/kernel") else (inner, arch.emb_dim)


def architecture_of(model_config: Any) -> hf_format.Architecture:
  """The `hf_format.Architecture` of our `network.T5Config` (vocab_size already resolved)."""
  return hf_format.Architecture(**{f: getattr(model_config, f)
                                   for f in hf_format.Architecture._fields})
