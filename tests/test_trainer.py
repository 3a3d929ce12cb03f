"""End to end through the train binary: learning, resumption, outputs and clear errors."""
import json
import os

import jax
import numpy as np
import pytest
import toy_tasks
from records import metric_records

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.training import run_record
from synthetic_pretraining import eval as eval_binary  # pylint: disable=unused-import
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining import train
from synthetic_pretraining.training import evaluation
from synthetic_pretraining.training import trainer as trainer_lib


def _args(model_dir, steps, *extra, lengths="{'inputs': 12, 'targets': 12}"):
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/pretrain.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.MODEL_DIR='{model_dir}'",
          f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=16",
          f"--gin.TASK_FEATURE_LENGTHS={lengths}", "--gin.EVAL_STEPS=4",
          "--gin.network.T5Config.emb_dim=64", "--gin.network.T5Config.mlp_dim=128", *extra]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("run") / "toy")
  assert train.main(_args(model_dir, 150, "--gin.EVAL_PERIOD=50", "--gin.LOG_PERIOD=25",
                          "--gin.CHECKPOINT_PERIOD=50", "--gin.KEEP_CHECKPOINTS=2")) == 0
  return model_dir


def test_loss_falls_and_run_directory_is_complete(trained_dir):
  train_records = metric_records(trained_dir, "train")
  assert train_records[-1]["loss"] < 0.7 * train_records[0]["loss"]
  evals = metric_records(trained_dir, "eval")
  assert [r["step"] for r in evals] == [50, 100, 150]
  assert evals[-1]["accuracy"] > evals[0]["accuracy"]
  assert orbax_format.checkpoint_steps(trained_dir) == [100, 150]
  assert not os.path.exists(os.path.join(trained_dir, "data_iterators"))
  for step in (100, 150):  # the data position is an item of each checkpoint, pruned with it
    item = os.path.join(orbax_format.step_dir(trained_dir, step), orbax_format.ITERATOR_ITEM)
    assert os.path.exists(os.path.join(item, "process_0.index"))
  assert os.listdir(os.path.join(trained_dir, "train"))
  assert os.listdir(os.path.join(trained_dir, "training_eval", toy_tasks.TOY_TASK))
  config = open(os.path.join(trained_dir, "config.gin")).read()
  assert "TRAIN_STEPS = 150" in config and "emb_dim = 64" in config
  record = run_record.read(trained_dir)  # the run as data, beside config.gin
  assert (record.task, record.train_steps, record.batch_size) == (toy_tasks.TOY_TASK, 150, 16)
  assert record.init == {"kind": "random"} and record.method() == "random"


def test_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(tmp_path):
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  common = ("--gin.CHECKPOINT_PERIOD=4", "--gin.EVAL_PERIOD=1000", "--gin.LOG_PERIOD=2")
  assert train.main(_args(whole, 10, *common)) == 0
  assert train.main(_args(parts, 6, *common)) == 0
  assert train.main(_args(parts, 10, *common)) == 0
  a = inspect_checkpoint.describe(orbax_format.step_dir(whole, 10))
  b = inspect_checkpoint.describe(orbax_format.step_dir(parts, 10))
  assert a == b
  _, params_a = inspect_checkpoint.load(orbax_format.step_dir(whole, 10))
  _, params_b = inspect_checkpoint.load(orbax_format.step_dir(parts, 10))
  for (name_a, x), (name_b, y) in zip(params_a, params_b):
    assert name_a == name_b
    np.testing.assert_array_equal(x, y)
  losses = lambda d: [r["loss"] for r in metric_records(d, "train") if r["step"] > 6]
  assert losses(whole) == losses(parts)


def test_inspect_checkpoint_json(trained_dir, capsys):
  assert inspect_checkpoint.main([trained_dir, "--json"]) == 0
  info = json.loads(capsys.readouterr().out)
  assert info["step"] == 150
  by_path = {p["path"]: p for p in info["params"]}
  assert len(by_path) == 47
  assert by_path["token_embedder/embedding"]["shape"] == [4224, 64]  # cpu_sp: 4,100 ids, padded to 128s
  _, params = inspect_checkpoint.load(trained_dir)
  scale = dict(params)["encoder/encoder_norm/scale"].astype(np.float64)
  assert by_path["encoder/encoder_norm/scale"]["mean"] == pytest.approx(scale.mean(), rel=1e-12)
  assert by_path["encoder/encoder_norm/scale"]["std"] == pytest.approx(scale.std(), rel=1e-12)


