"""The T5 network's parameter tree, the gin model files and the loss."""
import glob

import gin
import jax
import numpy as np
import pytest
from flax import serialization, traverse_util

from synthetic_pretraining import gin_utils
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network
from synthetic_pretraining import resources

from reference import T5X_TINY


def _flat_shapes(model):
  shapes = jax.eval_shape(model.init_params, jax.random.key(0))
  return {k: v.shape for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def test_t5_1_0_small_matches_paper_facts():
  shapes = _flat_shapes(models.EncoderDecoderModel(network.T5Config()))
  assert len(shapes) == 131
  assert sum(int(np.prod(s)) for s in shapes.values()) == 60_506_624
  assert shapes["token_embedder/embedding"] == (32128, 512)
  assert shapes["encoder/relpos_bias/rel_embedding"] == (8, 32)
  assert shapes["decoder/relpos_bias/rel_embedding"] == (8, 32)
  assert shapes["encoder/layers_5/attention/query/kernel"] == (512, 512)
  assert shapes["encoder/layers_0/mlp/wi/kernel"] == (512, 2048)
  assert shapes["encoder/layers_0/mlp/wo/kernel"] == (2048, 512)
  assert shapes["decoder/layers_5/encoder_decoder_attention/out/kernel"] == (512, 512)
  assert shapes["decoder/layers_0/pre_cross_attention_layer_norm/scale"] == (512,)
  assert "decoder/logits_dense/kernel" not in shapes
  encoder_layer = [k for k in shapes if k.startswith("encoder/layers_0/")]
  decoder_layer = [k for k in shapes if k.startswith("decoder/layers_0/")]
  assert len(encoder_layer) == 8 and len(decoder_layer) == 13


def test_t5_1_1_tiny_matches_reference_t5x_checkpoint():
  raw = open(T5X_TINY, "rb").read()
  target = serialization.msgpack_restore(raw)["optimizer"]["target"]
  reference = {k: v.shape for k, v in traverse_util.flatten_dict(target, sep="/").items()}
  config = network.T5Config(emb_dim=8, num_heads=4, head_dim=3, mlp_dim=16, num_encoder_layers=2,
                            num_decoder_layers=2, activations=("gelu", "linear"),
                            logits_via_embedding=False)
  assert _flat_shapes(models.EncoderDecoderModel(config)) == reference


@pytest.mark.parametrize("path", sorted(glob.glob(resources.path("gin/models/*/*.gin"))))
def test_model_gin_files_build(path):
  gin_utils.parse([path], [])
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  shapes = jax.eval_shape(model.init_params, jax.random.key(0))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  if path.endswith("t5_1_0/small.gin"):
    assert count == 60_506_624
  gated = model.config.activations == ("gelu", "linear")
  assert gated == ("t5_1_1" in path)
  assert count > 0


def test_loss_matches_numpy_with_z_loss_and_label_smoothing():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 3, 7)).astype(np.float32)
  targets = rng.integers(1, 7, size=(2, 3))
  weights = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  loss, z = models.cross_entropy_with_logits(logits, targets, weights, z_loss=1e-2,
                                             label_smoothing=0.1)
  log_z = np.log(np.exp(logits.astype(np.float64)).sum(-1))
  soft = np.full(logits.shape, 0.1 / 6)
  np.put_along_axis(soft, targets[..., None], 0.9, axis=-1)
  entropy = -(0.9 * np.log(0.9) + 6 * (0.1 / 6) * np.log(0.1 / 6))
  expected = (-(soft * (logits - log_z[..., None])).sum(-1) - entropy + 1e-2 * log_z**2) * weights
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(z, 1e-2 * log_z**2 * weights, rtol=1e-5)


def test_metrics_count_only_real_targets():
  model = models.EncoderDecoderModel(network.T5Config(
      vocab_size=64, emb_dim=8, num_heads=2, head_dim=4, mlp_dim=16, num_encoder_layers=1,
      num_decoder_layers=1))
  params = model.init_params(jax.random.key(0))
  batch = {"encoder_input_tokens": np.array([[5, 6, 1, 0]]),
           "decoder_input_tokens": np.array([[0, 7, 8, 0]]),
           "decoder_target_tokens": np.array([[7, 8, 1, 0]]),
           "decoder_loss_weights": np.array([[1, 1, 1, 0]])}
  _, sums = model.loss_and_metrics(params, batch)
  assert float(sums["num_tokens"]) == 3.0
  summary = models.summarize_metrics(jax.device_get(sums))
  assert 0.0 <= summary["accuracy"] <= 1.0
  # t5x's names: `loss` is the step's summed loss, the per-token loss counts real targets only.
  assert summary["loss"] == pytest.approx(float(sums["loss_sum"]))
  assert summary["loss_per_nonpadding_target_token"] == pytest.approx(float(sums["loss_sum"]) / 3.0)
  assert summary["loss_per_all_target_tokens"] == pytest.approx(float(sums["loss_sum"]) / 4.0)
  assert summary["non_padding_fraction/loss_weights"] == pytest.approx(0.75)


def test_packed_examples_score_as_if_alone():
  import seqio  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  model = models.EncoderDecoderModel(network.T5Config(
      vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32, num_encoder_layers=2,
      num_decoder_layers=2, dropout_rate=0.0))
  params = model.init_params(jax.random.key(3))
  examples = [{"inputs": [5, 9, 7, 1], "targets": [8, 3, 1]}, {"inputs": [11, 4, 1], "targets": [6, 12, 13, 1]}]
  lengths = {"inputs": 10, "targets": 10}

  def convert(pack, exs):
    ds = tf.data.Dataset.from_generator(
        lambda: iter(exs), output_signature={k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")})
    ds = seqio.EncDecFeatureConverter(pack=pack)(ds, lengths)
    return [{k: np.asarray(v)[None] for k, v in ex.items()} for ex in ds.as_numpy_iterator()]

  packed = convert(True, examples)
  assert len(packed) == 1 and packed[0]["encoder_segment_ids"].max() == 2
  alone = sum(float(model.loss_and_metrics(params, b)[0]) for b in convert(False, examples))
  assert float(model.loss_and_metrics(params, packed[0])[0]) == pytest.approx(alone, rel=1e-5)
