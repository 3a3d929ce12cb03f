"""Remat and scan give the plain model's loss and gradients, on the same parameter tree."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network

pytestmark = pytest.mark.unit

CONFIG = network.T5Config(vocab_size=128, emb_dim=16, num_heads=4, head_dim=4, mlp_dim=32,
                          num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.1,
                          activations=("gelu", "linear"), logits_via_embedding=False)
# Remat and scan only change what XLA fuses and in which order it adds; in float32 the loss and
# every gradient stay within this relative tolerance of the plain model (measured: <= 1e-6 abs).
RTOL, ATOL = 1e-5, 1e-5


def _batch():
  rng = np.random.RandomState(0)
  return {"encoder_input_tokens": rng.randint(1, 128, (4, 7)).astype(np.int32),
          "decoder_input_tokens": rng.randint(1, 128, (4, 5)).astype(np.int32),
          "decoder_target_tokens": rng.randint(1, 128, (4, 5)).astype(np.int32)}


_STEPS = {}


def _loss_and_grads(model, params, dropout_key=None):
  """One compiled value-and-grad per (model, dropout on/off), reused across tests."""
  key = (model.config, dropout_key is None)
  if key not in _STEPS:
    fn = lambda p, k: model.loss_and_metrics(p, _batch(), k)[0]  # noqa: E731
    _STEPS[key] = jax.jit(jax.value_and_grad(fn))
  return _STEPS[key](params, dropout_key)


def _model(**changes):
  return models.EncoderDecoderModel(dataclasses.replace(CONFIG, **changes))


@pytest.fixture(scope="module")
def plain():
  model = _model()
  params = model.init_params(jax.random.key(0))
  return model, params


def _assert_close(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("changes", [
    {"remat_policy": "full"}, {"scan_layers": True, "remat_policy": "dots_saveable"}])
@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_same_tree_loss_and_gradients_as_the_plain_model(plain, changes):
  model, params = plain
  other = _model(**changes)
  other_params = other.init_params(jax.random.key(0))
  # Same t5x paths and the same initial values: checkpoints need no conversion.
  _assert_close(other_params, params)
  _assert_close(_loss_and_grads(other, params), _loss_and_grads(model, params))


@pytest.mark.parametrize("policy", ["full"])
@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_remat_keeps_the_dropout_masks(plain, policy):
  model, params = plain
  key = jax.random.key(7)
  _assert_close(_loss_and_grads(_model(remat_policy=policy), params, key),
                _loss_and_grads(model, params, key))


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_scan_dropout_is_seeded_and_active(plain):
  _, params = plain
  scanned = _model(scan_layers=True, remat_policy="dots_saveable")
  a = _loss_and_grads(scanned, params, jax.random.key(7))
  _assert_close(_loss_and_grads(scanned, params, jax.random.key(7)), a)
  assert not np.allclose(float(a[0]), float(_loss_and_grads(scanned, params)[0]))
  assert not np.allclose(float(a[0]), float(_loss_and_grads(scanned, params, jax.random.key(8))[0]))


def test_checkpoints_load_across_layouts(plain, tmp_path):
  model, params = plain
  scanned = _model(scan_layers=True, remat_policy="dots_saveable")
  abstract = jax.eval_shape(scanned.init_params, jax.random.key(0))
  orbax_format.save_params(str(tmp_path / "plain"), params)
  restored = orbax_format.restore_params(str(tmp_path / "plain"), abstract)
  _assert_close(restored, params)
  # And the other way: parameters trained under scan load into the plain model.
  updated = jax.tree.map(lambda p, g: p - 0.1 * g, params, _loss_and_grads(scanned, params)[1])
  orbax_format.save_params(str(tmp_path / "scanned"), updated)
  back = orbax_format.restore_params(str(tmp_path / "scanned"),
                                    jax.eval_shape(model.init_params, jax.random.key(0)))
  _assert_close(_loss_and_grads(model, back), _loss_and_grads(scanned, updated))


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_decoding_is_unchanged_by_scan(plain):
  model, params = plain
  batch = {"encoder_input_tokens": jnp.asarray(_batch()["encoder_input_tokens"])}
  expected = model.predict_batch(params, batch, max_decode_length=4)
  got = _model(scan_layers=True, remat_policy="full").predict_batch(params, batch, max_decode_length=4)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_unknown_remat_policy_is_a_clear_error():
  with pytest.raises(ValueError, match="remat_policy='some'.*expected one of"):
    network.T5Config(remat_policy="some")
