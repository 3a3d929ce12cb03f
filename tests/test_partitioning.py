"""Sharding: the same numbers on one device and on a 4x2 mesh, and the expected layouts."""
import pytest
import jax
import numpy as np
import toy_tasks
from jax.sharding import PartitionSpec as P
import seqio

from synthetic_pretraining.data import pipeline
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.training import trainer as trainer_lib

pytestmark = pytest.mark.unit

CONFIG = network.T5Config(vocab_size=128, emb_dim=16, num_heads=4, head_dim=4, mlp_dim=32,
                          num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.1)


def _trainer(devices, num_partitions, fsdp=False):
  part = partitioning.PjitPartitioner(num_partitions=num_partitions, fsdp=fsdp, devices=devices)
  optimizer = optimizers.adafactor(learning_rate=optimizers.create_learning_rate_scheduler(
      factors="constant", base_learning_rate=0.01))
  return trainer_lib.Trainer(models.EncoderDecoderModel(CONFIG), part, optimizer, seed=7)


def _batches(n):
  cfg = pipeline.DatasetConfig(toy_tasks.TOY_TASK, {"inputs": 8, "targets": 8}, "train", 8, True, 3)
  it = pipeline.CheckpointableIterator(pipeline.build_dataset(
      cfg, seed=3, shard_info=seqio.ShardInfo(0, 1), num_epochs=None))
  return [next(it) for _ in range(n)]


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_random_init_is_bitwise_identical_on_one_device_and_a_4x2_mesh():
  one = _trainer(jax.devices()[:1], 1).random_params()
  mesh = _trainer(jax.devices(), 2).random_params()
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(mesh)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert mesh["token_embedder"]["embedding"].sharding.spec == P("model", None)


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_three_steps_agree_on_one_device_and_a_4x2_mesh():
  batches = _batches(3)
  losses = []
  for devices, parts in ((jax.devices()[:1], 1), (jax.devices(), 2)):
    tr = _trainer(devices, parts)
    params = tr.random_params()
    state = trainer_lib.TrainState(0, params, tr.init_opt_state(params))
    run = []
    for batch in batches:
      state, sums = tr.train_step(state, pipeline.to_global_batch(batch, tr.partitioner))
      run.append(float(sums["loss_sum"]))
    losses.append(run)
  assert losses[0][0] != losses[0][2]
  np.testing.assert_allclose(losses[0], losses[1], rtol=2e-5)


def test_parameter_and_optimizer_state_layouts():
  tr = _trainer(jax.devices(), 2)
  sh = tr.param_shardings
  assert sh["encoder"]["layers_0"]["mlp"]["wi"]["kernel"].spec == P(None, "model")
  assert sh["encoder"]["layers_0"]["attention"]["out"]["kernel"].spec == P("model", None)
  assert tr.partitioner.mesh.shape == {"data": 4, "model": 2}
  fsdp = _trainer(jax.devices(), 2, fsdp=True).param_shardings
  assert fsdp["encoder"]["layers_0"]["mlp"]["wi"]["kernel"].spec == P("data", "model")
  # Optimizer slots follow their parameters: a full-shape slot gets the parameter's sharding.
  leaves = jax.tree_util.tree_flatten_with_path(tr.abstract_opt_state)[0]
  embed_slots = [leaf for path, leaf in leaves if "token_embedder" in jax.tree_util.keystr(path)
                 and leaf.shape == (128, 16)]
  assert embed_slots and all(s.sharding.spec == P("model", None) for s in embed_slots)


def test_num_partitions_must_divide_devices():
  try:
    partitioning.PjitPartitioner(num_partitions=3)
  except ValueError as e:
    assert "num_partitions=3" in str(e)
  else:
    raise AssertionError("expected a ValueError")
