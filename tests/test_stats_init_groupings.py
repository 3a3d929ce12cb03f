"""Groupings and schemes: the paper's nine init_ids on T5 1.0 small, T5 1.1 names, errors."""
import functools

import jax
import pytest
from flax import traverse_util

from synthetic_pretraining.model import models
from synthetic_pretraining.model import network
from synthetic_pretraining.stats_init import errors
from synthetic_pretraining.stats_init import groupings
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import transform

pytestmark = pytest.mark.unit

N_MEAN, N_ZERO, CONST = procedures.NORMAL_MEAN_STD, procedures.NORMAL_ZERO_STD, procedures.CONSTANT_MEAN


@functools.lru_cache(maxsize=None)
def _paths(**config):
  model = models.EncoderDecoderModel(network.T5Config(**config))
  return tuple(traverse_util.flatten_dict(jax.eval_shape(model.init_params, jax.random.key(0)),
                                          sep="/"))


T5_1_1 = dict(emb_dim=8, num_heads=4, head_dim=3, mlp_dim=16, num_encoder_layers=2,
              num_decoder_layers=2, activations=("gelu", "linear"), logits_via_embedding=False)

# T5 1.0 small, written out independently of the rules.
L = range(6)
ENC_ATTN = [f"encoder/layers_{i}/attention" for i in L]
DEC_SELF = [f"decoder/layers_{i}/self_attention" for i in L]
DEC_CROSS = [f"decoder/layers_{i}/encoder_decoder_attention" for i in L]
ATTN_BLOCKS = ENC_ATTN + DEC_SELF + DEC_CROSS
PROJ = ("query", "key", "value", "out")
ATTN_KERNELS = [f"{b}/{p}/kernel" for b in ATTN_BLOCKS for p in PROJ]
MLP_KERNELS = [f"{s}/layers_{i}/mlp/{w}/kernel" for s in ("encoder", "decoder") for i in L
               for w in ("wi", "wo")]
PRE_ATTN_LN = ([f"encoder/layers_{i}/pre_attention_layer_norm/scale" for i in L] +
               [f"decoder/layers_{i}/pre_{k}_attention_layer_norm/scale" for i in L
                for k in ("self", "cross")])
PRE_MLP_LN = [f"{s}/layers_{i}/pre_mlp_layer_norm/scale" for s in ("encoder", "decoder") for i in L]
FINAL_LN = ["encoder/encoder_norm/scale", "decoder/decoder_norm/scale"]
RELPOS = ["encoder/relpos_bias/rel_embedding", "decoder/relpos_bias/rel_embedding"]
NORMS = PRE_ATTN_LN + PRE_MLP_LN + FINAL_LN
ALL_BUT_EMBEDDING = ATTN_KERNELS + MLP_KERNELS + NORMS + RELPOS


def _layer(stack, i, kind):
  prefix = f"{stack}/layers_{i}/"
  if kind == "kernels":
    return [p for p in ATTN_KERNELS + MLP_KERNELS if p.startswith(prefix)]
  return [p for p in PRE_ATTN_LN + PRE_MLP_LN if p.startswith(prefix)]


def _singletons(paths, draw):
  return [([p], draw(p) if callable(draw) else draw) for p in paths]


EXPECTED = {
    "per_param_grouping___init_mean_std": _singletons(ALL_BUT_EMBEDDING, N_MEAN),
    "per_param_grouping___init_scale": _singletons(
        ALL_BUT_EMBEDDING, lambda p: CONST if p in NORMS else N_ZERO),
    "across_ALL_layer_AND_per_layer_grouping___init_scale": [
        (ATTN_KERNELS + MLP_KERNELS, N_ZERO), (NORMS, CONST), (RELPOS, N_ZERO)],
    "preattnln_per_param_grouping___init_scale": _singletons(PRE_ATTN_LN, CONST),
    "across_ALL_layer_grouping___init_scale": [
        ([p for p in ATTN_KERNELS if f"/{proj}/" in p], N_ZERO) for proj in PROJ] + [
        (MLP_KERNELS, N_ZERO), (PRE_MLP_LN, CONST), (PRE_ATTN_LN, CONST), (FINAL_LN, CONST),
        (RELPOS, N_ZERO)],
    "per_layer_grouping___init_scale": [
        (_layer(s, i, k), N_ZERO if k == "kernels" else CONST)
        for s in ("encoder", "decoder") for i in L for k in ("kernels", "norms")] +
        _singletons(FINAL_LN, CONST) + _singletons(RELPOS, N_ZERO),
    "premlpln_per_param_grouping___init_scale": _singletons(PRE_MLP_LN, CONST),
    "qkvo_per_param_grouping___init_scale": _singletons(ATTN_KERNELS, N_ZERO),
    "mlp_per_param_grouping___init_scale": _singletons(MLP_KERNELS, N_ZERO),
}
GROUP_COUNTS = {"per_param_grouping___init_mean_std": 130, "per_param_grouping___init_scale": 130,
                "across_ALL_layer_AND_per_layer_grouping___init_scale": 3,
                "preattnln_per_param_grouping___init_scale": 18,
                "across_ALL_layer_grouping___init_scale": 9, "per_layer_grouping___init_scale": 28,
                "premlpln_per_param_grouping___init_scale": 12,
                "qkvo_per_param_grouping___init_scale": 72,
                "mlp_per_param_grouping___init_scale": 24}


def _as_sets(groups):
  return sorted((tuple(sorted(members)), draw) for members, draw in groups)


def test_small_has_the_131_t5x_names():
  assert sorted(_paths()) == sorted(ALL_BUT_EMBEDDING + ["token_embedder/embedding"])