def test_initial_checkpoint_all_but_embedding(trained_dir):
  args = _args("/unused", 1)
  from synthetic_pretraining import gin_utils  # pylint: disable=import-outside-toplevel
  files = [a.split("=", 1)[1] for a in args if a.startswith("--gin_file")]
  bindings = [a[len("--gin."):].replace("=", " = ", 1) for a in args if a.startswith("--gin.")]
  gin_utils.parse(files, bindings)
  import gin  # pylint: disable=import-outside-toplevel
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  tr = trainer_lib.Trainer(model, trainer_lib.partitioning.PjitPartitioner(num_partitions=2),
                           trainer_lib.optimizers.create_optimizer(), seed=1)
  loaded = trainer_lib.params_from_checkpoint(tr, trained_dir, "all_but_embedding")
  everything = trainer_lib.params_from_checkpoint(tr, trained_dir, "all")
  fresh = tr.random_params()
  np.testing.assert_array_equal(loaded["token_embedder"]["embedding"],
                                fresh["token_embedder"]["embedding"])
  np.testing.assert_array_equal(loaded["encoder"]["layers_0"]["mlp"]["wi"]["kernel"],
                                everything["encoder"]["layers_0"]["mlp"]["wi"]["kernel"])
  assert not np.array_equal(everything["token_embedder"]["embedding"],
                            fresh["token_embedder"]["embedding"])
  assert loaded["encoder"]["layers_0"]["mlp"]["wi"]["kernel"].sharding.spec[1] == "model"


def test_eval_binary_scores_a_checkpoint(trained_dir, tmp_path):
  out = str(tmp_path / "eval")
  args = ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/eval.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.CHECKPOINT_PATH='{trained_dir}'",
          f"--gin.EVAL_OUTPUT_DIR='{out}'", "--gin.BATCH_SIZE=16",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 12, 'targets': 12}",
          "--gin.network.T5Config.emb_dim=64", "--gin.network.T5Config.mlp_dim=128"]
  assert train.main(args, entry_point=evaluation.evaluate_checkpoint) == 0
  record = metric_records(out, "eval")[0]
  assert record["step"] == 150
  assert record["accuracy"] == pytest.approx(metric_records(trained_dir, "eval")[-1]["accuracy"], abs=0.05)


def test_clear_errors(trained_dir, tmp_path, capsys):
  assert train.main(_args(str(tmp_path / "a"), 2, "--gin.MIXTURE_OR_TASK_NAME='toy_revers'")) == 1
  assert "Did you mean 'toy_reverse'" in capsys.readouterr().err
  assert train.main(_args(str(tmp_path / "b"), 2, "--gin.TRAIN_STEP=5")) == 1
  assert "Did you mean TRAIN_STEPS" in capsys.readouterr().err
  assert train.main(_args(str(tmp_path / "c"), 2, "--gin.trainer.train.total_step=5")) == 1
  assert "total_step" in capsys.readouterr().err
  # A MODEL_DIR holding a checkpoint of another architecture names the parameters that differ.
  assert train.main(_args(trained_dir, 200, "--gin.network.T5Config.mlp_dim=96")) == 1
  err = capsys.readouterr().err
  assert "another architecture" in err and "layers_0/mlp/wi/kernel" in err
  assert orbax_format.checkpoint_steps(trained_dir) == [100, 150]


def test_cut_examples_are_reported(tmp_path, capfd):
  model_dir = str(tmp_path / "cut")
  assert train.main(_args(model_dir, 2, "--gin.LOG_PERIOD=1", "--gin.EVAL_PERIOD=1000",
                          lengths="{'inputs': 5, 'targets': 12}")) == 0
  record = metric_records(model_dir, "train")[-1]
  assert record["truncation/inputs_examples_cut"] > 0
  assert record["truncation/inputs_tokens_cut"] >= record["truncation/inputs_examples_cut"]
  assert record["truncation/targets_examples_cut"] == 0
  assert "TASK_FEATURE_LENGTHS['inputs']=5 cuts examples short" in capfd.readouterr().err


def _trained_model(trained_dir):
  from synthetic_pretraining import gin_utils  # pylint: disable=import-outside-toplevel
  import gin  # pylint: disable=import-outside-toplevel
  args = _args("/unused", 1)
  gin_utils.parse([a.split("=", 1)[1] for a in args if a.startswith("--gin_file")],
                  [a[len("--gin."):].replace("=", " = ", 1) for a in args if a.startswith("--gin.")])
  model = gin.query_parameter("%MODEL").scoped_configurable_fn()
  tr = trainer_lib.Trainer(model, trainer_lib.partitioning.PjitPartitioner(),
                           trainer_lib.optimizers.create_optimizer(), seed=1)
  return model, trainer_lib.params_from_checkpoint(tr, trained_dir)


def _validation_inputs(n=16):
  examples = list(toy_tasks.seqio.get_mixture_or_task(toy_tasks.TOY_TASK).get_dataset(
      sequence_length=None, split="validation", shuffle=False).take(n).as_numpy_iterator())
  tokens = np.zeros((n, 12), np.int32)
  for i, ex in enumerate(examples):
    tokens[i, :len(ex["inputs"])] = ex["inputs"][:12]
  return tokens


