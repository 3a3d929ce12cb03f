"""The models: encoder-decoder and decoder-only; initialisation, t5x's loss, teacher-forced
metrics and decoding."""
import dataclasses
import functools
from typing import Mapping, Optional, Union

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from synthetic_pretraining import errors
from synthetic_pretraining.model import decoding
from synthetic_pretraining.model import network

Batch = Mapping[str, jax.Array]
NUM_REAL_TARGET_TOKENS = "NUM_REAL_TARGET_TOKENS"


def cross_entropy_with_logits(logits, targets, weights, z_loss: float = 0.0,
                              label_smoothing: float = 0.0):
  """Per-token cross-entropy (with t5x's z-loss and label smoothing) and its z-loss part.

  Label smoothing puts `label_smoothing` mass uniformly on the other classes and subtracts the
  entropy of that target distribution, so a perfect prediction has loss 0 as in t5x.
  """
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  normalizer = -(confidence * jnp.log(confidence) +
                 (vocab - 1) * low * jnp.log(low + 1e-20)) if label_smoothing else 0.0
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    smooth_logit = confidence * target_logit + low * (jnp.sum(logits, -1) - target_logit)
  else:
    smooth_logit = target_logit
  z_term = z_loss * jnp.square(log_z)
  loss = (log_z - smooth_logit - normalizer + z_term) * weights
  return loss, z_term * weights


