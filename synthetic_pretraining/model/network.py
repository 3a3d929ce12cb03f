"""The T5 encoder-decoder (1.0 and 1.1) in Flax, with the t5x example network's parameter tree.

Paths are t5x's: `token_embedder/embedding`, `encoder/relpos_bias/rel_embedding`,
`encoder/layers_0/attention/query/kernel`, `decoder/layers_0/encoder_decoder_attention/...`,
`decoder/decoder_norm/scale`, `decoder/logits_dense/kernel` (T5 1.1 only), so t5x checkpoints and
the paper's parameter groupings apply unchanged.

`DecoderOnlyTransformer` is a decoder-only language model (causal or prefix LM) of the same
`T5Config`, with t5x's decoder-only parameter tree (`decoder/token_embedder/embedding`,
`decoder/layers_0/self_attention/query/kernel`, ...; no `encoder/`, no cross-attention).
"""
import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np

from synthetic_pretraining import errors
from synthetic_pretraining.model import layers
from synthetic_pretraining.model import partitioning


# Named activation-checkpointing policies: what each layer keeps for the backward pass.
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


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
    attention_dropout_rate: dropout on the attention weights alone; None (the default) takes
      `dropout_rate`, as t5x does. The fused attentions need it to be 0.
    dtype: activation dtype ('float32' or 'bfloat16'); parameters are always float32.
    remat_policy: activation checkpointing of each encoder/decoder layer: 'none' keeps every
      activation for the backward pass; 'full' recomputes the whole layer; 'dots_saveable' and
      'dots_with_no_batch_dims_saveable' keep (some) matmul outputs and recompute the rest
      (`jax.checkpoint_policies`). Same numbers, less memory, more FLOPs.
    scan_layers: run the layers of each stack as one `lax.scan` (constant compile time in depth).
      Parameters keep t5x's per-layer paths (`encoder/layers_0/...`): the scan runs over a
      stacked view built inside the step, so checkpoints need no conversion. Decoding keeps the
      layer loop. See `_scan_layers` for what does and does not stay equal.
    attention_implementation: 'einsum' (default: einsum + float32 softmax on one additive bias,
      t5x's), 'xla' or 'cudnn' (`jax.nn.dot_product_attention` with T5's relative-position bias
      kept [1, heads, q, k], padding/packing masks and causal decoder attention; encoder, decoder
      and cross attention, training and decoding). 'cudnn' is cuDNN's fused flash attention: a
      GPU and dtype 'bfloat16' only. Neither fused one has attention-weight dropout, so they need
      `attention_dropout_rate` (or `dropout_rate`) 0; 'xla' equals 'einsum' to float32 rounding
      (tests/test_attention.py).
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
  remat_policy: str = "none"
  scan_layers: bool = False
  attention_implementation: str = "einsum"
  attention_dropout_rate: Optional[float] = None

  def __post_init__(self):
    if self.mlp_activations is not None:
      object.__setattr__(self, "activations", tuple(self.mlp_activations))
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"T5Config.remat_policy={self.remat_policy!r}; expected one of "
                       f"{sorted(REMAT_POLICIES)}.")
    impl = self.attention_implementation
    if impl not in layers.ATTENTION_IMPLEMENTATIONS:
      raise errors.UsageError(f"T5Config.attention_implementation={impl!r}; expected one of "
                              f"{', '.join(map(repr, layers.ATTENTION_IMPLEMENTATIONS))}.")
    if impl != "einsum" and self.attention_weight_dropout > 0:
      raise errors.UsageError(
          f"T5Config.attention_implementation={impl!r} has no attention-weight dropout, but it "
          f"would be {self.attention_weight_dropout}: set T5Config.attention_dropout_rate = 0.0 "
          f"(or DROPOUT_RATE = 0.0), or use attention_implementation='einsum'.")
    if impl == "cudnn" and jnp.dtype(self.dtype) not in (jnp.bfloat16, jnp.float16):
      raise errors.UsageError(
          f"T5Config.attention_implementation='cudnn' needs dtype 'bfloat16' (cuDNN's fused "
          f"attention has no float32), got dtype={self.dtype!r}; use 'xla' or 'einsum' in float32.")

  @property
  def attention_weight_dropout(self) -> float:
    """The dropout rate on attention weights (`attention_dropout_rate`, else `dropout_rate`)."""
    if self.attention_dropout_rate is None:
      return self.dropout_rate
    return self.attention_dropout_rate

  def attention(self, name: str) -> "layers.MultiHeadAttention":
    """An unbound attention sub-layer of this configuration named `name` (t5x's names)."""
    return layers.MultiHeadAttention(self.num_heads, self.head_dim, self.attention_weight_dropout,
                                     jnp.dtype(self.dtype), self.attention_implementation,
                                     name=name)


