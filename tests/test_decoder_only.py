"""Decoder-only models: t5x's parameter layout, the causal and prefix masks, the loss on targets
only, decoding conditioned on the prefix, scan/remat, 1 vs 8 devices, the pipeline's decoder-only
features, statistics-only groupings on the decoder-only tree and one tiny train + infer of `set`.
"""
import dataclasses
import json
import os

import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf
from flax import traverse_util

import toy_tasks
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.stats_init import groupings
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.training import compiled_steps

pytestmark = pytest.mark.unit

CONFIG = network.T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                          num_encoder_layers=0, num_decoder_layers=2, dropout_rate=0.0)
NO_EOS = 1000  # an id no model here emits: decoding runs to its full length


def _model(**changes):
  return models.DecoderOnlyModel(dataclasses.replace(CONFIG, **changes))


def _random_params(model, seed=0):
  """Parameters drawn N(0, 1) everywhere: an untrained model whose argmax varies by position
  (t5x's initialisation makes a 2-layer model emit one token everywhere)."""
  params = model.init_params(jax.random.key(seed))
  keys = iter(jax.random.split(jax.random.key(seed + 1), len(jax.tree.leaves(params))))
  return jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape), params)


def _prefix_lm_row(inputs, targets, length):
  """One unpacked row of seqio's PrefixLMFeatureConverter, built by hand."""
  tokens = list(inputs) + list(targets)
  row = {"decoder_target_tokens": tokens, "decoder_input_tokens": [0] + tokens[:-1],
         "decoder_loss_weights": [0] * len(inputs) + [1] * len(targets),
         "decoder_causal_attention": [1] * (len(inputs) + 1) + [0] * (len(targets) - 1)}
  return {k: np.asarray([v + [0] * (length - len(v))], np.int32) for k, v in row.items()}


def test_parameter_tree_is_t5x_decoder_only_layout():
  tied = traverse_util.flatten_dict(jax.eval_shape(_model().init_params, jax.random.key(0)),
                                    sep="/")
  layer = ["pre_self_attention_layer_norm/scale", "self_attention/query/kernel",
           "self_attention/key/kernel", "self_attention/value/kernel", "self_attention/out/kernel",
           "pre_mlp_layer_norm/scale", "mlp/wi/kernel", "mlp/wo/kernel"]
  expected = {f"decoder/layers_{i}/{p}" for i in range(2) for p in layer} | {
      "decoder/token_embedder/embedding", "decoder/relpos_bias/rel_embedding",
      "decoder/decoder_norm/scale"}
  assert set(tied) == expected
  assert tied["decoder/token_embedder/embedding"].shape == (64, 16)
  untied = traverse_util.flatten_dict(jax.eval_shape(
      _model(logits_via_embedding=False, activations=("gelu", "linear")).init_params,
      jax.random.key(0)), sep="/")
  assert untied["decoder/logits_dense/kernel"].shape == (16, 64)
  assert "decoder/layers_1/mlp/wi_1/kernel" in untied
  specs = traverse_util.flatten_dict(_model().logical_axes(), sep="/")
  assert tuple(specs["decoder/layers_0/self_attention/query/kernel"]) == ("embed", "joined_kv")
  assert tuple(specs["decoder/token_embedder/embedding"]) == ("vocab", "embed")


def test_causal_mask_later_tokens_do_not_change_earlier_logits():
  model = _model()
  params = _random_params(model)
  tokens = np.asarray([[0, 5, 9, 12, 7, 3, 8]], np.int32)
  changed = tokens.copy()
  changed[0, 4] = 30
  batch = lambda t: {"decoder_input_tokens": t, "decoder_target_tokens": t}  # noqa: E731
  a = np.asarray(model.logits(params, batch(tokens)))
  b = np.asarray(model.logits(params, batch(changed)))
  np.testing.assert_array_equal(a[0, :4], b[0, :4])
  assert np.abs(a[0, 4:] - b[0, 4:]).max() > 1e-3