@dataclasses.dataclass
class _TokenLossModel:
  """What both model kinds share: the configured vocabulary size, initialisation, logical axes and
  t5x's loss over `decoder_target_tokens` (subclasses give `_make_module`, `init_boxed`, `logits`).

  Attributes:
    config: the network architecture.
    z_loss: coefficient of log(Z)^2 (t5x default 1e-4; the paper's pretraining used 0).
    label_smoothing: as t5x.
    loss_normalizing_factor: None (sum, as the paper), a number to divide by, or
      'NUM_REAL_TARGET_TOKENS' (mean over non-padding targets).
  """
  config: network.T5Config = dataclasses.field(default_factory=network.T5Config)
  z_loss: float = 1e-4
  label_smoothing: float = 0.0
  loss_normalizing_factor: Optional[Union[float, str]] = None

  def __post_init__(self):
    if self.config.vocab_size is None:
      # Imported here: the vocabulary needs seqio (TensorFlow), and a model whose config names
      # its vocab_size runs without them (the TensorFlow-free core).
      from synthetic_pretraining.data import vocabularies  # pylint: disable=import-outside-toplevel
      size = vocabularies.configured_vocabulary().vocab_size
      self.config = dataclasses.replace(self.config, vocab_size=-(-size // 128) * 128)
    self.module = self._make_module()

  def init_params(self, rng: jax.Array):
    """Initial parameters (a nested dict with t5x's paths), unboxed."""
    return nn.meta.unbox(self.init_boxed(rng))

  def abstract_init(self):
    """`init_boxed`'s output as shapes, boxed with their logical axes: traced once per model
    (neither depends on the key, and a run asks for them several times, at half a second or more
    of tracing each)."""
    cached = self.__dict__.get("_abstract_init")
    if cached is None or cached[0] != self.config:
      cached = self.__dict__["_abstract_init"] = (
          self.config, jax.eval_shape(self.init_boxed, jax.random.key(0)))
    return cached[1]

  def logical_axes(self):
    """Tree of logical `PartitionSpec`s, one per parameter, from an abstract initialisation."""
    return nn.get_partition_spec(self.abstract_init())

  def param_shapes(self):
    """The parameters as `ShapeDtypeStruct`s (unboxed, as `init_params` returns them)."""
    return nn.meta.unbox(self.abstract_init())

  def loss_and_metrics(self, params, batch: Batch, dropout_rng=None):
    """Returns (loss, metric sums): sums so that several batches or hosts can be added up."""
    logits = self.logits(params, batch, dropout_rng)
    targets = batch["decoder_target_tokens"]
    weights = batch.get("decoder_loss_weights")
    weights = (targets > 0) if weights is None else weights
    weights = jnp.asarray(weights, jnp.float32)
    token_loss, token_z = cross_entropy_with_logits(logits, targets, weights, self.z_loss,
                                                    self.label_smoothing)
    num_tokens = jnp.sum(weights)
    normaliser = 1.0
    if self.loss_normalizing_factor == NUM_REAL_TARGET_TOKENS:
      normaliser = jnp.maximum(num_tokens, 1.0)
    elif self.loss_normalizing_factor is not None:
      normaliser = self.loss_normalizing_factor
    loss = jnp.sum(token_loss) / normaliser
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32) * weights
    seq_correct = jnp.all((correct > 0) | (weights == 0), axis=-1) & (jnp.sum(weights, -1) > 0)
    metrics = {
        "step_loss": loss,                       # what the optimizer minimised at this step
        "step_z_loss": jnp.sum(token_z) / normaliser,
        "loss_sum": jnp.sum(token_loss),         # token sums, for the per-token metrics
        "z_loss_sum": jnp.sum(token_z),
        "correct_tokens": jnp.sum(correct),
        "num_tokens": num_tokens,
        "num_all_tokens": jnp.asarray(targets.size, jnp.float32),
        "correct_sequences": jnp.sum(seq_correct.astype(jnp.float32)),
        "num_sequences": jnp.sum((jnp.sum(weights, -1) > 0).astype(jnp.float32)),
        "num_steps": jnp.ones((), jnp.float32),
    }
    return loss, metrics


@gin.configurable
@dataclasses.dataclass
class EncoderDecoderModel(_TokenLossModel):
  """T5 encoder-decoder with t5x's loss: summed token cross-entropy over non-padding targets.

  Attributes:
    config: the network architecture.
    z_loss: coefficient of log(Z)^2 (t5x default 1e-4; the paper's pretraining used 0).
    label_smoothing: as t5x.
    loss_normalizing_factor: None (sum, as the paper), a number to divide by, or
      'NUM_REAL_TARGET_TOKENS' (mean over non-padding targets).
  """

  def _make_module(self):
    return network.Transformer(self.config)

  def _dummy_batch(self, batch_size: int = 1, input_length: int = 1, target_length: int = 1):
    return (jnp.ones((batch_size, input_length), jnp.int32),
            jnp.ones((batch_size, target_length), jnp.int32))

  def init_boxed(self, rng: jax.Array):
    """Initial parameters, still boxed with their logical axis names."""
    inputs, targets = self._dummy_batch()
    return self.module.init({"params": rng}, inputs, targets, deterministic=True)["params"]

  def logits(self, params, batch: Batch, dropout_rng=None):
    """Teacher-forced logits; dropout is on when `dropout_rng` is given."""
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    return self.module.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
        batch.get("encoder_segment_ids"), batch.get("decoder_segment_ids"),
        deterministic=dropout_rng is None, rngs=rngs)

  def _decode_cache(self, params, encoded, encoder_tokens, max_length: int):
    """A zeroed key/value cache for `max_length` decoding steps."""
    dummy = jnp.zeros((encoder_tokens.shape[0], max_length), jnp.int32)
    _, variables = self.module.apply({"params": params}, encoded, encoder_tokens, dummy,
                                     decode=True, max_decode_length=max_length,
                                     mutable=["cache"], method=network.Transformer.decode)
    return variables["cache"]

  def predict_batch(self, params, batch: Batch, *, max_decode_length: int,
                    num_decodes: int = 1, alpha: float = 0.6, eos_id: int = 1):
    """Decodes `batch['encoder_input_tokens']`: greedy when num_decodes == 1, else beam search.

    Returns [batch, max_decode_length] ids of the best hypothesis (0 after EOS).
    """
    tokens = batch["encoder_input_tokens"]
    encoded = self.module.apply({"params": params}, tokens, batch.get("encoder_segment_ids"),
                                method=network.Transformer.encode)
    if num_decodes > 1:
      encoded = jnp.repeat(encoded, num_decodes, axis=0)
      tokens = jnp.repeat(tokens, num_decodes, axis=0)
    cache = self._decode_cache(params, encoded, tokens, max_decode_length)

    def step_fn(previous, cache):
      logits, variables = self.module.apply(
          {"params": params, "cache": cache}, encoded, tokens, previous, decode=True,
          max_decode_length=max_decode_length, mutable=["cache"], method=network.Transformer.decode)
      return logits[:, -1], variables["cache"]

    if num_decodes == 1:
      return decoding.greedy(step_fn, cache, tokens.shape[0], max_decode_length, eos_id)
    seqs, _ = decoding.beam_search(step_fn, cache, batch["encoder_input_tokens"].shape[0],
                                   num_decodes, max_decode_length, eos_id, alpha)
    return seqs[:, 0]