def _dropout(x, rate, deterministic):
  """Dropout with one mask for all positions of a sequence (t5x's `broadcast_dims=(-2,)`)."""
  return nn.Dropout(rate, broadcast_dims=(-2,))(x, deterministic=deterministic)


def _pre_norm_residual(cfg, x, norm_name: str, sublayer, deterministic):
  """x + dropout(sublayer(RMSNorm(x))): one pre-norm residual sub-block, built in the calling
  module's scope (the norm named `norm_name`, t5x's names)."""
  y = layers.RMSNorm(dtype=jnp.dtype(cfg.dtype), name=norm_name)(x)
  return x + _dropout(sublayer(y), cfg.dropout_rate, deterministic)


def _mlp_residual_out(cfg, x, deterministic):
  """The last sub-block of every layer (`pre_mlp_layer_norm`, `mlp`) and the layer's output
  sharding constraint."""
  mlp = lambda y: layers.MlpBlock(cfg.mlp_dim, cfg.activations, cfg.dropout_rate,  # noqa: E731
                                  jnp.dtype(cfg.dtype), name="mlp")(y, deterministic=deterministic)
  x = _pre_norm_residual(cfg, x, "pre_mlp_layer_norm", mlp, deterministic)
  return partitioning.with_logical_constraint(x, ("batch", "length", "embed"))


def _self_attention_then_mlp(cfg, x, attention_name: str, attend, deterministic):
  """A pre-norm residual layer of self-attention then MLP, built in the calling module's scope
  (t5x's names: `pre_<attention_name>_layer_norm`, `<attention_name>`, `pre_mlp_layer_norm`,
  `mlp`); `attend(attention_module, normed_x)` calls the attention with the caller's arguments."""
  x = _pre_norm_residual(cfg, x, f"pre_{attention_name}_layer_norm",
                         lambda y: attend(cfg.attention(attention_name), y), deterministic)
  return _mlp_residual_out(cfg, x, deterministic)


class EncoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x, bias, deterministic):
    return _self_attention_then_mlp(
        self.config, x, "attention",
        lambda attend, y: attend(y, y, bias, deterministic=deterministic), deterministic)


class DecoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x, encoded, self_bias, cross_bias, deterministic, decode=False):
    cfg = self.config
    x = _pre_norm_residual(
        cfg, x, "pre_self_attention_layer_norm",
        lambda y: cfg.attention("self_attention")(y, y, self_bias, deterministic=deterministic,
                                                  decode=decode), deterministic)
    x = _pre_norm_residual(
        cfg, x, "pre_cross_attention_layer_norm",
        lambda y: cfg.attention("encoder_decoder_attention")(
            y, encoded, cross_bias, deterministic=deterministic, cache_projected_kv=decode),
        deterministic)
    return _mlp_residual_out(cfg, x, deterministic)


def _maybe_remat(layer_cls, policy: str, static_argnums):
  """`layer_cls` under `nn.remat` with the named policy (same parameter paths and dropout)."""
  if REMAT_POLICIES[policy] is None:
    return layer_cls
  return nn.remat(layer_cls, policy=REMAT_POLICIES[policy], static_argnums=static_argnums)


