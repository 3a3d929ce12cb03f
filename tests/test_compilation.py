"""One compilation per configuration: seeds are arguments of the train step, not constants."""
import os

import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from synthetic_pretraining.model import models
from synthetic_pretraining.model import network
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.training import compiled_steps

pytestmark = pytest.mark.unit

CONFIG = network.T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                          num_encoder_layers=1, num_decoder_layers=1, dropout_rate=0.1)


def _trainer(seed):
  part = partitioning.PjitPartitioner(devices=jax.devices()[:1])
  return compiled_steps.Trainer(models.EncoderDecoderModel(CONFIG), part,
                                optimizers.create_optimizer(), seed)


def _batch():
  tokens = np.arange(8, dtype=np.int32).reshape(2, 4) + 3
  return {"encoder_input_tokens": tokens, "decoder_target_tokens": tokens,
          "decoder_input_tokens": np.pad(tokens[:, :-1], ((0, 0), (1, 0))),
          "decoder_loss_weights": np.ones_like(tokens, np.float32)}


def _state(trainer):
  params = trainer.random_params()
  return compiled_steps.TrainState(0, params, trainer.init_opt_state(params))


def _lowered_text(trainer):
  state = _state(trainer)
  return trainer.jit_train_step(_batch()).lower(
      state.params, state.opt_state, _batch(), np.int32(0), trainer.dropout_key).as_text()


def test_two_seeds_lower_to_the_same_train_step():
  assert _lowered_text(_trainer(0)) == _lowered_text(_trainer(1))


def test_the_key_as_argument_gives_the_numbers_of_the_key_as_constant():
  # Before the key became an argument it was a constant of the step; the bits must not change
  # (resumed runs and committed results rely on them), dropout included.
  trainer = _trainer(3)
  step = trainer.jit_train_step(_batch())
  as_constant = jax.jit(lambda p, o, b, s: step.__wrapped__(p, o, b, s, trainer.dropout_key))
  # The train step donates its state: each side starts from its own copy.
  ours, theirs = [(s.params, s.opt_state) for s in (_state(trainer), _state(trainer))]
  for s in range(3):
    ours = trainer.train_step(compiled_steps.TrainState(s, *ours), _batch())[0]
    ours = (ours.params, ours.opt_state)
    theirs = as_constant(*theirs, _batch(), np.int32(s))[:2]
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_persistent_cache_compiles_a_second_seed_from_the_cache(tmp_path, monkeypatch):
  previous = {name: getattr(jax.config, name) for name in
              ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")}
  monkeypatch.setenv(compiled_steps.COMPILATION_CACHE_ENV, str(tmp_path))
  try:
    assert compiled_steps.enable_compilation_cache(min_compile_seconds=0) == str(tmp_path)
    first = _trainer(0)
    first.train_step(_state(first), _batch())
    files = set(os.listdir(tmp_path))
    assert files, "the train step was not written to the cache"
    second = _trainer(1)
    second.train_step(_state(second), _batch())
    assert set(os.listdir(tmp_path)) == files  # nothing new compiled for the second seed
  finally:
    for name, value in previous.items():
      jax.config.update(name, value)
    compilation_cache.reset_cache()  # later tests compile into the session's cache again


def test_at_most_two_steps_run_ahead_of_the_host(monkeypatch):
  # XLA:CPU aborts when too many programs with collectives are queued (compiled_steps.InFlight):
  # adding a step's result waits for the oldest one beyond the limit, in order.
  waited = []
  monkeypatch.setattr(compiled_steps.jax, "block_until_ready", waited.append)
  in_flight = compiled_steps.InFlight()
  for step in range(5):
    in_flight.add(step)
    assert waited == list(range(max(0, step - 1)))
