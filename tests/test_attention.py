"""Fused attention (`T5Config.attention_implementation`) against t5x's einsum attention.

'xla' runs `jax.nn.dot_product_attention` on any backend, so the CPU checks it equals 'einsum'
in loss and in every gradient, for T5 1.0 and 1.1 tiny, with padding and with packing, and that
greedy and beam decoding (the key/value-cache path) pick the same tokens. 'cudnn' needs a GPU.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic_pretraining import errors
from synthetic_pretraining.model import layers
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network

pytestmark = pytest.mark.unit

T5_1_0_TINY = network.T5Config(vocab_size=128, emb_dim=16, num_heads=4, head_dim=4, mlp_dim=32,
                               num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0)
T5_1_1_TINY = dataclasses.replace(T5_1_0_TINY, activations=("gelu", "linear"),
                                  logits_via_embedding=False)
# 'xla' computes the same float32 logits, softmax and products as 'einsum' but masks with a
# select instead of adding -1e10 and fuses differently, so sums associate differently. Measured
# on the CPU (jax 0.10.2 and 0.12.1): loss within 9e-8 relative; gradients within 1.7e-6 absolute
# where the largest is 5.5 (3e-7 of it), T5 1.0 and 1.1 tiny, padded and packed. The bounds
# leave room for other CPUs and XLA versions, far below any modelling difference.
LOSS_RTOL = 1e-6
RTOL, ATOL = 2e-5, 5e-6


def _padded_batch(rng):
  enc = rng.randint(2, 128, (4, 9)).astype(np.int32)
  dec = rng.randint(2, 128, (4, 6)).astype(np.int32)
  for row, (n_in, n_out) in enumerate([(9, 6), (5, 3), (2, 6), (7, 1)]):
    enc[row, n_in:] = 0
    dec[row, n_out:] = 0
  targets = dec.copy()
  inputs = np.concatenate([np.zeros((4, 1), np.int32), dec[:, :-1]], axis=1)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": inputs,
          "decoder_target_tokens": targets, "decoder_loss_weights": (targets > 0).astype(np.float32)}


def _packed_batch(rng):
  """Two or three examples per row, as seqio's packing lays them out (segments 1, 2, ...)."""
  def pack(lengths, total):
    tokens, segments, positions = (np.zeros(total, np.int32) for _ in range(3))
    start = 0
    for seg, n in enumerate(lengths, 1):
      tokens[start:start + n] = rng.randint(2, 128, n)
      segments[start:start + n] = seg
      positions[start:start + n] = np.arange(n)
      start += n
    return tokens, segments, positions

  rows = [([3, 4], [2, 3]), ([2, 2, 3], [1, 3, 2]), ([8], [6])]
  enc, dec = [pack(i, 10) for i, _ in rows], [pack(t, 8) for _, t in rows]
  targets = np.stack([d[0] for d in dec])
  inputs = np.where(np.stack([d[2] for d in dec]) == 0, 0, np.roll(targets, 1, axis=1))
  return {"encoder_input_tokens": np.stack([e[0] for e in enc]),
          "encoder_segment_ids": np.stack([e[1] for e in enc]),
          "encoder_positions": np.stack([e[2] for e in enc]),
          "decoder_input_tokens": inputs.astype(np.int32), "decoder_target_tokens": targets,
          "decoder_segment_ids": np.stack([d[1] for d in dec]),
          "decoder_positions": np.stack([d[2] for d in dec]),
          "decoder_loss_weights": (targets > 0).astype(np.float32)}


BATCHES = {"padded": _padded_batch, "packed": _packed_batch}


def _loss_and_grads(config, params, batch):
  model = models.EncoderDecoderModel(config)
  fn = lambda p: model.loss_and_metrics(p, batch)[0]  # noqa: E731
  return jax.jit(jax.value_and_grad(fn))(params)