def _scan_layers(stack: nn.Module, layer_cls, num_layers: int, x, args):
  """Applies `num_layers` layers of `layer_cls` to `x` as one `lax.scan`.

  The stack's parameters stay stored per layer under t5x's names (`layers_0`, `layers_1`, ...);
  they are stacked along a new leading axis here, inside the step, and the scan body applies one
  unbound layer to its slice. So checkpoints, t5x interop and statistics-only init see the same
  tree with or without scan, and the cost is one stacked copy of the stack's parameters per step.
  Without dropout the result equals the layer loop up to float reassociation (the tests bound it);
  with dropout each layer draws its masks from `fold_in(stack rng, layer index)` instead of
  flax's per-module path, so the masks are equally distributed but not the loop's masks.
  """
  cfg = stack.config
  deterministic = args[-1]
  params = stack.variables["params"]
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs),
                         *[params[f"layers_{i}"] for i in range(num_layers)])
  layer = layer_cls(cfg, parent=None)
  stack_rng = None if deterministic else stack.make_rng("dropout")

  def body(carry, per_layer):
    layer_params, index = per_layer
    rngs = None if deterministic else {"dropout": jax.random.fold_in(stack_rng, index)}
    return layer.apply({"params": layer_params}, carry, *args, rngs=rngs), None

  policy = REMAT_POLICIES[cfg.remat_policy]
  if policy is not None:
    # prevent_cse is unnecessary inside scan (jax.checkpoint's documentation).
    body = jax.checkpoint(body, policy=policy, prevent_cse=False)
  x, _ = jax.lax.scan(body, x, (stacked, jnp.arange(num_layers)))
  return x


class Encoder(nn.Module):
  config: T5Config
  token_embedder: nn.Module

  @nn.compact
  def __call__(self, tokens, segment_ids=None, *, deterministic):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    valid = tokens > 0
    length = tokens.shape[1]
    relpos = layers.RelativePositionBiases(
        cfg.relpos_num_buckets, cfg.relpos_max_distance, cfg.num_heads, dtype,
        name="relpos_bias")(length, length, bidirectional=True)
    bias = layers.attention_bias(cfg.attention_implementation, relpos, valid, valid,
                                 query_segments=segment_ids, key_segments=segment_ids)
    x = _dropout(self.token_embedder(tokens), cfg.dropout_rate, deterministic)
    x = partitioning.with_logical_constraint(x, ("batch", "length", "embed"))
    if cfg.scan_layers and not self.is_initializing():
      x = _scan_layers(self, EncoderLayer, cfg.num_encoder_layers, x, (bias, deterministic))
    else:
      layer = _maybe_remat(EncoderLayer, cfg.remat_policy, static_argnums=(3,))
      for i in range(cfg.num_encoder_layers):
        x = layer(cfg, name=f"layers_{i}")(x, bias, deterministic)
    x = layers.RMSNorm(dtype=dtype, name="encoder_norm")(x)
    # Unlike every other dropout, t5x draws the encoder's last one per element (no broadcast).
    return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


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
      self_relpos = jax.lax.dynamic_slice_in_dim(full, step, 1, axis=2)
      allowed = jnp.arange(max_decode_length)[None, None, None, :] <= step
      # The cache-sizing call's attention is dead code: it keeps the plain form.
      impl = cfg.attention_implementation if initialised else "einsum"
      batch = decoder_input_tokens.shape[0]
      if impl == "einsum":
        self_bias = self_relpos + jnp.where(allowed, 0.0, -1e10)
      elif impl == "cudnn":
        self_bias = layers.FusedAttentionBias(
            relpos=self_relpos, query_lengths=jnp.ones((batch,), jnp.int32),
            key_lengths=jnp.full((batch,), step + 1, jnp.int32))
      else:
        self_bias = layers.FusedAttentionBias(relpos=self_relpos, mask=allowed)
      if initialised:
        position.value = step + 1
      cross_bias = layers.attention_bias(impl, None, jnp.ones(decoder_input_tokens.shape, bool),
                                         encoder_valid)
    else:
      length = decoder_input_tokens.shape[1]
      # Position 0 holds BOS (id 0), so validity comes from the loss targets, not the inputs:
      # padding is masked by the loss, and causality keeps real tokens from seeing it.
      valid = jnp.ones(decoder_input_tokens.shape, bool)
      impl = cfg.attention_implementation
      self_bias = layers.attention_bias(impl, relpos(length, length, bidirectional=False), valid,
                                        valid, causal=True, query_segments=decoder_segment_ids,
                                        key_segments=decoder_segment_ids)
      cross_bias = layers.attention_bias(impl, None, valid, encoder_valid,
                                         query_segments=decoder_segment_ids,
                                         key_segments=encoder_segment_ids)
    y = _dropout(self.token_embedder(decoder_input_tokens), cfg.dropout_rate, deterministic)
    y = partitioning.with_logical_constraint(y, ("batch", "length", "embed"))
    if cfg.scan_layers and not decode and not self.is_initializing():
      y = _scan_layers(self, DecoderLayer, cfg.num_decoder_layers, y,
                       (encoded, self_bias, cross_bias, deterministic))
    else:
      layer = (DecoderLayer if decode else
               _maybe_remat(DecoderLayer, cfg.remat_policy, static_argnums=(5, 6)))
      for i in range(cfg.num_decoder_layers):
        y = layer(cfg, name=f"layers_{i}")(y, encoded, self_bias, cross_bias, deterministic,
                                           decode)
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


