"""The stats_init binary end to end: checkpoint + stats.json, re-creation from stats.json alone,
clear errors, Table 3 values, t5x sources (msgpack, tensorstore and orbax directories),
inspect_checkpoint on t5x checkpoints, every gin/init file, and training from statistics.

Everything runs on the T5 1.1 tiny model of the reference t5x checkpoint (or the small CPU model
for the training run), so the whole file takes well under a minute of CPU.
"""
import glob
import json
import math
import os

import gin
import jax
import numpy as np
import pytest
import toy_run
from flax import serialization
from flax import traverse_util

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import gin_utils
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining.model import models
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import train
from synthetic_pretraining.training import trainer as trainer_lib
from synthetic_pretraining.stats_init import __main__ as stats_cli
from synthetic_pretraining.stats_init import initializers
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import sources
from synthetic_pretraining.stats_init import statistics
from synthetic_pretraining.stats_init.errors import StatsInitError
from synthetic_pretraining.stats_init.errors import UnknownSchemeError
from reference import T5X_TINY as REFERENCE

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_1_1 = "gin/models/t5_1_1/tiny.gin"
SCHEME = "per_param_grouping___init_scale"
SEED = 7
# The vocabulary-sized parameters stay random by default (groupings.EMBEDDINGS).
EMBEDDINGS = {"token_embedder/embedding", "decoder/logits_dense/kernel"}


def _cli(*args, model=TINY_1_1) -> int:
  return stats_cli.main([f"--gin_file={model}", *args])


def _trainer(model_gin=TINY_1_1, seed=SEED) -> trainer_lib.Trainer:
  """The trainer a run of `model_gin` would build (4x2 mesh), for its random init and loading."""
  gin.clear_config()
  gin_utils.parse([model_gin], [])
  return trainer_lib.Trainer(models.EncoderDecoderModel(),
                             partitioning.PjitPartitioner(num_partitions=2),
                             optimizers.create_optimizer(), seed)


def _flat(params):
  return {p: np.asarray(v) for p, v in traverse_util.flatten_dict(params, sep="/").items()}


def _loaded(directory, model_gin=TINY_1_1):
  """The parameters INITIAL_CHECKPOINT_PATH=directory gives a run of `model_gin`."""
  return _flat(trainer_lib.params_from_checkpoint(_trainer(model_gin), directory))


def _assert_same(a, b):
  assert set(a) == set(b)
  for path in a:
    np.testing.assert_array_equal(a[path], b[path], err_msg=path)


@pytest.fixture(scope="module")
def reference_params():
  return sources.load_t5x_params(REFERENCE)[1]


@pytest.fixture(scope="module")
def from_reference(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("init") / "ckpt")
  assert _cli(f"--checkpoint={REFERENCE}", f"--scheme={SCHEME}", f"--output_dir={out}",
              f"--seed={SEED}") == 0
  return out


# ------------------------------------------------------------------ the binary and stats.json
def test_stats_json_has_the_documented_form(from_reference, reference_params):
  path = os.path.join(from_reference, "stats.json")
  stats = json.load(open(path))
  assert stats["scheme"] == SCHEME
  assert stats["source"] == os.path.abspath(REFERENCE)
  members = {m: g for g in stats["groups"] for m in g["members"]}
  assert set(members) == set(reference_params) - EMBEDDINGS  # 50 singleton groups
  assert len(stats["groups"]) == len(members) == 50
  for path_, group in members.items():
    assert set(group) >= {"members", "count", "mean", "std", "draw"}
    values = reference_params[path_].astype(np.float64)
    assert group["count"] == values.size
    # Values are summed exactly after rounding to 2^-30 of the largest magnitude.
    assert group["mean"] == pytest.approx(values.mean(), rel=1e-12,
                                          abs=np.abs(values).max() * 2**-30)
    assert group["std"] == pytest.approx(values.std(), rel=1e-6)
    # Layer norms become their mean; everything else N(0, std) (init_scale).
    expected = procedures.CONSTANT_MEAN if "norm/" in path_ else procedures.NORMAL_ZERO_STD
    assert group["draw"] == expected, path_
  assert os.path.getsize(path) < 20_000  # a few kilobytes


