"""Dropout masks broadcast over the same axes as t5x's example network."""
import pytest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from synthetic_pretraining.model import layers
from synthetic_pretraining.model import network

pytestmark = pytest.mark.unit

TINY = dict(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32, num_encoder_layers=1,
            num_decoder_layers=1, dropout_rate=0.5)


def test_attention_weight_dropout_shares_one_mask_across_queries():
  weights = jnp.ones((2, 3, 5, 7), jnp.float32)  # [batch, heads, q, k]
  dropped = np.asarray(layers.dropout_attention_weights(weights, 0.5, jax.random.key(0)))
  assert set(np.unique(dropped)) == {0.0, 2.0}  # kept weights are scaled by 1 / keep_prob
  # The same keys are dropped for every query of a (batch, head) ...
  np.testing.assert_array_equal(dropped, np.broadcast_to(dropped[:, :, :1, :], dropped.shape))
  # ... but the mask differs across keys, heads and batch rows.
  mask = dropped[:, :, 0, :]
  assert len({tuple(row) for row in mask.reshape(-1, 7)}) > 1
  assert 0 < (mask == 0).mean() < 1


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_network_drops_attention_weights_with_the_shared_mask(monkeypatch):
  seen = []
  original = layers.dropout_attention_weights

  def recording(weights, rate, rng):
    out = original(weights, rate, rng)
    seen.append(np.asarray(out == 0))
    return out

  monkeypatch.setattr(layers, "dropout_attention_weights", recording)
  module = network.Transformer(network.T5Config(**TINY))
  inputs = jnp.array([[5, 6, 7, 8, 9, 1]])
  targets = jnp.array([[0, 4, 5, 6]])
  params = module.init({"params": jax.random.key(0)}, inputs, targets, deterministic=True)
  module.apply(params, inputs, targets, deterministic=False, rngs={"dropout": jax.random.key(1)})
  # Encoder self-attention, decoder self-attention, decoder cross-attention.
  assert len(seen) == 3
  no_padding = np.ones((4, 6), bool)
  visible = [np.ones((6, 6), bool), np.tril(np.ones((4, 4), bool)), no_padding]
  for zero, allowed in zip(seen, visible):
    # A zero weight on a visible key is a dropped one; a key is dropped for all queries or none.
    assert zero[..., allowed].any()
    for b, h, k in np.ndindex(zero.shape[0], zero.shape[1], zero.shape[3]):
      column = zero[b, h, allowed[:, k], k]
      assert column.all() or not column.any(), (b, h, k, column)


def test_dropout_layers_broadcast_where_t5x_broadcasts():
  calls = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
      calls.append(("/".join(context.module.path), context.module.broadcast_dims))
    return next_fun(*args, **kwargs)

  module = network.Transformer(network.T5Config(**TINY))
  inputs, targets = jnp.array([[5, 6, 7, 1]]), jnp.array([[0, 4, 5]])
  params = module.init({"params": jax.random.key(0)}, inputs, targets, deterministic=True)
  with nn.intercept_methods(record):
    module.apply(params, inputs, targets, deterministic=False, rngs={"dropout": jax.random.key(1)})
  per_element = [path for path, dims in calls if tuple(dims) == ()]
  broadcast = [path for path, dims in calls if tuple(dims) == (-2,)]
  # t5x: the encoder's final dropout is per element; all others (embeddings, residual branches,
  # the MLP hidden layer, the decoder's final dropout) share one mask across positions.
  assert len(per_element) == 1 and per_element[0].startswith("encoder/")
  embeddings, encoder_layer, decoder_layer, decoder_final = 2, 3, 4, 1
  assert len(broadcast) == len(calls) - 1 == embeddings + encoder_layer + decoder_layer + decoder_final