def test_prefix_positions_attend_bidirectionally_targets_causally():
  model = _model()
  params = _random_params(model)
  base = _prefix_lm_row([5, 9, 12, 1], [7, 3, 1], 8)
  logits = lambda b: np.asarray(model.logits(params, b))[0]  # noqa: E731
  # A later prefix token changes the logits of every earlier prefix position ...
  prefix_changed = _prefix_lm_row([5, 9, 30, 1], [7, 3, 1], 8)
  a, b = logits(base), logits(prefix_changed)
  assert all(np.abs(a[i] - b[i]).max() > 1e-3 for i in range(3))
  # ... a target token none before it (the prefix included) ...
  target_changed = _prefix_lm_row([5, 9, 12, 1], [7, 30, 1], 8)
  c = logits(target_changed)
  np.testing.assert_array_equal(a[:6], c[:6])
  assert np.abs(a[6] - c[6]).max() > 1e-3
  # ... and with inputs_bidirectional_attention=False the prefix is causal too.
  causal = models.DecoderOnlyModel(CONFIG, inputs_bidirectional_attention=False)
  d = np.asarray(causal.logits(params, prefix_changed))[0]
  e = np.asarray(causal.logits(params, base))[0]
  np.testing.assert_array_equal(d[:3], e[:3])


def test_loss_counts_targets_only_and_metrics_match_the_encoder_decoder_interface():
  model = models.DecoderOnlyModel(CONFIG, z_loss=0.0)
  params = _random_params(model)
  batch = _prefix_lm_row([5, 9, 12, 1], [7, 3, 1], 9)
  loss, sums = model.loss_and_metrics(params, batch)
  logits = np.asarray(model.logits(params, batch), np.float64)[0]
  log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                                                                 keepdims=True))
  log_probs -= logits.max(-1, keepdims=True)
  expected = -sum(log_probs[i, batch["decoder_target_tokens"][0, i]] for i in (4, 5, 6))
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(sums["num_tokens"]) == 3 and float(sums["num_all_tokens"]) == 9
  encdec = models.EncoderDecoderModel(dataclasses.replace(CONFIG, num_encoder_layers=1))
  enc_batch = {"encoder_input_tokens": np.ones((1, 3), np.int32),
               "decoder_input_tokens": np.ones((1, 3), np.int32),
               "decoder_target_tokens": np.ones((1, 3), np.int32)}
  _, enc_sums = encdec.loss_and_metrics(encdec.init_params(jax.random.key(0)), enc_batch)
  assert set(sums) == set(enc_sums)
  summary = models.summarize_metrics(jax.device_get(sums))
  assert summary["num_tokens"] == 3


def test_packed_rows_score_as_if_alone():
  model = models.DecoderOnlyModel(CONFIG, z_loss=0.0)
  params = _random_params(model)
  first, second = _prefix_lm_row([5, 9, 1], [7, 1], 5), _prefix_lm_row([8, 4, 6, 1], [3, 1], 6)
  packed = {k: np.concatenate([first[k], second[k]], axis=1) for k in first}
  packed["decoder_segment_ids"] = np.asarray([[1] * 5 + [2] * 6], np.int32)
  packed["decoder_input_tokens"][0, 5] = 0  # each packed example starts from BOS
  alone = sum(float(model.loss_and_metrics(params, b)[0]) for b in (first, second))
  np.testing.assert_allclose(float(model.loss_and_metrics(params, packed)[0]), alone, rtol=1e-5)


def _teacher_forced_argmax(model, params, prefix, outputs):
  """argmax of the teacher-forced logits at the positions that predict `outputs` after `prefix`
  (position len(prefix) + j reads outputs[j - 1], or the prefix's last token, and predicts
  outputs[j])."""
  row = _prefix_lm_row(prefix, list(outputs), len(prefix) + len(outputs))
  logits = np.asarray(model.logits(params, row))[0]
  return logits[len(prefix):].argmax(-1)


PREFIXES = [[5, 6, 7, 1], [9, 8, 1], [11, 1]]


def _prefix_batch():
  batch = np.zeros((3, 6), np.int32)  # right-padded to the inputs length, as inference hands them
  for r, p in enumerate(PREFIXES):
    batch[r, :len(p)] = p
  return batch


