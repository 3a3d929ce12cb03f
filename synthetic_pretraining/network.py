"""The T5 encoder-decoder (1.0 and 1.1) in Flax, with the t5x example network's parameter tree.

Paths are t5x's: `token_embedder/embedding`, `encoder/relpos_bias/rel_embedding`,
`encoder/layers_0/attention/query/kernel`, `decoder/layers_0/encoder_decoder_attention/...`,
`decoder/decoder_norm/scale`, `decoder/logits_dense/kernel` (T5 1.1 only), so t5x checkpoints and
the paper's parameter groupings apply unchanged.
"""
import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from synthetic_pretraining import layers
from synthetic_pretraining import partitioning


@gin.configurable
@dataclasses.dataclass(frozen=True)
class T5Config:
  """Architecture of a T5 model (t5x's `network.T5Config` fields).

  Attributes:
    vocab_size: rows of the embedding table; None takes the configured vocabulary's size rounded
      up to a multiple of 128 (handy for CPU models on small vocabularies).
    emb_dim, num_heads, head_dim, mlp_dim, num_encoder_layers, num_decoder_layers: sizes.
    activations: ('relu',) for T5 1.0; ('gelu', 'linear') for T5 1.1's gated GELU.
    mlp_activations: t5x's name for `activations`; when given, it wins (so t5x gin files work).
    logits_via_embedding: True ties the output layer to the embedding (T5 1.0); False adds
      `decoder/logits_dense` (T5 1.1).
    dropout_rate: dropout after embeddings, attention weights, sub-blocks and the MLP hidden layer.
    dtype: activation dtype ('float32' or 'bfloat16'); parameters are always float32.
  """
  vocab_size: Optional[int] = 32128
  emb_dim: int = 512
  num_heads: int = 8
  head_dim: int = 64
  mlp_dim: int = 2048
  num_encoder_layers: int = 6
  num_decoder_layers: int = 6
  activations: Sequence[str] = ("relu",)
  logits_via_embedding: bool = True
  dropout_rate: float = 0.1
  dtype: str = "float32"
  relpos_num_buckets: int = 32
  relpos_max_distance: int = 128
  mlp_activations: Optional[Sequence[str]] = None

  def __post_init__(self):
    if self.mlp_activations is not None:
      object.__setattr__(self, "activations", tuple(self.mlp_activations))


def _dropout(x, rate, deterministic):
  return nn.Dropout(rate, broadcast_dims=(-2,))(x, deterministic=deterministic)


class EncoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x, bias, *, deterministic):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    y = layers.RMSNorm(dtype=dtype, name="pre_attention_layer_norm")(x)
    y = layers.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dtype,
                                  name="attention")(y, y, bias, deterministic=deterministic)
    x = x + _dropout(y, cfg.dropout_rate, deterministic)
    y = layers.RMSNorm(dtype=dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg.mlp_dim, cfg.activations, cfg.dropout_rate, dtype,
                        name="mlp")(y, deterministic=deterministic)
    x = x + _dropout(y, cfg.dropout_rate, deterministic)
    return partitioning.with_logical_constraint(x, ("batch", "length", "embed"))


class DecoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x, encoded, self_bias, cross_bias, *, deterministic, decode=False):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    y = layers.RMSNorm(dtype=dtype, name="pre_self_attention_layer_norm")(x)
    y = layers.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dtype,
                                  name="self_attention")(
                                      y, y, self_bias, deterministic=deterministic, decode=decode)
    x = x + _dropout(y, cfg.dropout_rate, deterministic)
    y = layers.RMSNorm(dtype=dtype, name="pre_cross_attention_layer_norm")(x)
    y = layers.MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dtype,
                                  name="encoder_decoder_attention")(
                                      y, encoded, cross_bias, deterministic=deterministic,
                                      cache_projected_kv=decode)
    x = x + _dropout(y, cfg.dropout_rate, deterministic)
    y = layers.RMSNorm(dtype=dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg.mlp_dim, cfg.activations, cfg.dropout_rate, dtype,
                        name="mlp")(y, deterministic=deterministic)
    x = x + _dropout(y, cfg.dropout_rate, deterministic)
    return partitioning.with_logical_constraint(x, ("batch", "length", "embed"))


class Encoder(nn.Module):
  config: T5Config
  token_embedder: nn.Module

  @nn.compact
  def __call__(self, tokens, segment_ids=None, *, deterministic):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    valid = tokens > 0
    bias = layers.make_attention_mask(valid, valid, query_segments=segment_ids,
                                      key_segments=segment_ids)
    length = tokens.shape[1]
    bias = bias + layers.RelativePositionBiases(
        cfg.relpos_num_buckets, cfg.relpos_max_distance, cfg.num_heads, dtype,
        name="relpos_bias")(length, length, bidirectional=True)
    x = _dropout(self.token_embedder(tokens), cfg.dropout_rate, deterministic)
    x = partitioning.with_logical_constraint(x, ("batch", "length", "embed"))
    for i in range(cfg.num_encoder_layers):
      x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic=deterministic)
    x = layers.RMSNorm(dtype=dtype, name="encoder_norm")(x)
    return _dropout(x, cfg.dropout_rate, deterministic)