# The decoder-only features of seqio's LM / PrefixLM feature converters (data.feature_converter).
DECODER_ONLY_FEATURES = ("decoder_input_tokens", "decoder_target_tokens")


@gin.configurable
@dataclasses.dataclass
class DecoderOnlyModel(_TokenLossModel):
  """A decoder-only T5 language model with t5x's `DecoderOnlyModel` semantics and loss.

  It reads the features of seqio's `LMFeatureConverter` (targets-only tasks: a causal LM) and
  `PrefixLMFeatureConverter` (inputs and targets: the inputs become a prefix, the loss is on the
  targets only through `decoder_loss_weights`): `decoder_input_tokens`, `decoder_target_tokens`,
  `decoder_loss_weights`, `decoder_causal_attention` and, packed, `decoder_segment_ids` (the
  pipeline's `data.feature_converter.architecture = 'decoder_only'`, set by
  gin/models/decoder_only/base.gin). The loss and the metrics are the encoder-decoder's.

  Attributes:
    config: the network architecture (`num_decoder_layers` layers; `num_encoder_layers` unused).
    z_loss, label_smoothing, loss_normalizing_factor: as `EncoderDecoderModel`.
    inputs_bidirectional_attention: the prefix (where `decoder_causal_attention` is 1) attends
      in both directions: a prefix LM (Raffel et al. 2020, Section 3.2.1). False: fully causal,
      the prefix is only left context (t5x's default).
  """
  inputs_bidirectional_attention: bool = True

  def _make_module(self):
    return network.DecoderOnlyTransformer(self.config)

  def init_boxed(self, rng: jax.Array):
    """Initial parameters, still boxed with their logical axis names."""
    tokens = jnp.ones((1, 1), jnp.int32)
    return self.module.init({"params": rng}, tokens, deterministic=True)["params"]

  def logits(self, params, batch: Batch, dropout_rng=None):
    """Teacher-forced logits; dropout is on when `dropout_rng` is given."""
    missing = [k for k in DECODER_ONLY_FEATURES if k not in batch]
    if missing or "encoder_input_tokens" in batch:
      # Encoder-decoder features would silently train on the targets alone.
      raise errors.UsageError(
          f"The decoder-only model got the features {', '.join(sorted(batch))}, not seqio's "
          "(prefix) LM features: set data.feature_converter.architecture = 'decoder_only' "
          "(gin/models/decoder_only/*.gin do).")
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    causal = batch.get("decoder_causal_attention") if self.inputs_bidirectional_attention else None
    return self.module.apply(
        {"params": params}, batch["decoder_input_tokens"], batch.get("decoder_segment_ids"),
        causal, deterministic=dropout_rng is None, rngs=rngs)

  def predict_batch(self, params, batch: Batch, *, max_decode_length: int,
                    num_decodes: int = 1, alpha: float = 0.6, eos_id: int = 1):
    """Continues each prefix `batch['encoder_input_tokens']` (the task's inputs, 0-padded on the
    right, as the inference pipeline hands them): greedy when num_decodes == 1, else beam search.

    The prefix is laid out as in training, `[BOS, inputs...]`, but right-aligned at the end of a
    block of inputs_length + 1 positions, left padding masked; the relative-position bias makes
    that the training layout shifted. One prefill call fills the key/value cache with the whole
    block (bidirectionally for a prefix LM); decoding then starts by re-reading the prefix's last
    token, whose logits give the first target token (t5x's prefill). Returns
    [batch, max_decode_length] ids of the best hypothesis (0 after EOS).
    """
    inputs = jnp.asarray(batch["encoder_input_tokens"], jnp.int32)
    rows, width = inputs.shape
    lengths = jnp.sum(inputs != 0, axis=1).astype(jnp.int32)
    start = width - lengths                      # where BOS goes; left padding before it
    shifted = jnp.concatenate([jnp.zeros((rows, 1), jnp.int32), inputs], axis=1)
    index = jnp.arange(width + 1)[None, :] - start[:, None]
    block = jnp.where(index >= 0, jnp.take_along_axis(shifted, jnp.maximum(index, 0), axis=1), 0)
    if num_decodes > 1:
      block = jnp.repeat(block, num_decodes, axis=0)
      start = jnp.repeat(start, num_decodes, axis=0)
    total = width + max_decode_length
    call = functools.partial(self.module.apply, decode=True, max_decode_length=total,
                             prefix_start=start, mutable=["cache"])
    _, variables = call({"params": params}, jnp.zeros((block.shape[0], total), jnp.int32))
    _, variables = call({"params": params, "cache": variables["cache"]}, block,
                        prefill_bidirectional=self.inputs_bidirectional_attention)
    # Step 0 re-reads the block's last token at its own position (the prefill's keys there are
    # recomputed equal), so every cache counter goes back by one.
    cache = jax.tree_util.tree_map_with_path(
        lambda path, x: (jnp.asarray(width, x.dtype)
                         if jax.tree_util.keystr(path).endswith(("['cache_index']", "['position']"))
                         else x), variables["cache"])

    def step_fn(previous, cache):
      logits, variables = call({"params": params, "cache": cache}, previous)
      return logits[:, -1], variables["cache"]

    first = block[:, width]
    if num_decodes == 1:
      return decoding.greedy(step_fn, cache, rows, max_decode_length, eos_id, first_tokens=first)
    seqs, _ = decoding.beam_search(step_fn, cache, rows, num_decodes, max_decode_length, eos_id,
                                   alpha, first_tokens=first)
    return seqs[:, 0]


