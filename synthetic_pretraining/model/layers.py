"""Building blocks of the T5 network, with t5x's parameter names, shapes and initialisers.

Every parameter is created through `nn.with_logical_partitioning`, so its logical axis names
(t5x's: 'vocab', 'embed', 'joined_kv', 'mlp', 'heads', 'relpos_buckets') travel with it and the
partitioner can map them onto a device mesh.
"""
import functools
from typing import Callable, Optional, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from synthetic_pretraining.model import partitioning

Initializer = Callable[..., jax.Array]

ATTENTION_KERNEL_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
MLP_KERNEL_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
EMBEDDING_INIT = nn.initializers.normal(stddev=1.0)
RELPOS_INIT = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


def _param(module: nn.Module, name: str, init: Initializer, shape, axes):
  return module.param(name, nn.with_logical_partitioning(init, axes), shape, jnp.float32)


class Dense(nn.Module):
  """A bias-free projection whose kernel is stored 2-D, as t5x stores `DenseGeneral` kernels.

  `in_features` input axes (the trailing ones) are contracted; the output gets `features`.
  """
  features: Sequence[int]
  kernel_axes: tuple
  kernel_init: Initializer
  in_axes: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    in_shape = x.shape[-self.in_axes:]
    kernel = _param(self, "kernel", self.kernel_init,
                    (int(np.prod(in_shape)), int(np.prod(self.features))), self.kernel_axes)
    kernel = jnp.asarray(kernel, self.dtype).reshape(tuple(in_shape) + tuple(self.features))
    x = jnp.asarray(x, self.dtype)
    in_letters = "abcdefgh"[: self.in_axes]
    out_letters = "stuvw"[: len(self.features)]
    return jnp.einsum(f"...{in_letters},{in_letters}{out_letters}->...{out_letters}", x, kernel)


class RMSNorm(nn.Module):
  """T5's layer norm: scale only, no mean subtraction or bias, computed in float32."""
  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = _param(self, "scale", nn.initializers.ones, (x.shape[-1],), ("embed",))
    x = jnp.asarray(x, jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.epsilon)
    return jnp.asarray(x * scale, self.dtype)


class Embed(nn.Module):
  """Token embedding; `attend` gives the logits of T5 1.0's tied output layer."""
  num_embeddings: int
  features: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.embedding = _param(self, "embedding", EMBEDDING_INIT,
                            (self.num_embeddings, self.features), ("vocab", "embed"))

  def __call__(self, ids):
    return jnp.asarray(jnp.take(self.embedding, ids, axis=0), self.dtype)

  def attend(self, query):
    return jnp.einsum("...d,vd->...v", jnp.asarray(query, self.dtype),
                      jnp.asarray(self.embedding, self.dtype))


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int,
                             max_distance: int):
  """T5's bucketing of key-minus-query distances: exact for small ones, logarithmic beyond."""
  ret = 0
  n = -relative_position
  if bidirectional:
    num_buckets //= 2
    ret += (n < 0).astype(np.int32) * num_buckets
    n = np.abs(n)
  else:
    n = np.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  val_if_large = max_exact + (
      np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps) /
      np.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(np.int32)
  val_if_large = np.minimum(val_if_large, num_buckets - 1)
  return ret + np.where(is_small, n, val_if_large)


class RelativePositionBiases(nn.Module):
  """One table of per-head biases per stack, shared by all its layers (t5x's `relpos_bias`)."""
  num_buckets: int
  max_distance: int
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, q_len: int, k_len: int, bidirectional: bool):
    # Bucket indices depend only on static lengths, so they are computed with numpy at trace time.
    relative = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    buckets = relative_position_bucket(relative, bidirectional, self.num_buckets, self.max_distance)
    table = _param(self, "rel_embedding", RELPOS_INIT, (self.num_heads, self.num_buckets),
                   ("heads", "relpos_buckets"))
    one_hot = jax.nn.one_hot(buckets, self.num_buckets, dtype=self.dtype)
    # [heads, q, k] with a leading batch axis of 1 to broadcast.
    return jnp.einsum("hb,qkb->hqk", jnp.asarray(table, self.dtype), one_hot)[None]