@pytest.mark.parametrize("bidirectional", [True, False])
def test_greedy_decode_conditioned_on_the_prefix_equals_teacher_forced_argmax(bidirectional):
  model = models.DecoderOnlyModel(CONFIG, inputs_bidirectional_attention=bidirectional)
  params = _random_params(model)
  out = np.asarray(jax.jit(lambda p, t: model.predict_batch(
      p, {"encoder_input_tokens": t}, max_decode_length=5, eos_id=NO_EOS))(params, _prefix_batch()))
  assert len({tuple(r) for r in out}) == 3 and len(set(out.ravel())) > 3
  for prefix, decoded in zip(PREFIXES, out):
    np.testing.assert_array_equal(_teacher_forced_argmax(model, params, prefix, decoded), decoded)


def test_decoding_stops_at_eos_and_xla_attention_decodes_the_same():
  model = _model()
  params = _random_params(model)
  greedy = np.asarray(model.predict_batch(params, {"encoder_input_tokens": _prefix_batch()},
                                          max_decode_length=5, eos_id=NO_EOS))
  eos = int(greedy[0, 1])
  stopped = np.asarray(model.predict_batch(params, {"encoder_input_tokens": _prefix_batch()},
                                           max_decode_length=5, eos_id=eos))
  first_eos = list(greedy[0]).index(eos)
  np.testing.assert_array_equal(stopped[0, :first_eos + 1], greedy[0, :first_eos + 1])
  assert not stopped[0, first_eos + 1:].any()
  xla = _model(attention_implementation="xla")
  np.testing.assert_array_equal(
      np.asarray(xla.predict_batch(params, {"encoder_input_tokens": _prefix_batch()},
                                   max_decode_length=5, eos_id=NO_EOS)), greedy)


def _log_prob(model, params, prefix, outputs):
  row = _prefix_lm_row(prefix, list(outputs), len(prefix) + len(outputs))
  logits = np.asarray(model.logits(params, row), np.float64)[0, len(prefix):]
  logits -= logits.max(-1, keepdims=True)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return sum(log_probs[j, t] for j, t in enumerate(outputs))


def test_beam_search_conditions_on_the_prefix_and_scores_at_least_greedy():
  model = _model()
  params = _random_params(model, seed=3)
  decode = lambda beams: np.asarray(jax.jit(lambda p, t: model.predict_batch(  # noqa: E731
      p, {"encoder_input_tokens": t}, max_decode_length=4, num_decodes=beams,
      eos_id=NO_EOS))(params, _prefix_batch()))
  greedy, one_beam, beams = decode(1), decode(1), decode(4)
  np.testing.assert_array_equal(greedy, one_beam)
  for prefix, g, b in zip(PREFIXES, greedy, beams):
    # Every hypothesis has the full length, so the best beam has the highest log-probability the
    # search found, and the greedy path's is never above it.
    assert _log_prob(model, params, prefix, b) >= _log_prob(model, params, prefix, g) - 1e-4


@pytest.mark.parametrize("changes", [
    {"remat_policy": "full"}, {"scan_layers": True}, {"scan_layers": True,
                                                      "remat_policy": "dots_saveable"}])
def test_scan_and_remat_equal_the_layer_loop(changes):
  plain, other = _model(dropout_rate=0.0), _model(dropout_rate=0.0, **changes)
  params = plain.init_params(jax.random.key(0))
  assert jax.tree.structure(params) == jax.tree.structure(other.init_params(jax.random.key(0)))
  first, second = _prefix_lm_row([5, 9, 1], [7, 1], 7), _prefix_lm_row([8, 4, 6, 1], [3, 1], 7)
  batch = {k: np.concatenate([first[k], second[k]]) for k in first}
  grad = lambda m: jax.jit(jax.value_and_grad(  # noqa: E731
      lambda p: m.loss_and_metrics(p, batch)[0]))(params)
  (la, ga), (lb, gb) = grad(plain), grad(other)
  np.testing.assert_allclose(float(la), float(lb), rtol=1e-5)
  for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5)