def test_written_checkpoint_loads_and_follows_the_statistics(from_reference):
  stats = json.load(open(os.path.join(from_reference, "stats.json")))
  params = _loaded(from_reference)
  _assert_same(params, _flat(orbax_format.restore_params(from_reference,
                                                        _trainer().abstract_params)))
  standardised = []
  for group in stats["groups"]:
    for member in group["members"]:
      if group["draw"] == procedures.CONSTANT_MEAN:
        assert np.all(params[member] == np.float32(group["mean"])), member
      else:
        standardised.append(params[member].ravel() / group["std"])
  z = np.concatenate(standardised).astype(np.float64)
  # ~4,000 values drawn from N(0, 1) after standardising: 5-sigma bounds.
  assert abs(z.mean()) < 5 / math.sqrt(z.size)
  assert abs(z.std() - 1) < 5 / math.sqrt(2 * z.size)
  # The embeddings are exactly what the trainer's random initialisation gives with this seed.
  random = _flat(_trainer().random_params())
  for path in EMBEDDINGS:
    np.testing.assert_array_equal(params[path], random[path], err_msg=path)


def test_gin_initializer_gives_the_same_parameters_as_the_binary(from_reference):
  trainer = _trainer()
  init = initializers.StatisticsInitializer(scheme=SCHEME, checkpoint=REFERENCE)
  params = init(trainer.random_params(), partitioner=trainer.partitioner, seed=SEED)
  _assert_same(_flat(params), _loaded(from_reference))


@pytest.mark.parametrize("flag", ["--stats_file", "--checkpoint"])
def test_stats_json_alone_recreates_bitwise_the_same_parameters(from_reference, tmp_path, flag):
  again = str(tmp_path / "again")
  assert _cli(f"{flag}={from_reference}/stats.json", f"--output_dir={again}",
              f"--seed={SEED}") == 0
  _assert_same(_loaded(from_reference), _loaded(again))
  assert (json.load(open(os.path.join(again, "stats.json")))["groups"] ==
          json.load(open(os.path.join(from_reference, "stats.json")))["groups"])


# ------------------------------------------------------------------ errors
def test_unknown_scheme_lists_the_valid_ones(tmp_path, capsys):
  assert _cli(f"--checkpoint={REFERENCE}", "--scheme=per_param_grouping",
              f"--output_dir={tmp_path}/a") == 1
  err = capsys.readouterr().err
  assert err.startswith("error: Unknown statistics-init scheme 'per_param_grouping'")
  for scheme in procedures.PAPER_SCHEMES:
    assert scheme in err
  assert not os.path.exists(tmp_path / "a")  # nothing written
  with pytest.raises(UnknownSchemeError, match="per_param_grouping___init_scale"):
    initializers.StatisticsInitializer(scheme="per_param___init_scale", checkpoint=REFERENCE)


def test_architecture_mismatch_names_the_differing_parameters(from_reference, tmp_path, capsys):
  t5_1_0 = "gin/models/t5_1_0/tiny.gin"
  assert _cli(f"--checkpoint={REFERENCE}", f"--scheme={SCHEME}", f"--output_dir={tmp_path}/a",
              model=t5_1_0) == 1
  err = capsys.readouterr().err
  assert "another architecture" in err
  for name in ("encoder/layers_0/mlp/wi_0/kernel: in the source (8, 16), not in the model",
               "encoder/layers_0/mlp/wi/kernel: in the model (8, 16), not in the source",
               "decoder/logits_dense/kernel"):
    assert name in err
  # A stats.json made for T5 1.1 does not fit T5 1.0 either.
  assert _cli(f"--stats_file={from_reference}/stats.json", f"--output_dir={tmp_path}/b",
              model=t5_1_0) == 1
  assert "mlp/wi_0/kernel: in the statistics" in capsys.readouterr().err


