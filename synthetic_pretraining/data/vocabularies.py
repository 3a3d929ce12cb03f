"""Vocabularies: the `VOCABULARY` macro that t5x's gin files bind, and the ones we ship.

Tasks and model read the vocabulary bound to the gin macro `VOCABULARY`, as t5x's model files bind
it (`VOCABULARY = @seqio.SentencePieceVocabulary()` in t5x's `t5_1_0/base.gin`), so the same task
module serves our binaries and t5x's. Our model files bind it to `named_vocabulary()`; with no
binding at all, `named_vocabulary()`'s own default (UTF-8 bytes, offline) is used.
"""
import os
import re
from typing import Optional

import gin
import seqio

from synthetic_pretraining import errors
from synthetic_pretraining import resources

T5_SENTENCEPIECE_MODEL = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
# Shipped with the package (scripts/train_vocabulary.py): 4,000 pieces in T5's layout.
CPU_SENTENCEPIECE_MODEL = resources.path("data/vocab/cpu_sp.model")
NUM_EXTRA_IDS = 100


VOCABULARY_MACRO = "VOCABULARY"
# A sentinel piece: seqio names the ones it appends "▁<extra_id_N>"; T5's cc_all.32000.100extra
# model (which t5x's gin files use, with extra_ids=0) has them built in.
_SENTINEL_PIECE = re.compile(r"^▁?<extra_id_(\d+)>$")


@gin.configurable
def named_vocabulary(name: str = "byte", sentencepiece_model_file: Optional[str] = None,
                     extra_ids: int = NUM_EXTRA_IDS) -> seqio.Vocabulary:
  """One of the vocabularies we know by name (our model files bind `VOCABULARY` to this).

  Args:
    name: 'byte' (offline default: UTF-8 bytes, ids 3..258), 'cpu_sp' (the SentencePiece model
      shipped in data/vocab, the CPU configs' vocabulary), 'sentencepiece' (a model file in T5's
      layout: pad 0, eos 1, unk 2) or 't5' (T5's own cc_all.32000 model, on gs://).
    sentencepiece_model_file: the model file for name='sentencepiece'.
    extra_ids: sentinel ids appended at the top of the vocabulary (extra_id_0 is the highest).
  """
  if name == "byte":
    return seqio.ByteVocabulary(extra_ids=extra_ids)
  if name == "cpu_sp":
    if not os.path.exists(CPU_SENTENCEPIECE_MODEL):
      raise errors.MissingInputError(f"{CPU_SENTENCEPIECE_MODEL} is missing: the vocabulary ships "
                              "with the package; reinstall it (pip install .).")
    return seqio.SentencePieceVocabulary(CPU_SENTENCEPIECE_MODEL, extra_ids=extra_ids)
  if name == "t5":
    return seqio.SentencePieceVocabulary(T5_SENTENCEPIECE_MODEL, extra_ids=extra_ids)
  if name == "sentencepiece":
    if not sentencepiece_model_file:
      raise ValueError("named_vocabulary(name='sentencepiece') needs sentencepiece_model_file.")
    return seqio.SentencePieceVocabulary(sentencepiece_model_file, extra_ids=extra_ids)
  raise ValueError(f"Unknown vocabulary name {name!r}; expected 'byte', 'cpu_sp', 'sentencepiece' or 't5'.")


def configured_vocabulary() -> seqio.Vocabulary:
  """The vocabulary bound to the `VOCABULARY` macro, else `named_vocabulary()`.

  Every call evaluates the binding afresh (seqio vocabularies load their model lazily, so this
  reads no file); vocabularies compare equal by their settings.

  Raises:
    ValueError: `VOCABULARY` is bound to something that is not a seqio vocabulary.
  """
  try:
    value = gin.query_parameter(f"%{VOCABULARY_MACRO}")
  except ValueError:  # not bound
    return named_vocabulary()
  if isinstance(value, gin.config.ConfigurableReference) and value.evaluate:
    value = value.scoped_configurable_fn()
  if not isinstance(value, seqio.Vocabulary):
    raise ValueError(f"Gin macro {VOCABULARY_MACRO} must give a seqio vocabulary, e.g. "
                     f"`{VOCABULARY_MACRO} = @vocabularies.named_vocabulary()`; got {value!r}.")
  return value


def num_sentinels(vocabulary: seqio.Vocabulary) -> int:
  """Sentinel ids at the top of the vocabulary (extra_id_0 is the last id).

  They are seqio's `extra_ids`, or, for a SentencePiece model with sentinel pieces of its own
  (T5's cc_all.32000.100extra, used by t5x with extra_ids=0), the run of `<extra_id_k>` pieces
  that ends the model. Either way T5's vocabulary has 100, ids 32000..32099.
  """
  tokenizer = getattr(vocabulary, "tokenizer", None)
  if vocabulary.extra_ids or tokenizer is None:
    return vocabulary.extra_ids or 0
  count, size = 0, tokenizer.get_piece_size()
  while count < size:
    match = _SENTINEL_PIECE.match(tokenizer.id_to_piece(size - 1 - count))
    if not match or int(match.group(1)) != count:
      break
    count += 1
  return count


def sentinel_id(vocabulary: seqio.Vocabulary, k: int) -> int:
  """Id of `extra_id_k`: seqio appends sentinels in reverse, so extra_id_0 is the last id."""
  if not 0 <= k < num_sentinels(vocabulary):
    raise ValueError(f"extra_id_{k} does not exist: the vocabulary has {num_sentinels(vocabulary)} "
                     "extra ids.")
  return vocabulary.vocab_size - 1 - k