def _decoder_only_batches(n, pack):
  cfg = pipeline.DatasetConfig(toy_tasks.TOY_TASK, {"inputs": 10, "targets": 10}, "train", 8,
                               True, 3, pack=pack)
  it = pipeline.CheckpointableIterator(pipeline.build_dataset(
      cfg, seed=3, shard_info=seqio.ShardInfo(0, 1), num_epochs=None))
  return [next(it) for _ in range(n)]


def _use_decoder_only_features():
  import gin  # pylint: disable=import-outside-toplevel
  gin.bind_parameter("synthetic_pretraining.data.feature_converter.architecture", "decoder_only")


@pytest.mark.parametrize("pack", [False, True])
def test_pipeline_makes_prefix_lm_features_of_an_inputs_targets_task(pack):
  _use_decoder_only_features()
  batch = _decoder_only_batches(1, pack)[0]
  expected = {"decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights",
              "decoder_causal_attention"}
  if pack:
    expected |= {"decoder_segment_ids", "decoder_positions"}
  assert set(batch) == expected
  assert batch["decoder_target_tokens"].shape == (8, 20)
  targets, inputs = batch["decoder_target_tokens"], batch["decoder_input_tokens"]
  for row in range(8):
    segments = batch["decoder_segment_ids"][row] if pack else (targets[row] > 0).astype(int)
    for segment in set(segments[segments > 0]):
      where = np.flatnonzero(segments == segment)
      tokens = targets[row, where]
      # toy_reverse: inputs x + EOS, targets reversed(x) + EOS.
      n = (len(where) - 2) // 2
      assert list(tokens[n + 1:-1]) == list(tokens[:n][::-1]) and tokens[n] == 1
      assert list(batch["decoder_loss_weights"][row, where]) == [0] * (n + 1) + [1] * (n + 1)
      assert list(batch["decoder_causal_attention"][row, where]) == [1] * (n + 2) + [0] * n
      assert inputs[row, where[0]] == 0
      np.testing.assert_array_equal(inputs[row, where[1:]], tokens[:-1])


_LM_TASK = "toy_lm_targets_only"


def _register_targets_only_task():
  if _LM_TASK in seqio.TaskRegistry.names():
    return
  vocabulary = seqio.PassThroughVocabulary(64, eos_id=1)

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.range(1000).map(
        lambda i: {"targets": tf.cast(tf.range(3 + i % 4) + 2, tf.int32)})

  seqio.TaskRegistry.add(
      _LM_TASK, source=seqio.FunctionDataSource(dataset_fn, splits=("train",)),
      preprocessors=[seqio.preprocessors.append_eos_after_trim],
      output_features={"targets": seqio.Feature(vocabulary, add_eos=True)})


@pytest.mark.parametrize("pack", [False, True])
def test_pipeline_makes_causal_lm_features_of_a_targets_only_task(pack):
  _use_decoder_only_features()
  _register_targets_only_task()
  cfg = pipeline.DatasetConfig(_LM_TASK, {"inputs": 4, "targets": 12}, "train", 2, False, 0,
                               pack=pack)
  batch = next(iter(pipeline.build_dataset(cfg, seed=0, shard_info=seqio.ShardInfo(0, 1),
                                           num_epochs=1).as_numpy_iterator()))
  assert "decoder_causal_attention" not in batch
  assert batch["decoder_target_tokens"].shape == (2, 12)
  np.testing.assert_array_equal(batch["decoder_target_tokens"][0, :4], [2, 3, 4, 1])
  np.testing.assert_array_equal(batch["decoder_loss_weights"][0, :4], [1, 1, 1, 1])
  # A causal LM trains on it unchanged.
  model = _model()
  loss, sums = model.loss_and_metrics(model.init_params(jax.random.key(0)), batch)
  assert np.isfinite(float(loss)) and float(sums["num_tokens"]) == batch[
      "decoder_loss_weights"].sum()