@pytest.mark.parametrize("config", [T5_1_0_TINY, T5_1_1_TINY], ids=["t5_1_0", "t5_1_1"])
@pytest.mark.parametrize("layout", sorted(BATCHES))
def test_xla_equals_einsum_in_loss_and_gradients(config, layout):
  batch = BATCHES[layout](np.random.RandomState(0))
  params = models.EncoderDecoderModel(config).init_params(jax.random.key(0))
  loss, grads = _loss_and_grads(config, params, batch)
  fused = dataclasses.replace(config, attention_implementation="xla")
  fused_loss, fused_grads = _loss_and_grads(fused, params, batch)
  np.testing.assert_allclose(fused_loss, loss, rtol=LOSS_RTOL)
  flat, fused_flat = (jax.tree_util.tree_flatten_with_path(g)[0] for g in (grads, fused_grads))
  for (path, g), (_, f) in zip(flat, fused_flat):
    np.testing.assert_allclose(f, g, rtol=RTOL, atol=ATOL, err_msg=jax.tree_util.keystr(path))
  # The relative-position tables get a real gradient through the fused call's bias.
  assert float(jnp.abs(fused_grads["encoder"]["relpos_bias"]["rel_embedding"]).max()) > 0
  assert float(jnp.abs(fused_grads["decoder"]["relpos_bias"]["rel_embedding"]).max()) > 0


@pytest.mark.parametrize("num_decodes", [1, 3], ids=["greedy", "beam3"])
def test_xla_decodes_like_einsum(num_decodes):
  batch = _padded_batch(np.random.RandomState(1))
  model = models.EncoderDecoderModel(T5_1_1_TINY)
  fused = models.EncoderDecoderModel(dataclasses.replace(T5_1_1_TINY,
                                                         attention_implementation="xla"))
  params = model.init_params(jax.random.key(1))
  predict = lambda m: jax.jit(  # noqa: E731
      lambda p, b: m.predict_batch(p, b, max_decode_length=6, num_decodes=num_decodes))(
          params, {"encoder_input_tokens": batch["encoder_input_tokens"]})
  np.testing.assert_array_equal(predict(fused), predict(model))


def test_fused_attention_refuses_attention_dropout():
  with pytest.raises(errors.UsageError, match="attention_dropout_rate") as raised:
    dataclasses.replace(T5_1_0_TINY, dropout_rate=0.1, attention_implementation="xla")
  assert "attention_implementation='xla'" in errors.one_line(raised.value)
  # Dropout elsewhere is fine once the attention weights' own rate is 0.
  config = dataclasses.replace(T5_1_0_TINY, dropout_rate=0.1, attention_dropout_rate=0.0,
                               attention_implementation="xla")
  assert config.attention_weight_dropout == 0.0
  with pytest.raises(errors.UsageError, match="expected one of"):
    dataclasses.replace(T5_1_0_TINY, attention_implementation="flash")
  with pytest.raises(errors.UsageError, match="bfloat16"):
    dataclasses.replace(T5_1_0_TINY, attention_implementation="cudnn")


def test_default_attention_is_einsum_with_one_additive_bias():
  assert network.T5Config().attention_implementation == "einsum"
  valid = jnp.array([[True, True, False]])
  bias = layers.attention_bias("einsum", None, valid, valid)
  assert bias.shape == (1, 1, 3, 3) and bias.dtype == jnp.float32
  fused = layers.attention_bias("cudnn", None, valid, valid, causal=True)
  assert fused.mask is None and fused.causal and fused.key_lengths.tolist() == [2]


def _gpu():
  try:
    return jax.devices("gpu")
  except RuntimeError:
    return []


@pytest.mark.skipif(not _gpu(), reason="cuDNN attention needs a GPU")
def test_cudnn_equals_einsum_in_bfloat16():
  config = dataclasses.replace(T5_1_1_TINY, dtype="bfloat16", num_heads=4, head_dim=16)
  batch = _padded_batch(np.random.RandomState(0))
  params = models.EncoderDecoderModel(config).init_params(jax.random.key(0))
  with jax.default_device(_gpu()[0]):
    loss, grads = _loss_and_grads(config, params, batch)
    fused_loss, fused_grads = _loss_and_grads(
        dataclasses.replace(config, attention_implementation="cudnn"), params, batch)
  # bfloat16 activations: agreement to bfloat16 rounding of the loss.
  np.testing.assert_allclose(fused_loss, loss, rtol=2e-2)
  for g, f in zip(jax.tree.leaves(grads), jax.tree.leaves(fused_grads)):
    np.testing.assert_allclose(np.asarray(f, np.float32), np.asarray(g, np.float32), rtol=0.1,
                               atol=2e-2 * float(np.abs(np.asarray(g, np.float32)).max()) + 1e-6)