@pytest.mark.parametrize("scheme", procedures.PAPER_SCHEMES)
def test_paper_schemes_give_the_groups_of_paper_facts_9_2(scheme):
  planned = procedures.plan_groups(scheme, _paths())
  assert len(planned) == GROUP_COUNTS[scheme]
  assert _as_sets((g.members, d) for g, d in planned) == _as_sets(EXPECTED[scheme])
  assert all("token_embedder/embedding" not in g.members for g, _ in planned)


def test_t5_1_1_names_group_correctly():
  paths = _paths(**T5_1_1)
  mlp = procedures.plan_groups("mlp_per_param_grouping___init_scale", paths)
  assert sorted(g.members[0] for g, _ in mlp) == sorted(
      f"{s}/layers_{i}/mlp/{w}/kernel" for s in ("encoder", "decoder") for i in range(2)
      for w in ("wi_0", "wi_1", "wo"))
  across = {g.name: g for g, _ in procedures.plan_groups("across_ALL_layer_grouping___init_scale",
                                                         paths)}
  assert len(across["mlp"].members) == 12
  assert all(p in paths for p in across["mlp"].members)
  whole = procedures.plan_groups("across_ALL_layer_AND_per_layer_grouping___init_scale", paths)
  grouped = {m for g, _ in whole for m in g.members}
  # The vocabulary-sized output projection stays random like the embedding, by default ...
  assert set(paths) - grouped == set(groupings.EMBEDDINGS) & set(paths)
  per_param = procedures.plan_groups("per_param_grouping___init_scale", paths,
                                     keep_random=("token_embedder/embedding",))
  # ... and is an ordinary weight when only the token embedding is kept random.
  assert (("decoder/logits_dense/kernel",), N_ZERO) in [(g.members, d) for g, d in per_param]


def test_no_hard_coded_depth():
  paths = _paths(num_encoder_layers=12, num_decoder_layers=11, emb_dim=8, num_heads=2,
                 head_dim=4, mlp_dim=16)
  per_layer = {g.name: g.members for g, _ in
               procedures.plan_groups("per_layer_grouping___init_scale", paths)}
  assert len(per_layer) == 2 * (12 + 11) + 4
  assert per_layer["layer_kernels[stack=encoder,layer=1]"] == tuple(
      f"encoder/layers_1/{b}/kernel" for b in
      ("attention/key", "attention/out", "attention/query", "attention/value", "mlp/wi", "mlp/wo"))
  assert all("layers_10" in m for m in per_layer["layer_norms[stack=decoder,layer=10]"])


def test_unknown_scheme_lists_the_valid_ones():
  with pytest.raises(errors.UnknownSchemeError) as e:
    procedures.parse_scheme("per_param_grouping___init_scales")
  assert "Did you mean 'per_param_grouping___init_scale'" in str(e.value)
  for scheme in procedures.PAPER_SCHEMES:
    assert scheme in str(e.value)


def test_rule_matching_nothing_or_twice_is_an_error():
  paths = _paths(**T5_1_1)
  with pytest.raises(errors.GroupingError, match="matches no parameter"):
    groupings.Grouping((groupings.Rule("wi", groupings.LAYER + "/mlp/wi/kernel"),)).groups(paths)
  overlapping = groupings.Grouping((groupings.Rule("norms", groupings.ANY_NORM),
                                    groupings.Rule("final", groupings.FINAL_NORM)))
  with pytest.raises(errors.GroupingError, match="one group only"):
    overlapping.groups(paths)
  with pytest.raises(errors.GroupingError, match="not named groups"):
    groupings.Rule("bad", groupings.RELPOS, by=("layer",))


def test_init_scale_refuses_mixed_groups_and_registry_is_extensible():
  groupings.register_grouping("test_mixed", [groupings.Rule("layer", groupings.LAYER + "/.*")])
  try:
    assert "test_mixed_grouping___init_mean_std" in procedures.scheme_names()
    with pytest.raises(errors.GroupingError, match="mixes layer norms"):
      procedures.plan_groups("test_mixed_grouping___init_scale", _paths(**T5_1_1))
    assert len(procedures.plan_groups("test_mixed_grouping___init_mean_std", _paths(**T5_1_1))) == 1
  finally:
    del groupings.GROUPINGS["test_mixed"]


def test_custom_value_sets():
  abstract = {p: jax.ShapeDtypeStruct((2,), "float32") for p in _paths()}
  plan = transform.custom_plan(abstract, constants={"pre_self_attn_ln": -0.4,
                                                    "pre_cross_attn_ln": 2.0},
                               stds={"enc_relpos": 0.5, r"decoder/layers_\d+/mlp/wo/kernel": 0.1})
  by_name = {g.name: g for g in plan.groups}
  self_ln = by_name["constant:pre_self_attn_ln"]
  assert len(self_ln.members) == 12 and self_ln.mean == -0.4 and self_ln.draw == CONST
  assert set(self_ln.members) | set(by_name["constant:pre_cross_attn_ln"].members) == set(PRE_ATTN_LN)
  assert by_name["std:enc_relpos"].members == ("encoder/relpos_bias/rel_embedding",)
  assert len(by_name[r"std:decoder/layers_\d+/mlp/wo/kernel"].members) == 6
  with pytest.raises(errors.GroupingError, match="matches no parameter"):
    transform.custom_plan(abstract, constants={"pre_atn_ln": 0.4})
  with pytest.raises(errors.GroupingError, match="set by both"):
    transform.custom_plan(abstract, constants={"pre_attn_ln": 0.4, "pre_cross_attn_ln": 1.0})