def test_the_encoder_decoder_layout_stays_the_default_and_a_mismatch_is_one_line():
  batch = _decoder_only_batches(1, False)
  assert "encoder_input_tokens" in batch[0]
  from synthetic_pretraining import errors  # pylint: disable=import-outside-toplevel
  with pytest.raises(errors.UsageError, match="architecture = 'decoder_only'"):
    _model().loss_and_metrics(_model().init_params(jax.random.key(0)), batch[0])


def _trainer(devices, num_partitions, scan=False):
  part = partitioning.PjitPartitioner(num_partitions=num_partitions, devices=devices)
  optimizer = optimizers.adafactor(learning_rate=optimizers.create_learning_rate_scheduler(
      factors="constant", base_learning_rate=0.01))
  config = dataclasses.replace(CONFIG, vocab_size=128, num_heads=4, head_dim=4, dropout_rate=0.1,
                               scan_layers=scan)
  return compiled_steps.Trainer(models.DecoderOnlyModel(config), part, optimizer, seed=7)


@pytest.mark.e2e  # three compiled train steps on two meshes
def test_three_steps_agree_on_one_device_and_a_4x2_mesh():
  _use_decoder_only_features()
  batches = _decoder_only_batches(3, pack=True)
  losses = []
  for devices, parts in ((jax.devices()[:1], 1), (jax.devices()[:8], 2)):
    tr = _trainer(devices, parts)
    params = tr.random_params()
    state = compiled_steps.TrainState(0, params, tr.init_opt_state(params))
    run = []
    for batch in batches:
      state, sums = tr.train_step(state, pipeline.to_global_batch(batch, tr.partitioner))
      run.append(float(sums["loss_sum"]))
    losses.append(run)
    if parts == 2:
      embedding = state.params["decoder"]["token_embedder"]["embedding"]
      assert embedding.sharding.spec == jax.sharding.PartitionSpec("model", None)
  assert losses[0][0] != losses[0][2]
  np.testing.assert_allclose(losses[0], losses[1], rtol=2e-5)


def _paths(model):
  return tuple(traverse_util.flatten_dict(jax.eval_shape(model.init_params, jax.random.key(0)),
                                          sep="/"))


def test_every_paper_scheme_groups_the_decoder_only_tree():
  paths = _paths(_model(num_decoder_layers=3))
  for scheme in procedures.PAPER_SCHEMES:
    assert procedures.plan_groups(scheme, paths), scheme


def test_paper_groupings_carry_over_by_parameter_kind_and_layer():
  paths = _paths(_model(num_decoder_layers=3))
  plan = lambda name: {g.name: g.members for g, _ in procedures.plan_groups(  # noqa: E731
      f"{name}_grouping___init_scale", paths)}
  grouped = {m for members in plan("across_ALL_layer_AND_per_layer").values() for m in members}
  # The token embedding (under decoder/) stays random, as the encoder-decoder's does.
  assert set(paths) - grouped == {"decoder/token_embedder/embedding"}
  across = plan("across_ALL_layer")
  assert across["attention[proj=query]"] == tuple(
      f"decoder/layers_{i}/self_attention/query/kernel" for i in range(3))
  assert across["final_norms"] == ("decoder/decoder_norm/scale",)
  assert across["relpos"] == ("decoder/relpos_bias/rel_embedding",)
  per_layer = plan("per_layer")
  assert per_layer["layer_kernels[stack=decoder,layer=2]"] == tuple(
      f"decoder/layers_2/{p}/kernel" for p in ("mlp/wi", "mlp/wo", "self_attention/key",
                                               "self_attention/out", "self_attention/query",
                                               "self_attention/value"))
  assert not any("stack=encoder" in name for name in per_layer)
  assert "decoder/token_embedder/embedding" in groupings.EMBEDDINGS


def test_decoder_only_flops_count_one_stack_without_cross_attention():
  from synthetic_pretraining.model import flops  # pylint: disable=import-outside-toplevel
  cfg = CONFIG
  layer = 10 * (4 * 16 * 16 + 2 * 16 * 32) + 2 * 10 * 10 * 16
  assert flops.decoder_only_forward_flops(cfg, 3, 10) == 2.0 * 3 * (2 * layer + 10 * 16 * 64)


