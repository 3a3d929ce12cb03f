"""T5's span corruption objective (Raffel et al. 2020), as a seqio preprocessor.

seqio 0.0.20 ships no span corruption (it lives in the `t5` package), so this is a small
re-implementation of T5's defaults: sequences are concatenated in groups of 128 and cut into
chunks of `tokens_length` tokens, chosen so that the corrupted input plus EOS is exactly the
inputs feature length; in each chunk round(0.15 * n) tokens in round(noise / 3) spans are noise.
The first span is never noise. Inputs keep the non-noise tokens with extra_id_0, extra_id_1, ...
in place of each noise span; targets are each sentinel followed by the span it replaced.

Noise masks are drawn from a random stream seeded by a hash of the chunk's group of sequences and
the chunk's position, so the output is a pure function of the input stream (reproducible,
checkpointable, different on every shard).
"""
import hashlib
import random
from typing import Mapping, Optional, Tuple

import numpy as np
import seqio
import tensorflow as tf

from synthetic_pretraining.data import vocabularies

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
CONCAT_BATCH = 128


def _lengths_for(tokens_length: int, density: float, mean_span: float) -> Tuple[int, int]:
  """(inputs, targets) lengths, EOS included, of a corrupted chunk of `tokens_length` tokens."""
  noise = int(round(tokens_length * density))
  spans = int(round(noise / mean_span))
  return tokens_length - noise + spans + 1, noise + spans + 1


def tokens_length_for(inputs_length: int, density: float = NOISE_DENSITY,
                      mean_span: float = MEAN_NOISE_SPAN_LENGTH) -> Tuple[int, int]:
  """The longest chunk whose corrupted input (with EOS) fits in `inputs_length`; and its targets
  length. For inputs 512 this is (568, 114), as in T5."""
  tokens_length = inputs_length - 1
  while _lengths_for(tokens_length + 1, density, mean_span)[0] <= inputs_length:
    tokens_length += 1
  return tokens_length, _lengths_for(tokens_length, density, mean_span)[1]


def noise_mask(rng: random.Random, length: int, density: float = NOISE_DENSITY,
               mean_span: float = MEAN_NOISE_SPAN_LENGTH) -> np.ndarray:
  """A boolean noise mask: alternating non-noise/noise spans of random positive lengths."""
  if length < 2:
    return np.zeros((length,), bool)
  noise = min(max(int(round(length * density)), 1), length - 1)
  spans = max(int(round(noise / mean_span)), 1)

  def segment(items: int) -> np.ndarray:
    cuts = sorted(rng.sample(range(1, items), spans - 1))
    return np.diff([0] + cuts + [items])

  lengths = np.stack([segment(length - noise), segment(noise)], axis=1).reshape(-1)
  return np.repeat(np.arange(2 * spans) % 2 == 1, lengths)


def corrupt(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """(inputs, targets) of a chunk: noise spans become sentinels vocab_size-1, vocab_size-2, ..."""
  starts = mask & ~np.concatenate([[False], mask[:-1]])
  span_number = np.cumsum(starts)
  sentinels = vocab_size - span_number
  inputs = np.where(starts, sentinels, tokens)[~mask | starts]
  nonnoise_starts = ~mask & np.concatenate([[True], mask[:-1]])
  targets = np.where(nonnoise_starts, vocab_size - np.cumsum(nonnoise_starts), tokens)
  targets = targets[mask | nonnoise_starts]
  # Targets begin with sentinel 0 (the first span is non-noise) and a final non-noise span would
  # leave a trailing sentinel, as in T5.
  return inputs.astype(np.int32), targets.astype(np.int32)


def _corrupt_group(values: np.ndarray, row_lengths: np.ndarray, tokens_length: int,
                   vocab_size: int, max_spans: int, density: float, mean_span: float):
  """Concatenates a group of sequences, cuts it into chunks and corrupts each."""
  del row_lengths
  digest = hashlib.blake2b(values.astype("<i4").tobytes(), digest_size=16).digest()
  inputs, targets = [], []
  for n, start in enumerate(range(0, len(values), tokens_length)):
    chunk = values[start:start + tokens_length]
    rng = random.Random(int.from_bytes(digest, "little") << 32 | n)
    mask = noise_mask(rng, len(chunk), density, mean_span)
    spans = int(np.sum(mask & ~np.concatenate([[False], mask[:-1]])))
    if spans > max_spans:
      raise ValueError(f"span corruption needs {spans} sentinels but the vocabulary has "
                       f"{max_spans} extra ids; use shorter inputs.")
    i, t = corrupt(chunk, mask, vocab_size)
    inputs.append(i)
    targets.append(t)
  flat = lambda arrays: np.concatenate(arrays) if arrays else np.zeros((0,), np.int32)
  return (flat(inputs), np.array([len(a) for a in inputs], np.int64),
          flat(targets), np.array([len(a) for a in targets], np.int64))


def span_corruption(dataset: tf.data.Dataset, sequence_length: Optional[Mapping[str, int]],
                    output_features: Mapping[str, seqio.Feature],
                    noise_density: float = NOISE_DENSITY,
                    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> tf.data.Dataset:
  """Turns {'targets': token ids} into span-corrupted {'inputs', 'targets'} (EOS added later).

  Needs the task feature lengths (the chunk length follows from the inputs length); without them
  it raises ValueError, which tells callers to pass `sequence_length`.
  """
  if not sequence_length or not sequence_length.get("inputs"):
    raise ValueError("span corruption needs sequence_length['inputs'] to size its chunks.")
  tokens_length, _ = tokens_length_for(int(sequence_length["inputs"]), noise_density,
                                       mean_noise_span_length)
  vocabulary = output_features["targets"].vocabulary
  vocab_size, extra_ids = vocabulary.vocab_size, vocabularies.num_sentinels(vocabulary)

  def group(batch):
    arrays = tf.numpy_function(
        lambda v, r: _corrupt_group(v, r, tokens_length, vocab_size, extra_ids, noise_density,
                                    mean_noise_span_length),
        [batch.flat_values, batch.row_lengths()], [tf.int32, tf.int64, tf.int32, tf.int64],
        stateful=False)
    for a in arrays:
      a.set_shape([None])
    return {"inputs": tf.RaggedTensor.from_row_lengths(arrays[0], arrays[1], validate=False),
            "targets": tf.RaggedTensor.from_row_lengths(arrays[2], arrays[3], validate=False)}

  sequences = dataset.map(lambda ex: tf.cast(ex["targets"], tf.int32))
  return sequences.ragged_batch(CONCAT_BATCH).map(group).unbatch()
