"""Statistics and draws: exact sums, numpy agreement, mesh independence, drawn distributions."""
import functools
import math
import os
from fractions import Fraction

import jax
import numpy as np
import pytest
from flax import serialization
from flax import traverse_util
from hypothesis import assume, given, settings, strategies as st

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.stats_init import initializers
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import sampling
from synthetic_pretraining.stats_init import statistics
from synthetic_pretraining.stats_init import transform

from reference import T5X_TINY as REFERENCE

pytestmark = pytest.mark.unit
T5_1_1_TINY = network.T5Config(emb_dim=8, num_heads=4, head_dim=3, mlp_dim=16,
                               num_encoder_layers=2, num_decoder_layers=2,
                               activations=("gelu", "linear"), logits_via_embedding=False)
SMALL = network.T5Config(vocab_size=256, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=256,
                         num_encoder_layers=2, num_decoder_layers=2)


def _random_params(config, devices, num_partitions, seed=0):
  model = models.EncoderDecoderModel(config)
  part = partitioning.PjitPartitioner(num_partitions=num_partitions, devices=devices)
  shardings = part.param_shardings(model.logical_axes())
  return jax.jit(model.init_params, out_shardings=shardings)(jax.random.key(seed))


@functools.lru_cache(maxsize=None)
def _reference():
  raw = open(REFERENCE, "rb").read()
  target = serialization.msgpack_restore(raw)["optimizer"]["target"]
  return traverse_util.flatten_dict(target, sep="/")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False, width=32),
                min_size=21, max_size=21),
       st.integers(-30, 30))
def test_sums_are_exact_up_to_the_quantum(values, exponent):
  x = (np.array(values, np.float32) * np.float32(2.0 ** exponent)).reshape(3, 7)
  # XLA:CPU flushes subnormal float32 inputs to zero, so they are outside the exact range.
  assume(np.all((x == 0) | (np.abs(x) >= np.finfo(np.float32).tiny)))
  moments = statistics.parameter_moments({"x": jax.numpy.asarray(x)})["x"]
  exact = sum(Fraction(float(v)) for v in x.ravel())
  quantum = Fraction(2) ** (math.frexp(float(np.abs(x).max() or 1))[1] - 30)
  assert abs(moments.total - exact) <= 21 * quantum / 2
  pooled = statistics.pool([moments])
  assert pooled.std == pytest.approx(np.float64(x).std(), rel=1e-6, abs=float(quantum) * 8)


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_statistics_agree_with_numpy_float64_on_the_reference_checkpoint():
  flat = _reference()
  params = _random_params(T5_1_1_TINY, jax.devices(), 2)
  for scheme in ("per_param_grouping___init_mean_std", "across_ALL_layer_grouping___init_scale",
                 "across_ALL_layer_AND_per_layer_grouping___init_scale"):
    plan = transform.build_plan(scheme, REFERENCE, params,
                                keep_random=("token_embedder/embedding",))
    for group in plan.groups:
      values = np.concatenate([np.asarray(flat[m], np.float64).ravel() for m in group.members])
      assert group.count == values.size
      # Each value is rounded to the quantum 2^-30 of its parameter's largest magnitude.
      quantum = 2.0 ** (math.frexp(np.abs(values).max())[1] - 30)
      assert abs(group.mean - values.mean()) <= quantum / 2
      assert group.std == pytest.approx(values.std(), rel=1e-7, abs=1e-12)


@pytest.fixture(scope="module")
def trained_source(tmp_path_factory):
  """A checkpoint of the SMALL model whose statistics differ from a random init's."""
  params = _random_params(SMALL, jax.devices(), 1, seed=5)
  flat = traverse_util.flatten_dict(params, sep="/")
  rng = np.random.default_rng(0)
  skewed = {p: np.asarray(v) * rng.uniform(0.5, 2.0) + rng.uniform(-0.2, 0.2) for p, v in flat.items()}
  path = str(tmp_path_factory.mktemp("source") / "ckpt")
  orbax_format.save_params(path, traverse_util.unflatten_dict(skewed, sep="/"))
  return path, skewed