@pytest.mark.e2e  # the train, eval and infer binaries on the tiny decoder-only model
def test_tiny_decoder_only_trains_evaluates_and_infers_set(tmp_path):
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.training import evaluation  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.training import inference  # pylint: disable=import-outside-toplevel
  from records import metric_records  # pylint: disable=import-outside-toplevel
  model_dir = str(tmp_path / "run")
  model = ["--gin_file=gin/models/decoder_only/cpu.gin", "--gin.network.T5Config.emb_dim=32",
           "--gin.network.T5Config.mlp_dim=64", "--gin.network.T5Config.num_decoder_layers=1"]
  task = ["--gin.MIXTURE_OR_TASK_NAME='set'", "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, "
          "'targets': 64}", "--gin.BATCH_SIZE=8", "--gin_file=gin/runs/cpu_demo.gin"]
  assert train.main([*model, "--gin_file=gin/runs/finetune.gin", *task,
                     f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=4", "--gin.PACK=True",
                     "--gin.EVAL_PERIOD=4", "--gin.EVAL_STEPS=1", "--gin.NUM_DECODES=1",
                     "--gin.EVALUATOR_NUM_EXAMPLES=8", "--gin.LOG_PERIOD=2"]) == 0
  train_records = metric_records(model_dir, "train")
  assert [r["step"] for r in train_records] == [2, 4]
  assert all(np.isfinite(r["loss"]) for r in train_records)
  assert metric_records(model_dir, "eval")[-1]["accuracy"] >= 0
  assert "sequence_accuracy" in metric_records(model_dir, "infer")[-1]
  config = open(os.path.join(model_dir, "config.gin")).read()
  assert "DecoderOnlyModel" in config and "'decoder_only'" in config
  from synthetic_pretraining import inspect_checkpoint  # pylint: disable=import-outside-toplevel
  step, params = inspect_checkpoint.load(model_dir)
  assert step == 4 and "decoder/layers_0/self_attention/query/kernel" in dict(params)
  assert not any(name.startswith("encoder/") for name in dict(params))
  eval_dir, infer_dir = str(tmp_path / "eval"), str(tmp_path / "infer")
  # eval follows the run's config.gin (model, feature layout, task); infer is told the model.
  # (The eval and infer binaries are train.main with these entry points.)
  assert train.main(["--gin_file=gin/runs/eval.gin", "--gin.BATCH_SIZE=8",
                     f"--gin.CHECKPOINT_PATH='{model_dir}'", "--gin.EVAL_STEPS=1",
                     f"--gin.EVAL_OUTPUT_DIR='{eval_dir}'"],
                    entry_point=evaluation.evaluate_checkpoint) == 0
  assert metric_records(eval_dir, "eval")[0]["num_tokens"] > 0
  assert train.main([*model, "--gin_file=gin/runs/infer.gin", *task,
                     f"--gin.CHECKPOINT_PATH='{model_dir}'", f"--gin.INFER_OUTPUT_DIR='{infer_dir}'",
                     "--gin.NUM_DECODES=2", "--gin.EVALUATOR_NUM_EXAMPLES=8",
                     "--gin.SPLIT='validation'"],
                    entry_point=inference.infer) == 0
  rows = [json.loads(line) for line in open(os.path.join(
      infer_dir, "inference_eval", "set-000004.jsonl"))]
  assert len(rows) == 8 and all({"input", "target", "prediction"} <= set(r) for r in rows)


