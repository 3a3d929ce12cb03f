"""A small learnable task for trainer tests: reverse a short random token sequence.

Every example is a pure function of (seed, split, index), built from tf ops alone, so its
pipeline is checkpointable and identical across runs.
"""
import functools

import seqio
import tensorflow as tf

from synthetic_pretraining.synthetic import registry

TOY_TASK = "toy_reverse"
# The same task with 97 validation examples: a split no number of processes > 1 divides evenly.
UNEVEN_TASK = "toy_reverse_97"
_SPLIT_OFFSET = {"train": 0, "validation": 1 << 30}


def _example(index, seed, split):
  key = tf.stack([tf.cast(seed, tf.int64), index + _SPLIT_OFFSET[split]])
  length = tf.random.stateless_uniform([], key, minval=3, maxval=9, dtype=tf.int32)
  tokens = tf.random.stateless_uniform([length], key + 1, minval=3, maxval=40, dtype=tf.int32)
  return {"inputs": tokens, "targets": tf.reverse(tokens, [0])}


def _dataset_fn(split, shuffle_files, seed=None, num_examples=None, validation_size=256):
  del shuffle_files
  count = validation_size if split == "validation" else num_examples
  indices = tf.data.Dataset.range(count) if count else tf.data.Dataset.range(2**62)
  return indices.map(functools.partial(_example, seed=0 if seed is None else seed, split=split))


def register(name: str = TOY_TASK, validation_size: int = 256) -> str:
  """Registers the toy task, following the configured vocabulary (its ids fit any of ours)."""

  def add(vocabulary):
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(
            functools.partial(_dataset_fn, validation_size=validation_size),
            splits=("train", "validation")),
        preprocessors=[seqio.preprocessors.append_eos_after_trim],
        output_features={k: seqio.Feature(vocabulary, add_eos=True) for k in ("inputs", "targets")})

  registry.follow_vocabulary(f"toy:{name}", add)
  return name


register()
register(UNEVEN_TASK, validation_size=97)