def dropout_attention_weights(weights: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
  """Drops attention weights [batch, heads, q, k] with one mask shared by all queries.

  As t5x's `dot_product_attention` does (Mesh TF T5 broadcast over a length axis): a key is
  dropped for every query of a head at once, which also draws q times fewer random bits.
  """
  keep_prob = 1.0 - rate
  mask_shape = list(weights.shape)
  mask_shape[-2] = 1  # the query axis
  keep = jax.random.bernoulli(rng, keep_prob, mask_shape)
  scale = keep.astype(weights.dtype) / jnp.asarray(keep_prob, weights.dtype)
  return weights * jnp.broadcast_to(scale, weights.shape)


# How attention is computed (`network.T5Config.attention_implementation`): 'einsum' is t5x's
# einsum + float32 softmax on an additive bias; 'xla' and 'cudnn' call `jax.nn.dot_product_attention`
# with that implementation (cuDNN's fused flash attention needs a GPU and bf16/fp16 activations).
ATTENTION_IMPLEMENTATIONS = ("einsum", "xla", "cudnn")


@flax.struct.dataclass
class FusedAttentionBias:
  """What a fused attention gets instead of one additive bias [batch, heads, q, k].

  T5's relative-position bias stays separate, [1, heads, q, k] (broadcast over the batch, one
  slice per head: the shape whose gradient cuDNN computes), and which keys a query may see is
  given as a boolean `mask` [batch, 1, q, k], as sequence lengths (cuDNN's padding mask, for
  trailing padding) and/or `causal` (cuDNN skips the blocks above the diagonal).

  Attributes:
    relpos: [1, heads, q, k] relative-position bias, or None (cross-attention has none).
    mask: bool [batch or 1, 1, q, k], True where attending is allowed, or None.
    query_lengths, key_lengths: int32 [batch] valid (leading) positions, or None.
    causal: a query sees no later key (static).
  """
  relpos: Optional[jax.Array] = None
  mask: Optional[jax.Array] = None
  query_lengths: Optional[jax.Array] = None
  key_lengths: Optional[jax.Array] = None
  causal: bool = flax.struct.field(pytree_node=False, default=False)


def attention_bias(implementation: str, relpos, query_valid, key_valid, causal: bool = False,
                   query_segments=None, key_segments=None):
  """The bias argument of `MultiHeadAttention` for `implementation`.

  'einsum': one additive float32 bias [batch, heads, q, k] (`make_attention_mask` + `relpos`),
  exactly today's. 'xla': a `FusedAttentionBias` with the relative-position bias and one boolean
  mask holding padding, packing and causality. 'cudnn': without packing, padding becomes sequence
  lengths and causality cuDNN's causal mask (no [batch, q, k] array at all); with packing, the
  segment mask is a boolean mask (cuDNN folds it into the bias).

  Args:
    implementation: one of ATTENTION_IMPLEMENTATIONS.
    relpos: [1, heads, q, k] relative-position bias, or None.
    query_valid, key_valid: bool [batch, q] and [batch, k], False at padding.
    causal: mask keys after the query (decoder self-attention).
    query_segments, key_segments: int [batch, q] / [batch, k] packing segment ids, or None.
  """
  if implementation == "einsum":
    bias = make_attention_mask(query_valid, key_valid, causal, query_segments, key_segments)
    return bias if relpos is None else bias + relpos
  if implementation == "cudnn" and query_segments is None:
    return FusedAttentionBias(relpos=relpos,
                              query_lengths=jnp.sum(query_valid, axis=1, dtype=jnp.int32),
                              key_lengths=jnp.sum(key_valid, axis=1, dtype=jnp.int32),
                              causal=causal)
  return FusedAttentionBias(relpos=relpos, mask=_allowed(query_valid, key_valid, causal,
                                                         query_segments, key_segments))


def fused_attention(query, key, value, bias: FusedAttentionBias, implementation: str):
  """`jax.nn.dot_product_attention` on [batch, length, heads, head_dim] inputs, T5-style.

  No 1/sqrt(head_dim) scaling (t5x folds it into the query initialiser); logits and softmax in
  float32 ('xla'; cuDNN accumulates in float32); the relative-position bias in the inputs' dtype.
  """
  relpos = None if bias.relpos is None else jnp.asarray(bias.relpos, query.dtype)
  return jax.nn.dot_product_attention(
      query, key, value, bias=relpos, mask=bias.mask, scale=1.0, is_causal=bias.causal,
      query_seq_lengths=bias.query_lengths, key_value_seq_lengths=bias.key_lengths,
      implementation=implementation)


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention as in t5x: no 1/sqrt(d) on logits (folded into query init).

  `implementation` picks how the attention itself is computed (ATTENTION_IMPLEMENTATIONS); the
  fused ones take a `FusedAttentionBias` as `bias` and have no attention-weight dropout
  (`network.T5Config` refuses the combination).

  With `decode=True` the keys and values are cached (flax 'cache' collection) for one-token-at-a-time
  autoregressive decoding; `cache_projected_kv=True` (cross-attention while decoding) projects the
  encoder outputs once and reuses them at every step.
  """
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32
  implementation: str = "einsum"

  @nn.compact
  def __call__(self, inputs_q, inputs_kv, bias, *, deterministic: bool, decode: bool = False,
               cache_projected_kv: bool = False):
    depth_scaling = np.sqrt(self.head_dim).astype(np.float32)

    def query_init(*args):
      return ATTENTION_KERNEL_INIT(*args) / depth_scaling

    project = functools.partial(Dense, features=(self.num_heads, self.head_dim),
                                kernel_axes=("embed", "joined_kv"), dtype=self.dtype)
    query = project(kernel_init=query_init, name="query")(inputs_q)
    if cache_projected_kv and self.has_variable("cache", "cached_cross_key"):
      # Cross-attention while decoding: the encoder's keys and values were projected once.
      key = self.get_variable("cache", "cached_cross_key")
      value = self.get_variable("cache", "cached_cross_value")
    else:
      key = project(kernel_init=ATTENTION_KERNEL_INIT, name="key")(inputs_kv)
      value = project(kernel_init=ATTENTION_KERNEL_INIT, name="value")(inputs_kv)
      if cache_projected_kv and self.is_mutable_collection("cache"):
        self.put_variable("cache", "cached_cross_key", key)
        self.put_variable("cache", "cached_cross_value", value)
    query = partitioning.with_logical_constraint(query, ("batch", "length", "heads", "kv"))
    key = partitioning.with_logical_constraint(key, ("batch", "length", "heads", "kv"))
    value = partitioning.with_logical_constraint(value, ("batch", "length", "heads", "kv"))

    if decode:
      key, value, bias = self._update_cache(key, value, bias)

    if isinstance(bias, FusedAttentionBias):
      if not deterministic and self.dropout_rate > 0:
        raise ValueError("fused attention has no attention-weight dropout")  # T5Config refuses it
      out = fused_attention(query, key, value, bias, self.implementation)
    else:
      logits = jnp.einsum("bqhd,bkhd->bhqk", query, key)
      if bias is not None:
        logits = logits + jnp.asarray(bias, logits.dtype)
      weights = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1).astype(self.dtype)
      if not deterministic and self.dropout_rate > 0:
        weights = dropout_attention_weights(weights, self.dropout_rate, self.make_rng("dropout"))
      out = jnp.einsum("bhqk,bkhd->bqhd", weights, value)
    return Dense(features=(inputs_q.shape[-1],), in_axes=2, kernel_axes=("joined_kv", "embed"),
                 kernel_init=ATTENTION_KERNEL_INIT, dtype=self.dtype, name="out")(out)

  def _update_cache(self, key, value, bias):
    """Writes this step's keys/values (one token, or a decoder-only model's prefix block) at the
    cache index; returns the full cache and its bias."""
    initialised = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    if not initialised:
      # The first call only sizes the cache (shapes of the full-length inputs).
      return key, value, bias
    index, steps = cache_index.value, key.shape[1]
    key = jax.lax.dynamic_update_slice(cached_key.value, key, (0, index, 0, 0))
    value = jax.lax.dynamic_update_slice(cached_value.value, value, (0, index, 0, 0))
    cached_key.value, cached_value.value = key, value
    # One token per decoding step; a decoder-only prefill writes its whole prefix block at once.
    cache_index.value = index + steps
    return key, value, bias


class MlpBlock(nn.Module):
  """Position-wise MLP: ReLU (T5 1.0, `wi`) or gated GELU (T5 1.1, `wi_0` * `wi_1`)."""
  mlp_dim: int
  activations: Sequence[str] = ("relu",)
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    hidden = None
    for i, act in enumerate(self.activations):
      name = "wi" if len(self.activations) == 1 else f"wi_{i}"
      h = Dense(features=(self.mlp_dim,), kernel_axes=("embed", "mlp"), kernel_init=MLP_KERNEL_INIT,
                dtype=self.dtype, name=name)(x)
      h = _activation(act)(h)
      hidden = h if hidden is None else hidden * h
    hidden = partitioning.with_logical_constraint(hidden, ("batch", "length", "mlp"))
    # t5x drops the hidden layer with the same mask for every position.
    hidden = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(hidden, deterministic=deterministic)
    return Dense(features=(x.shape[-1],), kernel_axes=("mlp", "embed"), kernel_init=MLP_KERNEL_INIT,
                 dtype=self.dtype, name="wo")(hidden)


def _activation(name: str):
  if name == "linear":
    return lambda x: x
  if name == "gelu":
    return nn.gelu
  if name == "relu":
    return nn.relu
  raise ValueError(f"Unknown MLP activation {name!r}; expected 'relu', 'gelu' or 'linear'.")


def _allowed(query_valid, key_valid, causal=False, query_segments=None, key_segments=None):
  """Boolean [batch, 1, q, k]: True where a query may attend to a key."""
  mask = query_valid[:, :, None] & key_valid[:, None, :]
  if query_segments is not None:
    mask &= query_segments[:, :, None] == key_segments[:, None, :]
  if causal:
    q_len, k_len = query_valid.shape[1], key_valid.shape[1]
    mask &= np.tril(np.ones((q_len, k_len), dtype=bool))[None]
  return mask[:, None]


def make_attention_mask(query_valid, key_valid, causal: bool = False,
                        query_segments=None, key_segments=None):
  """Additive attention bias [batch, 1, q, k]: 0 where attending is allowed, -1e10 elsewhere."""
  mask = _allowed(query_valid, key_valid, causal, query_segments, key_segments)
  return jnp.where(mask, 0.0, -1e10).astype(jnp.float32)