def _t5x_decoder_only_network(t5x_dir):
  """t5x's `examples/decoder_only/network.py`, loaded from its source file alone (t5x's package
  __init__ needs airio, clu, ...; these two files need only flax and jax)."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  import types  # pylint: disable=import-outside-toplevel
  folder = os.path.join(t5x_dir, "t5x", "examples", "decoder_only")
  saved = {k: sys.modules.get(k) for k in ("t5x", "t5x.examples", "t5x.examples.decoder_only",
                                           "t5x.examples.decoder_only.layers")}
  try:
    for name in ("t5x", "t5x.examples", "t5x.examples.decoder_only"):
      sys.modules[name] = types.ModuleType(name)
    loaded = {}
    for name in ("layers", "network"):
      spec = importlib.util.spec_from_file_location(f"t5x.examples.decoder_only.{name}",
                                                    os.path.join(folder, f"{name}.py"))
      module = importlib.util.module_from_spec(spec)
      sys.modules[spec.name] = module
      setattr(sys.modules["t5x.examples.decoder_only"], name, module)
      spec.loader.exec_module(module)
      loaded[name] = module
    return loaded["network"]
  finally:
    for name, module in saved.items():
      if module is None:
        sys.modules.pop(name, None)
      else:
        sys.modules[name] = module


@pytest.mark.parametrize("activations,tied", [(("relu",), True), (("gelu", "linear"), False)])
def test_same_tree_and_logits_as_t5x_decoder_only_network(activations, tied):
  """t5x's own decoder-only network, given our parameters, computes our prefix-LM logits."""
  from test_t5x_interop import find_t5x  # pylint: disable=import-outside-toplevel
  t5x_network = _t5x_decoder_only_network(find_t5x())
  ours = models.DecoderOnlyModel(dataclasses.replace(CONFIG, activations=activations,
                                                     logits_via_embedding=tied))
  theirs = t5x_network.DecoderWrapper(t5x_network.TransformerConfig(
      vocab_size=64, emb_dim=16, num_heads=2, num_layers=2, head_dim=8, mlp_dim=32,
      mlp_activations=activations, dropout_rate=0.0, logits_via_embedding=tied))
  tokens = np.ones((1, 4), np.int32)
  their_params = jax.eval_shape(lambda: theirs.init(jax.random.key(0), tokens, tokens,
                                                    enable_dropout=False))["params"]
  shapes = lambda tree: {k: tuple(v.shape) for k, v in  # noqa: E731
                         traverse_util.flatten_dict(tree, sep="/").items()}
  params = _random_params(ours)
  assert shapes(params) == shapes(their_params)
  first, second = _prefix_lm_row([5, 9, 12, 1], [7, 3, 1], 7), _prefix_lm_row([8, 1], [4, 1], 4)
  # Row 0: the first example alone; row 1: both packed (segments 1 and 2), padded to 12.
  batch = {k: np.zeros((2, 12), np.int32) for k in first}
  for k in first:
    batch[k][0, :7] = first[k][0]
    batch[k][1, :11] = np.concatenate([first[k][0], second[k][0]])
  batch["decoder_segment_ids"] = np.asarray([[1] * 7 + [0] * 5, [1] * 7 + [2] * 4 + [0]],
                                            np.int32)
  expected = theirs.apply({"params": params}, batch["decoder_input_tokens"],
                          batch["decoder_target_tokens"],
                          decoder_segment_ids=batch["decoder_segment_ids"],
                          decoder_causal_attention=batch["decoder_causal_attention"],
                          enable_dropout=False)
  weights = batch["decoder_loss_weights"][..., None] > 0  # t5x also masks padding queries
  np.testing.assert_allclose(np.where(weights, np.asarray(ours.logits(params, batch)), 0),
                             np.where(weights, np.asarray(expected), 0), rtol=1e-4, atol=1e-4)


@pytest.mark.e2e  # AOT-compiles a train and a decode step on the 8 CPU devices
def test_precompile_compiles_decoder_only_train_and_decode_steps(tmp_path, capsys):
  from synthetic_pretraining import precompile  # pylint: disable=import-outside-toplevel
  code = precompile.main(["--output", str(tmp_path), "--topology=cpu",
                          "--gin_file=gin/models/decoder_only/tiny.gin",
                          "--gin_file=gin/runs/pretrain.gin", "--gin.BATCH_SIZE=8",
                          "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 8}",
                          "--gin.network.T5Config.scan_layers=True",
                          "--gin.partitioning.PjitPartitioner.num_partitions=2"])
  out, _ = capsys.readouterr()
  assert code == 0, out
  with open(tmp_path / "precompile_cpu.json") as f:
    table = json.load(f)
  assert [s["step"] for s in table["steps"]] == ["train", "decode"]
  assert table["num_params"] == 258_472 and table["scan_layers"]
  assert table["steps"][0]["flops"] > table["steps"][1]["flops"] > 0