def test_other_bad_input_is_one_clear_line(from_reference, tmp_path, capsys):
  cases = [
      ([f"--checkpoint={tmp_path}/missing", f"--scheme={SCHEME}", f"--output_dir={tmp_path}/c"],
       "No statistics source"),
      ([f"--checkpoint={REFERENCE}", f"--output_dir={tmp_path}/d"], "--scheme is required"),
      ([f"--checkpoint={REFERENCE}", f"--scheme={SCHEME}"], "--output_dir is required"),
      (["--set=pre_attn_ln", f"--output_dir={tmp_path}/e"], "NAME=NUMBER"),
      (["--set=nothing/like/this=1", f"--output_dir={tmp_path}/f"], "matches no parameter"),
      ([f"--checkpoint={REFERENCE}", f"--scheme={SCHEME}", f"--output_dir={from_reference}"],
       "already holds a checkpoint"),
  ]
  for args, message in cases:
    assert _cli(*args) == 1, args
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
  # A source holding NaN has no statistics.
  tree = serialization.msgpack_restore(open(REFERENCE, "rb").read())
  scale = tree["optimizer"]["target"]["encoder"]["encoder_norm"]
  scale["scale"] = np.where(np.arange(8) == 3, np.nan, scale["scale"]).astype(np.float32)
  bad = tmp_path / "nan.msgpack"
  bad.write_bytes(serialization.msgpack_serialize(tree))
  assert _cli(f"--checkpoint={bad}", f"--scheme={SCHEME}", f"--output_dir={tmp_path}/g") == 1
  err = capsys.readouterr().err
  assert "encoder/encoder_norm/scale holds non-finite values" in err and err.count("\n") == 1
  assert not os.path.exists(tmp_path / "g")
  # The checkpoint that was already there is untouched.
  assert json.load(open(os.path.join(from_reference, "stats.json")))["scheme"] == SCHEME


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_in_any_shard_are_an_error(bad):
  # XLA:CPU's cross-device min/max drop NaN; the statistics must not.
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
  values = np.ones((8, 6), np.float32)
  values[5, 4] = bad
  array = jax.device_put(values, NamedSharding(mesh, PartitionSpec("data", "model")))
  with pytest.raises(StatsInitError, match="w holds non-finite values \\(1 of 48"):
    statistics.parameter_moments({"w": array})


# ------------------------------------------------------------------ Table 3 and set values
def test_table3_negative_constant_and_std_through_the_cli(tmp_path):
  out = str(tmp_path / "table3")
  assert _cli("--set=pre_attn_ln=-0.4", "--std=dec_relpos=0.5", f"--output_dir={out}",
              f"--seed={SEED}") == 0
  params = _loaded(out)
  changed = [p for p in params if p.endswith("attention_layer_norm/scale")]
  assert len(changed) == 6  # 2 encoder + 2 decoder self + 2 decoder cross
  for p in changed:
    assert np.all(params[p] == np.float32(-0.4)), p
  relpos = params["decoder/relpos_bias/rel_embedding"]
  assert 0.3 < relpos.std() < 0.7
  # Everything else is the trainer's random initialisation with the same seed.
  random = _flat(_trainer().random_params())
  for p in set(params) - set(changed) - {"decoder/relpos_bias/rel_embedding"}:
    np.testing.assert_array_equal(params[p], random[p], err_msg=p)
  stats = json.load(open(os.path.join(out, "stats.json")))
  assert stats["scheme"] == "custom"
  assert [(g["draw"], g["mean"], g["std"]) for g in stats["groups"]] == [
      (procedures.CONSTANT_MEAN, -0.4, 0.0), (procedures.NORMAL_ZERO_STD, 0.0, 0.5)]


