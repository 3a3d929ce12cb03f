"""Vocabularies, chosen in gin and resolved lazily.

SeqIO tasks are registered at import time, usually before gin has parsed the command line. Tasks
therefore hold a `ConfiguredVocabulary`, which looks up the gin-configured vocabulary on first use,
so `--gin.vocabularies.default_vocabulary.name=...` takes effect whatever the import order.
"""
import os
from typing import Optional

import gin
import seqio

from synthetic_pretraining import resources

T5_SENTENCEPIECE_MODEL = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
# Shipped with the package (scripts/train_vocabulary.py): 4,000 pieces in T5's layout.
CPU_SENTENCEPIECE_MODEL = resources.path("data/vocab/cpu_sp.model")
NUM_EXTRA_IDS = 100


@gin.configurable
def default_vocabulary(name: str = "byte", sentencepiece_model_file: Optional[str] = None,
                       extra_ids: int = NUM_EXTRA_IDS) -> seqio.Vocabulary:
  """Returns the vocabulary every registered task uses.

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
      raise FileNotFoundError(f"{CPU_SENTENCEPIECE_MODEL} is missing: the vocabulary ships "
                              "with the package; reinstall it (pip install .).")
    return seqio.SentencePieceVocabulary(CPU_SENTENCEPIECE_MODEL, extra_ids=extra_ids)
  if name == "t5":
    return seqio.SentencePieceVocabulary(T5_SENTENCEPIECE_MODEL, extra_ids=extra_ids)
  if name == "sentencepiece":
    if not sentencepiece_model_file:
      raise ValueError("default_vocabulary(name='sentencepiece') needs sentencepiece_model_file.")
    return seqio.SentencePieceVocabulary(sentencepiece_model_file, extra_ids=extra_ids)
  raise ValueError(f"Unknown vocabulary name {name!r}; expected 'byte', 'cpu_sp', 'sentencepiece' or 't5'.")


def sentinel_id(vocabulary: seqio.Vocabulary, k: int) -> int:
  """Id of `extra_id_k`: seqio appends sentinels in reverse, so extra_id_0 is the last id."""
  if not 0 <= k < vocabulary.extra_ids:
    raise ValueError(f"extra_id_{k} does not exist: the vocabulary has {vocabulary.extra_ids} extra ids.")
  return vocabulary.vocab_size - 1 - k


class ConfiguredVocabulary(seqio.Vocabulary):
  """Delegates to `default_vocabulary()` as configured by gin when first used."""

  def __init__(self):  # pylint: disable=super-init-not-called
    self._resolved = None

  @property
  def resolved(self) -> seqio.Vocabulary:
    if self._resolved is None:
      self._resolved = default_vocabulary()
    return self._resolved

  def reset(self):
    """Forgets the resolved vocabulary (after gin bindings change, e.g. in tests)."""
    self._resolved = None

  # Everything seqio asks of a vocabulary goes to the resolved one.
  @property
  def eos_id(self):
    return self.resolved.eos_id

  @property
  def pad_id(self):
    return self.resolved.pad_id

  @property
  def unk_id(self):
    return self.resolved.unk_id

  @property
  def bos_id(self):
    return self.resolved.bos_id

  @property
  def extra_ids(self):
    return self.resolved.extra_ids

  @property
  def vocab_size(self):
    return self.resolved.vocab_size

  @property
  def _base_vocab_size(self):
    return self.resolved._base_vocab_size  # pylint: disable=protected-access

  def encode(self, s):
    return self.resolved.encode(s)

  def decode(self, ids):
    return self.resolved.decode(ids)

  def encode_tf(self, s):
    return self.resolved.encode_tf(s)

  def decode_tf(self, ids):
    return self.resolved.decode_tf(ids)

  def _encode(self, s):
    return self.resolved._encode(s)  # pylint: disable=protected-access

  def _decode(self, ids):
    return self.resolved._decode(ids)  # pylint: disable=protected-access

  def _encode_tf(self, s):
    return self.resolved._encode_tf(s)  # pylint: disable=protected-access

  def _decode_tf(self, ids):
    return self.resolved._decode_tf(ids)  # pylint: disable=protected-access

  def __eq__(self, other):
    if isinstance(other, ConfiguredVocabulary):
      other = other.resolved
    return self.resolved == other

  def __hash__(self):
    return id(self)


# The single instance all registered tasks share.
VOCABULARY = ConfiguredVocabulary()