def test_statistics_only_init_of_a_decoder_only_model_from_a_decoder_only_checkpoint(tmp_path):
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.stats_init import initializers  # pylint: disable=import-outside-toplevel
  model = _model(num_decoder_layers=3)
  source = jax.tree.map(lambda x: 3.0 * x + 0.5, _random_params(model, seed=5))
  path = str(tmp_path / "source")
  orbax_format.save_params(path, source)
  random = model.init_params(jax.random.key(0))
  init = initializers.StatisticsInitializer(scheme="across_ALL_layer_grouping___init_scale",
                                            checkpoint=path)
  new = traverse_util.flatten_dict(init(random, seed=11), sep="/")
  old = traverse_util.flatten_dict(random, sep="/")
  np.testing.assert_array_equal(new["decoder/token_embedder/embedding"],
                                old["decoder/token_embedder/embedding"])
  queries = np.concatenate([np.asarray(new[f"decoder/layers_{i}/self_attention/query/kernel"])
                            .ravel() for i in range(3)])
  assert abs(queries.mean()) < 0.3 and queries.std() == pytest.approx(3.0, rel=0.15)
  # init_scale: layer norms become their group's mean (3 * N(0, 1) + 0.5 pooled over layers).
  norms = [np.asarray(new[f"decoder/layers_{i}/pre_mlp_layer_norm/scale"]) for i in range(3)]
  assert all(np.all(n == norms[0].ravel()[0]) for n in norms)


def test_export_hf_refuses_a_decoder_only_model_in_one_line(tmp_path):
  from synthetic_pretraining import errors  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import export_hf  # pylint: disable=import-outside-toplevel
  with pytest.raises(errors.UsageError, match="decoder-only model"):
    export_hf.export(str(tmp_path / "missing"), str(tmp_path / "out"),
                     ["gin/models/decoder_only/tiny.gin"])
  assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("size,count", [("tiny", 258_472), ("cpu", 934_656),
                                        ("small", 35_330_816), ("base", 109_628_544)])
def test_model_files_build_the_stated_parameter_counts(size, count):
  import gin  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import resources  # pylint: disable=import-outside-toplevel
  path = resources.path(f"gin/models/decoder_only/{size}.gin")
  gin_utils.parse([path], [])
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  assert isinstance(model, models.DecoderOnlyModel) and model.inputs_bidirectional_attention
  shapes = jax.eval_shape(model.init_params, jax.random.key(0))
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == count
  assert f"{count:,}" in open(path).read()
  assert gin.query_parameter("synthetic_pretraining.data.feature_converter.architecture") == (
      "decoder_only")


@pytest.mark.e2e  # two short runs of the train binary
def test_a_resumed_decoder_only_run_is_bitwise_equal_to_an_uninterrupted_one(tmp_path):
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import inspect_checkpoint  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel

  def flags(model_dir, steps):
    return ["--gin_file=gin/models/decoder_only/cpu.gin", "--gin_file=gin/runs/pretrain.gin",
            "--gin.MIXTURE_OR_TASK_NAME='toy_reverse'", "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'",
            f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=8",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 10, 'targets': 10}", "--gin.PACK=True",
            "--gin.EVAL_STEPS=1", "--gin.CHECKPOINT_PERIOD=2", "--gin.EVAL_PERIOD=100",
            "--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32"]

  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  assert train.main(flags(straight, 4)) == 0
  assert train.main(flags(resumed, 2)) == 0
  assert train.main(flags(resumed, 4)) == 0  # resumes from step 2 (parameters, optimizer, data)
  _, a = inspect_checkpoint.load(orbax_format.step_dir(straight, 4))
  _, b = inspect_checkpoint.load(orbax_format.step_dir(resumed, 4))
  for (name, x), (other, y) in zip(a, b):
    assert name == other
    np.testing.assert_array_equal(x, y, err_msg=name)