# ------------------------------------------------------------------ t5x sources
def _write_t5x_tensorstore(step_dir, reference, step):
  """A t5x tensorstore checkpoint: a `checkpoint` msgpack whose >=2-D arrays are zarr specs."""
  import tensorstore as ts  # pylint: disable=import-outside-toplevel
  os.makedirs(step_dir)
  target = {}
  for path, value in reference.items():
    if value.ndim < 2:  # t5x keeps small arrays inline in the msgpack file
      target[path] = value
      continue
    name = "target." + path.replace("/", ".")
    metadata = {"shape": list(value.shape), "chunks": list(value.shape), "dtype": "<f4",
                "compressor": {"id": "gzip"}}
    store = ts.open({"driver": "zarr", "kvstore": {"driver": "file",
                                                    "path": os.path.join(step_dir, name)},
                     "metadata": metadata}, create=True).result()
    store.write(value).result()
    # As t5x writes it: the path relative to the checkpoint directory.
    target[path] = {"driver": "zarr", "dtype": "float32",
                    "kvstore": {"driver": "file", "path": name}, "metadata": metadata}
  state = {"target": traverse_util.unflatten_dict(target, sep="/"),
           "state": {"step": np.int32(step)}}
  with open(os.path.join(step_dir, "checkpoint"), "wb") as f:
    f.write(serialization.msgpack_serialize(state))


def _write_t5x_orbax(step_dir, reference, step):
  """A t5x orbax checkpoint: `checkpoint_<step>/state`, a PyTree {'target', 'state'}."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  tree = {"target": traverse_util.unflatten_dict(dict(reference), sep="/"),
          "state": {"step": np.int32(step)}}
  ocp.PyTreeCheckpointer().save(os.path.join(step_dir, "state"), tree)


@pytest.fixture(scope="module", params=["tensorstore", "orbax"])
def t5x_dir(request, tmp_path_factory, reference_params):
  """A t5x MODEL_DIR holding checkpoint_3 in the given format, with the reference's values."""
  model_dir = str(tmp_path_factory.mktemp(f"t5x_{request.param}"))
  writer = _write_t5x_tensorstore if request.param == "tensorstore" else _write_t5x_orbax
  writer(os.path.join(model_dir, "checkpoint_3"), reference_params, 3)
  return model_dir


def test_t5x_directories_give_the_same_initialisation_as_msgpack(t5x_dir, from_reference,
                                                                 tmp_path):
  for i, path in enumerate([os.path.join(t5x_dir, "checkpoint_3"), t5x_dir]):
    out = str(tmp_path / f"out{i}")
    assert _cli(f"--checkpoint={path}", f"--scheme={SCHEME}", f"--output_dir={out}",
                f"--seed={SEED}") == 0
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["source"].startswith(os.path.join(t5x_dir, "checkpoint_3"))
    assert (stats["groups"] ==
            json.load(open(os.path.join(from_reference, "stats.json")))["groups"])
    _assert_same(_loaded(out), _loaded(from_reference))


def test_t5x_directories_load_as_initial_checkpoint(t5x_dir, reference_params):
  for path in (os.path.join(t5x_dir, "checkpoint_3"), t5x_dir):
    _assert_same(_loaded(path), reference_params)


def test_inspect_checkpoint_reads_t5x_msgpack(reference_params, capsys):
  assert inspect_checkpoint.main([REFERENCE, "--json"]) == 0
  info = json.loads(capsys.readouterr().out)
  rows = {p["path"]: p for p in info["params"]}
  assert set(rows) == set(reference_params) and len(rows) == 52
  for path, value in reference_params.items():
    assert rows[path]["shape"] == list(value.shape) and rows[path]["dtype"] == "float32"
    assert rows[path]["mean"] == pytest.approx(value.astype(np.float64).mean())
  assert inspect_checkpoint.main([REFERENCE]) == 0
  text = capsys.readouterr().out
  assert text.startswith("step ") and "(52 parameters" in text
  assert "decoder/relpos_bias/rel_embedding" in text and "mean " in text


def test_inspect_checkpoint_reads_t5x_directories(t5x_dir, reference_params, capsys):
  assert inspect_checkpoint.main([os.path.join(t5x_dir, "checkpoint_3"), "--json"]) == 0
  info = json.loads(capsys.readouterr().out)
  assert info["step"] == 3
  rows = {p["path"]: p for p in info["params"]}
  assert set(rows) == set(reference_params)
  for path, value in reference_params.items():
    assert rows[path]["std"] == pytest.approx(value.astype(np.float64).std())
  assert inspect_checkpoint.main([t5x_dir]) == 0
  assert capsys.readouterr().out.startswith("step 3 ")