def _transform(source, devices, num_partitions, scheme):
  random = _random_params(SMALL, devices, num_partitions)
  init = initializers.StatisticsInitializer(scheme=scheme, checkpoint=source)
  return random, init(random, partitioner=None, seed=11), init.plan(random)


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_transform_is_bitwise_identical_on_one_device_and_on_4x2_and_8x1_meshes(trained_source):
  scheme = "per_param_grouping___init_mean_std"
  _, one, plan_one = _transform(trained_source[0], jax.devices()[:1], 1, scheme)
  for num_partitions in (2, 1):  # 4x2, 8x1
    _, mesh, plan_mesh = _transform(trained_source[0], jax.devices(), num_partitions, scheme)
    assert plan_mesh == plan_one
    for (path, a), b in zip(traverse_util.flatten_dict(one, sep="/").items(),
                            traverse_util.flatten_dict(mesh, sep="/").values()):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)
    assert mesh["encoder"]["layers_0"]["mlp"]["wi"]["kernel"].sharding.mesh.devices.size == 8


def test_draws_follow_their_group_statistics(trained_source):
  path, source = trained_source
  random, new, plan = _transform(path, jax.devices(), 2, "per_param_grouping___init_mean_std")
  flat_new = traverse_util.flatten_dict(new, sep="/")
  flat_random = traverse_util.flatten_dict(random, sep="/")
  for group in plan.groups:
    (member,) = group.members
    values = np.asarray(source[member], np.float64)
    assert group.mean == pytest.approx(values.mean(), abs=1e-9)
    assert group.std == pytest.approx(values.std(), rel=1e-6)
    drawn = np.asarray(flat_new[member], np.float64)
    if values.std() == 0:
      continue
    n = drawn.size
    assert abs(drawn.mean() - group.mean) < 5 * group.std / math.sqrt(n), member
    assert abs(drawn.std() / group.std - 1) < 5 / math.sqrt(2 * n) + 1e-6, member
    assert flat_new[member].sharding == flat_random[member].sharding
  np.testing.assert_array_equal(np.asarray(flat_new["token_embedder/embedding"]),
                                np.asarray(flat_random["token_embedder/embedding"]))


def test_init_scale_sets_norms_to_exactly_the_group_mean(trained_source):
  path, source = trained_source
  _, new, plan = _transform(path, jax.devices(), 2, "across_ALL_layer_grouping___init_scale")
  flat_new = traverse_util.flatten_dict(new, sep="/")
  for group in plan.groups:
    drawn = np.concatenate([np.asarray(flat_new[m]).ravel() for m in group.members])
    pooled = np.concatenate([source[m].ravel() for m in group.members]).astype(np.float64)
    if group.draw == procedures.CONSTANT_MEAN:
      assert np.all(drawn == np.float32(group.mean))
      assert group.mean == pytest.approx(pooled.mean(), abs=1e-9)
    else:
      assert abs(drawn.mean()) < 5 * group.std / math.sqrt(drawn.size)
      assert drawn.std() == pytest.approx(pooled.std(), rel=5 / math.sqrt(drawn.size))


def test_table3_values_land_where_they_should():
  random = _random_params(SMALL, jax.devices(), 2)
  init = initializers.CustomValueInitializer(constants={"pre_attn_ln": -0.4},
                                             stds={"dec_relpos": 0.5})
  new = traverse_util.flatten_dict(init(random, partitioner=None, seed=3), sep="/")
  old = traverse_util.flatten_dict(random, sep="/")
  changed = {p for p in new if not np.array_equal(np.asarray(new[p]), np.asarray(old[p]))}
  pre_attn = {p for p in new if p.endswith("attention_layer_norm/scale")}
  assert len(pre_attn) == 6 and changed == pre_attn | {"decoder/relpos_bias/rel_embedding"}
  for p in pre_attn:
    assert np.all(np.asarray(new[p]) == np.float32(-0.4))
  relpos = np.asarray(new["decoder/relpos_bias/rel_embedding"])
  assert relpos.std() == pytest.approx(0.5, rel=0.2) and abs(relpos.mean()) < 0.2


def test_per_path_keys_do_not_depend_on_the_plan():
  random = _random_params(SMALL, jax.devices()[:1], 1)
  flat = traverse_util.flatten_dict(random, sep="/")
  both = transform.custom_plan(random, stds={"q": 1.0, "k": 1.0})
  only_k = transform.custom_plan(random, stds={"k": 1.0})
  a = sampling.draw_members(both, flat, seed=1)
  b = sampling.draw_members(only_k, flat, seed=1)
  c = sampling.draw_members(only_k, flat, seed=2)
  for p in b:
    np.testing.assert_array_equal(np.asarray(a[p]), np.asarray(b[p]))
    assert not np.array_equal(np.asarray(b[p]), np.asarray(c[p]))