def test_greedy_decoding_is_the_argmax_of_teacher_forcing_on_its_outputs(trained_dir):
  from synthetic_pretraining.model import decoding  # pylint: disable=import-outside-toplevel
  model, params = _trained_model(trained_dir)
  tokens = _validation_inputs()
  greedy = np.asarray(jax.jit(lambda p, t: model.predict_batch(
      p, {"encoder_input_tokens": t}, max_decode_length=12))(params, tokens))
  assert (greedy == 1).any(axis=1).mean() > 0.5  # a trained model stops with EOS
  decoder_inputs = np.pad(greedy[:, :-1], ((0, 0), (1, 0)))
  logits = model.logits(params, {"encoder_input_tokens": tokens, "decoder_input_tokens": decoder_inputs})
  argmax = np.asarray(np.argmax(logits, -1))
  for row_greedy, row_argmax in zip(greedy, argmax):
    length = list(row_greedy).index(1) + 1 if 1 in row_greedy else len(row_greedy)
    np.testing.assert_array_equal(row_greedy[:length], row_argmax[:length])

  # Beam search with one beam and no length penalty is greedy search.
  def beam1(p, t):
    encoded = model.module.apply({"params": p}, t, method=model.module.encode)
    cache = model._decode_cache(p, encoded, t, 12)  # pylint: disable=protected-access

    def step_fn(previous, cache):
      logits, variables = model.module.apply(
          {"params": p, "cache": cache}, encoded, t, previous, decode=True, max_decode_length=12,
          mutable=["cache"], method=model.module.decode)
      return logits[:, -1], variables["cache"]
    return decoding.beam_search(step_fn, cache, t.shape[0], 1, 12, eos_id=1, alpha=0.0)[0][:, 0]
  beam = np.asarray(jax.jit(beam1)(params, tokens))
  for row_beam, row_greedy in zip(beam, greedy):
    length = list(row_greedy).index(1) + 1 if 1 in row_greedy else len(row_greedy)
    np.testing.assert_array_equal(row_beam[:length], row_greedy[:length])
  beam4 = np.asarray(jax.jit(lambda p, t: model.predict_batch(
      p, {"encoder_input_tokens": t}, max_decode_length=12, num_decodes=4))(params, tokens))
  assert beam4.shape == greedy.shape


def test_infer_binary_writes_predictions_and_metrics(trained_dir, tmp_path):
  from synthetic_pretraining.training import inference  # pylint: disable=import-outside-toplevel
  out = str(tmp_path / "infer")
  args = ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/infer.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.CHECKPOINT_PATH='{trained_dir}'",
          f"--gin.INFER_OUTPUT_DIR='{out}'", "--gin.SPLIT='validation'", "--gin.NUM_DECODES=1",
          "--gin.EVALUATOR_NUM_EXAMPLES=40", "--gin.BATCH_SIZE=16",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 12, 'targets': 12}",
          "--gin.network.T5Config.emb_dim=64", "--gin.network.T5Config.mlp_dim=128"]
  assert train.main(args, entry_point=inference.infer) == 0
  record = metric_records(out, "infer")[0]
  assert record["step"] == 150 and 0.0 <= record["sequence_accuracy"] <= 100.0
  # seqio's logger file names: every decoded example per step, one metrics line per eval.
  with open(os.path.join(out, "inference_eval", f"{toy_tasks.TOY_TASK}-000150.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 40 and {"input", "target", "prediction"} <= set(rows[0])
  with open(os.path.join(out, "inference_eval", f"{toy_tasks.TOY_TASK}-metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert [m["step"] for m in lines] == [150] and "sequence_accuracy" in lines[0]


@pytest.mark.parametrize("load", ["all", "all_but_embedding"])
def test_a_t5x_checkpoint_is_an_initial_checkpoint(tmp_path, load):
  """The natural pre-training baseline: INITIAL_CHECKPOINT_PATH may name a t5x checkpoint."""
  from reference import T5X_TINY as reference  # pylint: disable=import-outside-toplevel
  args = ["--gin_file=gin/models/t5_1_1/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.MODEL_DIR='{tmp_path}'",
          "--gin.TRAIN_STEPS=1", "--gin.BATCH_SIZE=8", "--gin.CHECKPOINT_PERIOD=1",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 8}", "--gin.EVAL_PERIOD=1000",
          f"--gin.INITIAL_CHECKPOINT_PATH='{reference}'", f"--gin.INITIAL_CHECKPOINT_LOAD='{load}'",
          "--gin.optimizers.create_learning_rate_scheduler.factors='constant'",
          "--gin.optimizers.create_learning_rate_scheduler.base_learning_rate=0.0"]
  assert train.main(args) == 0
  from synthetic_pretraining.stats_init import sources  # pylint: disable=import-outside-toplevel
  _, expected = sources.load_t5x_params(reference)
  got = {p["path"]: p for p in inspect_checkpoint.describe(orbax_format.step_dir(str(tmp_path), 1))["params"]}
  for path, value in expected.items():
    same = got[path]["mean"] == pytest.approx(float(np.mean(value, dtype=np.float64)), abs=1e-6)
    assert same == (load == "all" or path not in trainer_lib.EMBEDDING_PARAMS), path