class Decoder(nn.Module):
  config: T5Config
  token_embedder: nn.Module

  @nn.compact
  def __call__(self, encoded, encoder_tokens, decoder_input_tokens, encoder_segment_ids=None,
               decoder_segment_ids=None, *, deterministic, decode=False, max_decode_length=None):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    relpos = layers.RelativePositionBiases(cfg.relpos_num_buckets, cfg.relpos_max_distance,
                                           cfg.num_heads, dtype, name="relpos_bias")
    encoder_valid = encoder_tokens > 0
    if decode:
      # One new token per call: its position is the decoder's step counter; it may attend to
      # every cached position up to and including itself.
      # The first call (with full-length dummy inputs) only creates the cache.
      initialised = self.has_variable("cache", "position")
      position = self.variable("cache", "position", lambda: jnp.array(0, jnp.int32))
      full = relpos(max_decode_length, max_decode_length, bidirectional=False)
      step = position.value
      self_bias = jax.lax.dynamic_slice_in_dim(full, step, 1, axis=2)
      allowed = jnp.arange(max_decode_length)[None, None, None, :] <= step
      self_bias = self_bias + jnp.where(allowed, 0.0, -1e10)
      if initialised:
        position.value = step + 1
      cross_bias = layers.make_attention_mask(jnp.ones(decoder_input_tokens.shape, bool),
                                              encoder_valid)
    else:
      length = decoder_input_tokens.shape[1]
      # Position 0 holds BOS (id 0), so validity comes from the loss targets, not the inputs:
      # padding is masked by the loss, and causality keeps real tokens from seeing it.
      valid = jnp.ones(decoder_input_tokens.shape, bool)
      self_bias = layers.make_attention_mask(valid, valid, causal=True,
                                             query_segments=decoder_segment_ids,
                                             key_segments=decoder_segment_ids)
      self_bias = self_bias + relpos(length, length, bidirectional=False)
      cross_bias = layers.make_attention_mask(valid, encoder_valid,
                                              query_segments=decoder_segment_ids,
                                              key_segments=encoder_segment_ids)
    y = _dropout(self.token_embedder(decoder_input_tokens), cfg.dropout_rate, deterministic)
    y = partitioning.with_logical_constraint(y, ("batch", "length", "embed"))
    for i in range(cfg.num_decoder_layers):
      y = DecoderLayer(cfg, name=f"layers_{i}")(y, encoded, self_bias, cross_bias,
                                                deterministic=deterministic, decode=decode)
    y = layers.RMSNorm(dtype=dtype, name="decoder_norm")(y)
    y = _dropout(y, cfg.dropout_rate, deterministic)
    if cfg.logits_via_embedding:
      # T5 1.0 ties the output layer to the embedding and rescales by 1/sqrt(emb_dim).
      logits = self.token_embedder.attend(y) / jnp.sqrt(y.shape[-1]).astype(y.dtype)
    else:
      logits = layers.Dense(features=(cfg.vocab_size,), kernel_axes=("embed", "vocab"),
                            kernel_init=layers.MLP_KERNEL_INIT, dtype=jnp.float32,
                            name="logits_dense")(y)
    return partitioning.with_logical_constraint(jnp.asarray(logits, jnp.float32),
                                                ("batch", "length", "vocab"))


class Transformer(nn.Module):
  """T5 encoder-decoder; `__call__` returns float32 logits [batch, target_length, vocab]."""
  config: T5Config

  def setup(self):
    cfg = self.config
    self.token_embedder = layers.Embed(cfg.vocab_size, cfg.emb_dim, jnp.dtype(cfg.dtype),
                                       name="token_embedder")
    self.encoder = Encoder(cfg, self.token_embedder, name="encoder")
    self.decoder = Decoder(cfg, self.token_embedder, name="decoder")

  def encode(self, encoder_input_tokens, encoder_segment_ids=None, *, deterministic=True):
    return self.encoder(encoder_input_tokens, encoder_segment_ids, deterministic=deterministic)

  def decode(self, encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids=None,
             decoder_segment_ids=None, *, deterministic=True, decode=False,
             max_decode_length=None):
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids,
                        decoder_segment_ids, deterministic=deterministic, decode=decode,
                        max_decode_length=max_decode_length)

  def __call__(self, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids=None,
               decoder_segment_ids=None, *, deterministic=True):
    encoded = self.encode(encoder_input_tokens, encoder_segment_ids, deterministic=deterministic)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids,
                       decoder_segment_ids, deterministic=deterministic)