# ----------------------------------------------------------------------------------------------
# Decoder-only language models (t5x's `examples/decoder_only` network).


class DecoderOnlyLayer(nn.Module):
  """A decoder layer without cross-attention: self-attention and MLP, each pre-normed (t5x's)."""
  config: T5Config

  @nn.compact
  def __call__(self, x, bias, deterministic, decode=False):
    return _self_attention_then_mlp(
        self.config, x, "self_attention",
        lambda attend, y: attend(y, y, bias, deterministic=deterministic, decode=decode),
        deterministic)


def _bias_from_mask(implementation: str, relpos, allowed):
  """The attention bias for a boolean `allowed` [batch, 1, q, k] plus `relpos` [1, h, q, k]."""
  if implementation == "einsum":
    return jnp.where(allowed, 0.0, -1e10).astype(jnp.float32) + relpos
  return layers.FusedAttentionBias(relpos=relpos, mask=allowed)


def decoder_only_bias(implementation: str, relpos, batch_size: int, causal_attention=None,
                      segment_ids=None):
  """Self-attention bias of a teacher-forced decoder-only model (t5x's `make_decoder_mask`).

  Causal everywhere, except that positions where `causal_attention` [batch, length] is 1 (a
  prefix LM's inputs, plus the position that reads their last token) see each other in both
  directions; packed examples (`segment_ids`) see only their own segment. Padding needs no mask
  of its own, as in the encoder-decoder's decoder: it comes after every real token of its row (or
  has segment id 0) and the loss weights drop its positions.
  """
  length = relpos.shape[-1]
  valid = jnp.ones((batch_size, length), bool)
  if causal_attention is None:
    return layers.attention_bias(implementation, relpos, valid, valid, causal=True,
                                 query_segments=segment_ids, key_segments=segment_ids)
  prefix = causal_attention > 0
  allowed = (np.tril(np.ones((length, length), bool))[None]
             | (prefix[:, :, None] & prefix[:, None, :]))
  if segment_ids is not None:
    allowed &= segment_ids[:, :, None] == segment_ids[:, None, :]
  return _bias_from_mask(implementation, relpos, allowed[:, None])