# ------------------------------------------------------------------ gin/init
@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "gin", "init", "*.gin"))),
                         ids=lambda p: os.path.basename(p)[:-4])
def test_gin_init_files_bind_a_working_initializer(path):
  """Each file parses with a finetuning run and its initializer plans the T5 1.1 tiny model."""
  uses_source = "STATS_SOURCE" in open(path).read()
  gin_utils.parse([TINY_1_1, "gin/runs/finetune.gin", path],
                  ["MODEL_DIR='/tmp/x'", "MIXTURE_OR_TASK_NAME='set'", "TRAIN_STEPS=1"] +
                  ([f"STATS_SOURCE='{REFERENCE}'"] if uses_source else []))
  name = os.path.basename(path)[:-4]
  if name in procedures.scheme_names():
    assert gin.query_parameter("stats_init.StatisticsInitializer.scheme") == name
    init = initializers.StatisticsInitializer()
  else:
    assert gin.query_parameter("stats_init.CustomValueInitializer.constants")
    init = initializers.CustomValueInitializer()
  abstract = jax.eval_shape(models.EncoderDecoderModel().init_params, jax.random.key(0))
  plan = init.plan(abstract)
  assert plan.groups and all(g.draw in procedures.DRAWS for g in plan.groups)
  assert not EMBEDDINGS & set(plan.members())


def test_every_paper_scheme_has_a_gin_file():
  names = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, "gin", "init", "*.gin"))}
  assert set(procedures.PAPER_SCHEMES) <= names


# ------------------------------------------------------------------ training from statistics
def test_a_model_initialised_from_statistics_trains(tmp_path, trained_toy_run):
  model = [toy_run.CPU_MODEL, *toy_run.SHARED_MODEL]
  common = [*model, *toy_run.task_flags(), "--gin.BATCH_SIZE=16",
            toy_run.lengths_flag(*toy_run.SHARED_LENGTHS), "--gin.EVAL_STEPS=2"]
  source = trained_toy_run  # the session's shared pre-training run (tests/conftest.py)
  run = str(tmp_path / "from_stats")
  stats_out = str(tmp_path / "stats.json")
  assert train.main(common + ["--gin_file=gin/runs/finetune.gin",
                              f"--gin_file=gin/init/{SCHEME}.gin", f"--gin.STATS_SOURCE='{source}'",
                              f"--gin.STATS_OUT='{stats_out}'", f"--gin.MODEL_DIR='{run}'",
                              "--gin.TRAIN_STEPS=30", "--gin.EVAL_PERIOD=30", "--gin.LOG_PERIOD=5",
                              "--gin.trainer.train.infer_eval_cfg=None",
                              "--gin.LEARNING_RATE=0.01"]) == 0
  records = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
  losses = [r["loss"] for r in records if r["kind"] == "train"]
  assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
  # The run recorded the statistics it drew from: those of the source's latest checkpoint,
  # the same the binary computes from it.
  recorded = json.load(open(stats_out))
  assert recorded["scheme"] == SCHEME
  assert recorded["source"] == os.path.join(source, f"checkpoint_{toy_run.SHARED_STEPS}")
  cli_dir = str(tmp_path / "cli")
  assert stats_cli.main(model + [
      f"--checkpoint={source}", f"--scheme={SCHEME}", f"--output_dir={cli_dir}"]) == 0
  assert recorded == json.load(open(os.path.join(cli_dir, "stats.json")))
  source_stats = {p["path"]: p for p in inspect_checkpoint.describe(source)["params"]}
  for group in recorded["groups"]:
    (member,) = group["members"]
    assert group["mean"] == pytest.approx(source_stats[member]["mean"], rel=1e-9, abs=1e-8)
    assert group["std"] == pytest.approx(source_stats[member]["std"], rel=1e-5)
  assert "StatisticsInitializer" in open(os.path.join(run, "config.gin")).read()