def summarize_metrics(sums: Mapping[str, float]) -> dict:
  """Metric sums of one or more steps (or eval batches) as t5x names and meanings.

  `loss`, `z_loss` and `cross_ent_loss` are averages per step of the step's (normalised) loss, as
  t5x logs them; `*_per_all_target_tokens` divide the summed token losses by every target slot,
  padding included, and `loss_per_nonpadding_target_token` by the real targets. `accuracy` is
  over real target tokens; `sequence_accuracy` (ours) counts sequences with every token right.
  """
  get = lambda k: float(sums[k])
  steps, real, slots = max(get("num_steps"), 1.0), max(get("num_tokens"), 1.0), max(
      get("num_all_tokens"), 1.0)
  return {
      "loss": get("step_loss") / steps,
      "z_loss": get("step_z_loss") / steps,
      "cross_ent_loss": (get("step_loss") - get("step_z_loss")) / steps,
      "loss_per_nonpadding_target_token": get("loss_sum") / real,
      "loss_per_all_target_tokens": get("loss_sum") / slots,
      "cross_ent_loss_per_all_target_tokens": (get("loss_sum") - get("z_loss_sum")) / slots,
      "z_loss_per_all_target_tokens": get("z_loss_sum") / slots,
      "accuracy": get("correct_tokens") / real,
      "sequence_accuracy": get("correct_sequences") / max(get("num_sequences"), 1.0),
      "non_padding_fraction/loss_weights": get("num_tokens") / slots,
      "num_tokens": get("num_tokens"),
  }