class DecoderOnlyStack(nn.Module):
  """t5x's decoder-only `Decoder`: token embedding, relative-position bias, layers, final norm,
  logits; every parameter under it (so the model's tree is `decoder/...`, as t5x's)."""
  config: T5Config

  @nn.compact
  def __call__(self, decoder_input_tokens, decoder_segment_ids=None,
               decoder_causal_attention=None, *, deterministic, decode=False,
               max_decode_length=None, prefix_start=None, prefill_bidirectional=False):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    impl = cfg.attention_implementation
    embedder = layers.Embed(cfg.vocab_size, cfg.emb_dim, dtype, name="token_embedder")
    relpos = layers.RelativePositionBiases(cfg.relpos_num_buckets, cfg.relpos_max_distance,
                                           cfg.num_heads, dtype, name="relpos_bias")
    if decode:
      bias = self._decode_bias(relpos, decoder_input_tokens, max_decode_length, prefix_start,
                               prefill_bidirectional)
    else:
      length = decoder_input_tokens.shape[1]
      bias = decoder_only_bias(impl, relpos(length, length, bidirectional=False),
                               decoder_input_tokens.shape[0], decoder_causal_attention,
                               decoder_segment_ids)
    y = _dropout(embedder(decoder_input_tokens), cfg.dropout_rate, deterministic)
    y = partitioning.with_logical_constraint(y, ("batch", "length", "embed"))
    if cfg.scan_layers and not decode and not self.is_initializing():
      y = _scan_layers(self, DecoderOnlyLayer, cfg.num_decoder_layers, y, (bias, deterministic))
    else:
      layer = (DecoderOnlyLayer if decode else
               _maybe_remat(DecoderOnlyLayer, cfg.remat_policy, static_argnums=(3, 4)))
      for i in range(cfg.num_decoder_layers):
        y = layer(cfg, name=f"layers_{i}")(y, bias, deterministic, decode)
    y = layers.RMSNorm(dtype=dtype, name="decoder_norm")(y)
    y = _dropout(y, cfg.dropout_rate, deterministic)
    if cfg.logits_via_embedding:
      logits = embedder.attend(y) / jnp.sqrt(y.shape[-1]).astype(y.dtype)
    else:
      logits = layers.Dense(features=(cfg.vocab_size,), kernel_axes=("embed", "vocab"),
                            kernel_init=layers.MLP_KERNEL_INIT, dtype=jnp.float32,
                            name="logits_dense")(y)
    return partitioning.with_logical_constraint(jnp.asarray(logits, jnp.float32),
                                                ("batch", "length", "vocab"))

  def _decode_bias(self, relpos, tokens, total_length, prefix_start, prefill_bidirectional):
    """Bias of a decoding call: `tokens` [batch, n] sit at positions p .. p + n - 1 of a cache of
    `total_length` positions (p: the cache's position counter, advanced by n).

    A query sees the keys from its row's `prefix_start` (left padding before it is masked) up to
    itself; with `prefill_bidirectional` (the prefill of a prefix LM) every key of the block.
    The first call (full-length dummy tokens, no cache yet) only sizes the cache.
    """
    cfg = self.config
    initialised = self.has_variable("cache", "position")
    position = self.variable("cache", "position", lambda: jnp.array(0, jnp.int32))
    n = tokens.shape[1]
    full = relpos(total_length, total_length, bidirectional=False)
    if not initialised:
      return layers.attention_bias("einsum", full, jnp.ones(tokens.shape, bool),
                                   jnp.ones(tokens.shape, bool), causal=True)
    step = position.value
    position.value = step + n
    queries = step + jnp.arange(n)
    keys = jnp.arange(total_length)
    start = (jnp.zeros((tokens.shape[0],), jnp.int32) if prefix_start is None else prefix_start)
    seen = keys[None, :] <= (step + n - 1 if prefill_bidirectional else queries)[..., None]
    allowed = (keys[None, None, :] >= start[:, None, None]) & seen[None]
    return _bias_from_mask(cfg.attention_implementation,
                           jax.lax.dynamic_slice_in_dim(full, step, n, axis=2), allowed[:, None])


class DecoderOnlyTransformer(nn.Module):
  """A decoder-only T5 language model (causal or prefix LM); float32 logits [batch, length, vocab].

  The parameter tree is t5x's decoder-only one: `decoder/token_embedder/embedding`,
  `decoder/relpos_bias/rel_embedding`, `decoder/layers_<i>/{pre_self_attention_layer_norm,
  self_attention/{query,key,value,out},pre_mlp_layer_norm,mlp/...}`, `decoder/decoder_norm` and
  `decoder/logits_dense` (untied models only). It has `config.num_decoder_layers` layers;
  `num_encoder_layers` is not used.
  """
  config: T5Config

  def setup(self):
    self.decoder = DecoderOnlyStack(self.config, name="decoder")

  def __call__(self, decoder_input_tokens, decoder_segment_ids=None,
               decoder_causal_attention=None, *, deterministic=True, decode=False,
               max_decode_length=None, prefix_start=None, prefill_bidirectional=False):
    return self.decoder(decoder_input_tokens, decoder_segment_ids, decoder_causal_attention,
                        deterministic=deterministic, decode=decode,
                        max_decode_length=max_decode_length, prefix_start=prefix_start,
                        prefill_bidirectional=prefill_bidirectional)
