"""transformers T5 in and out: parity with transformers' own model, round trips, provenance.

Offline: the transformers models are tiny random ones made here and saved with save_pretrained;
nothing comes from a hub. Tolerance: logits agree within RTOL = 5e-5 of the batch's largest
|logit| (float32 on CPU; measured ratios 3e-7 to 1.2e-5, docs/hf.md) and greedy decodes are
identical.
"""
import json
import os
import struct

import jax
import numpy as np
import pytest
import toy_run
from flax import traverse_util

from synthetic_pretraining.checkpointing import hf_format
from synthetic_pretraining.checkpointing import hf_reader
from synthetic_pretraining.checkpointing import hf_writer
from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.model import models
from synthetic_pretraining.model import network

# Logits agree within RTOL of the largest |logit| of the batch (at least 1): float32 summation
# order differs between XLA and torch, and the error grows with the logits' magnitude.
RTOL = 5e-5
VOCAB = 128
DECODE_LENGTH = 8


def _torch():
  return pytest.importorskip("torch"), pytest.importorskip("transformers")


def _hf_model(tmp_path, t5_1_1: bool, encoder_layers: int = 2, decoder_layers: int = 3, seed=0,
              own_head: bool = True):
  """A tiny random transformers T5 (1.0: relu, tied; 1.1: gated-gelu, own lm_head unless
  `own_head` is False: then unscaled but tied, as transformers 5 creates one), saved."""
  torch, transformers = _torch()
  torch.manual_seed(seed)
  config = transformers.T5Config(
      vocab_size=VOCAB, d_model=16, d_kv=4, d_ff=32, num_heads=4, num_layers=encoder_layers,
      num_decoder_layers=decoder_layers, feed_forward_proj="gated-gelu" if t5_1_1 else "relu",
      tie_word_embeddings=not t5_1_1, decoder_start_token_id=0, dropout_rate=0.0)
  model = transformers.T5ForConditionalGeneration(config).eval()
  with torch.no_grad():
    for p in model.parameters():  # norms are ones at init: perturb so that a swap would show
      p.add_(0.3 * torch.randn_like(p))
    if t5_1_1 and own_head:  # T5 1.1 checkpoints hold their own output layer
      model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 16))
  directory = str(tmp_path / ("t5_1_1" if t5_1_1 else "t5_1_0"))
  model.save_pretrained(directory)
  if t5_1_1 and own_head:
    _ensure_lm_head(directory, model.lm_head.weight.detach().numpy())
  return model, directory


def _ensure_lm_head(directory, lm_head):
  """transformers 5 may drop lm_head.weight as a tied key on save; put it back as T5 1.1 has it."""
  path = os.path.join(directory, hf_format.SAFETENSORS)
  stored = hf_format.SafetensorsFile(path)
  if "lm_head.weight" in stored.tensors:
    return
  arrays = {n: np.array(stored.read_rows(n)) for n in stored.tensors}
  arrays["lm_head.weight"] = lm_head
  hf_format.write_safetensors(path + ".new", {n: (a.shape, a.dtype) for n, a in arrays.items()},
                              arrays.items(), {"format": "pt"})
  os.replace(path + ".new", path)
  config = json.load(open(os.path.join(directory, "config.json")))
  config["tie_word_embeddings"] = False
  json.dump(config, open(os.path.join(directory, "config.json"), "w"))


def _ours(source):
  """Our model (architecture from the source) and its parameters read from the source."""
  config = network.T5Config(**source.architecture._asdict(), dropout_rate=0.0, dtype="float32")
  model = models.EncoderDecoderModel(config=config, z_loss=0.0)
  return model, traverse_util.unflatten_dict(source.read_numpy(), sep="/")


def _batch(seed=0, vocab=VOCAB):
  rng = np.random.RandomState(seed)
  inputs = rng.randint(2, vocab, size=(3, 9)).astype(np.int32)
  inputs[1, 6:] = 0  # padding
  inputs[:, -1][inputs[:, -1] != 0] = 1
  targets = rng.randint(2, vocab, size=(3, 7)).astype(np.int32)
  decoder_inputs = np.concatenate([np.zeros((3, 1), np.int32), targets[:, :-1]], axis=1)
  return inputs, decoder_inputs


def _hf_logits(hf_model, inputs, decoder_inputs):
  torch, _ = _torch()
  with torch.no_grad():
    out = hf_model(input_ids=torch.tensor(inputs, dtype=torch.long),
                   attention_mask=torch.tensor(inputs > 0, dtype=torch.long),
                   decoder_input_ids=torch.tensor(decoder_inputs, dtype=torch.long))
  return out.logits.numpy()


def _hf_greedy(hf_model, inputs, length=DECODE_LENGTH):
  torch, _ = _torch()
  with torch.no_grad():
    out = hf_model.generate(input_ids=torch.tensor(inputs, dtype=torch.long),
                            attention_mask=torch.tensor(inputs > 0, dtype=torch.long),
                            max_new_tokens=length, do_sample=False, num_beams=1,
                            min_length=0,
                            # transformers 5.25's decoder cache is sized by the encoder's depth
                            # and fails on a deeper decoder; without it the decode is the same.
                            use_cache=False).numpy()[:, 1:]  # drop the decoder start token
  padded = np.zeros((out.shape[0], length), np.int32)
  padded[:, :out.shape[1]] = out
  for row in padded:  # ours: 0 after EOS, as transformers pads
    eos = np.flatnonzero(row == 1)
    if eos.size:
      row[eos[0] + 1:] = 0
  return padded


def _check_logits(theirs, ours, what: str) -> None:
  difference = float(np.abs(theirs - ours).max())
  scale = max(1.0, float(np.abs(theirs).max()))
  print(f"max |logit difference| ({what}): {difference:.2e}, max |logit| {scale:.1f}, "
        f"ratio {difference / scale:.1e}")
  assert difference <= RTOL * scale


def _our_logits(model, params, inputs, decoder_inputs):
  return np.asarray(model.module.apply({"params": params}, inputs, decoder_inputs,
                                       deterministic=True))


def _our_greedy(model, params, inputs, length=DECODE_LENGTH):
  return np.asarray(model.predict_batch(params, {"encoder_input_tokens": inputs},
                                        max_decode_length=length))


# --- pure mapping -----------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_position_buckets_match_transformers(bidirectional):
  torch, transformers = _torch()
  from transformers.models.t5 import modeling_t5  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.model import layers  # pylint: disable=import-outside-toplevel
  relative = np.arange(-600, 600)[None, :]
  theirs = modeling_t5.T5Attention._relative_position_bucket(
      torch.tensor(relative), bidirectional=bidirectional, num_buckets=32, max_distance=128)
  ours = layers.relative_position_bucket(relative, bidirectional, 32, 128)
  np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


@pytest.mark.unit
def test_name_map_covers_every_parameter_of_our_model():
  for activations, tied in ((("relu",), True), (("gelu", "linear"), False)):
    config = network.T5Config(vocab_size=64, emb_dim=8, num_heads=2, head_dim=4, mlp_dim=16,
                              num_encoder_layers=1, num_decoder_layers=3,
                              activations=activations, logits_via_embedding=tied)
    model = models.EncoderDecoderModel(config=config)
    shapes = traverse_util.flatten_dict(jax.eval_shape(model.init_params, jax.random.key(0)),
                                        sep="/")
    arch = hf_writer.architecture_of(config)
    entries = hf_format.name_map(arch)
    assert sorted(e.t5x for e in entries) == sorted(shapes)
    assert len({e.hf for e in entries}) == len(entries)


@pytest.mark.unit
def test_configs_our_t5_cannot_represent_are_refused_in_one_line():
  base = {"model_type": "t5", "d_model": 8}
  for change, words in (({"model_type": "bart"}, "not a T5"),
                        ({"feed_forward_proj": "gated-silu"}, "'silu'"),
                        ({"feed_forward_proj": "gelu"}, "'gelu'"),
                        ({"layer_norm_epsilon": 1e-5}, "layer_norm_epsilon"),
                        ({"is_encoder_decoder": False}, "encoder-decoder")):
    with pytest.raises(hf_format.HFFormatError, match=words) as caught:
      hf_format.architecture({**base, **change}, "/m")
    assert "\n" not in str(caught.value)
  assert hf_format.architecture({**base, "feed_forward_proj": "gated-gelu",
                                 "tie_word_embeddings": False}, "/m").activations == ("gelu",
                                                                                     "linear")


@pytest.mark.unit
def test_safetensors_writer_is_read_by_the_safetensors_library(tmp_path):
  safetensors_numpy = pytest.importorskip("safetensors.numpy")
  arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones((5,), np.float32)}
  path = str(tmp_path / "x.safetensors")
  hf_format.write_safetensors(path, {n: (a.shape, a.dtype) for n, a in arrays.items()},
                              arrays.items(), {"format": "pt"})
  loaded = safetensors_numpy.load_file(path)
  for name, value in arrays.items():
    np.testing.assert_array_equal(loaded[name], value)
  stored = hf_format.SafetensorsFile(path)
  np.testing.assert_array_equal(stored.read_rows("a", slice(1, 3)), arrays["a"][1:3])


# --- transformers -> ours ----------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("t5_1_1,layers,own_head", [(False, (2, 3), True), (True, (3, 1), True),
                                                    (False, (1, 1), True), (True, (2, 2), False)])
def test_transformers_model_read_by_us_gives_the_same_logits_and_decodes(tmp_path, t5_1_1, layers,
                                                                        own_head):
  hf_model, directory = _hf_model(tmp_path, t5_1_1, *layers, own_head=own_head)
  found = resolver.resolve(directory)
  assert found.kind == "transformers"
  source = found.source
  assert source.architecture.logits_via_embedding is (not t5_1_1)
  assert (source.architecture.num_encoder_layers,
          source.architecture.num_decoder_layers) == layers
  model, params = _ours(source)
  inputs, decoder_inputs = _batch()
  _check_logits(_hf_logits(hf_model, inputs, decoder_inputs),
                _our_logits(model, params, inputs, decoder_inputs),
                f"{'1.1' if t5_1_1 else '1.0'}, {layers}, own head {own_head}")
  np.testing.assert_array_equal(_our_greedy(model, params, inputs), _hf_greedy(hf_model, inputs))


@pytest.mark.e2e
def test_reading_is_sharded_and_equals_reading_whole(tmp_path):
  from synthetic_pretraining.model import partitioning  # pylint: disable=import-outside-toplevel
  _, directory = _hf_model(tmp_path, t5_1_1=True)
  source = resolver.resolve(os.path.join(directory, "config.json")).source
  model, whole = _ours(source)
  partitioner = partitioning.PjitPartitioner(num_partitions=2)
  abstract = partitioning.abstract_params(model, partitioner)
  sharded, step = resolver.read_params(directory, abstract)
  assert step == 0
  flat = traverse_util.flatten_dict(sharded, sep="/")
  kernel = flat["encoder/layers_0/attention/query/kernel"]
  assert len(kernel.sharding.device_set) == 8
  for name, value in traverse_util.flatten_dict(whole, sep="/").items():
    np.testing.assert_array_equal(np.asarray(flat[name]), value)


# --- ours -> transformers ----------------------------------------------------------------------

def _write_ours(tmp_path, model, params, name="export"):
  flat = {p: np.asarray(v) for p, v in traverse_util.flatten_dict(params, sep="/").items()}
  arch = hf_writer.architecture_of(model.config)
  return hf_writer.write(str(tmp_path / name), arch, flat.__getitem__), flat


@pytest.mark.e2e
@pytest.mark.parametrize("tied", [True, False])
def test_our_model_exported_loads_in_transformers_with_the_same_outputs(tmp_path, tied):
  _, transformers = _torch()
  config = network.T5Config(vocab_size=VOCAB, emb_dim=16, num_heads=4, head_dim=4, mlp_dim=32,
                            num_encoder_layers=3, num_decoder_layers=2, dropout_rate=0.0,
                            activations=("relu",) if tied else ("gelu", "linear"),
                            logits_via_embedding=tied)
  model = models.EncoderDecoderModel(config=config)
  params = model.init_params(jax.random.key(1))
  params = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.key(2), x.shape), params)
  directory, _ = _write_ours(tmp_path, model, params)
  hf_model, info = transformers.T5ForConditionalGeneration.from_pretrained(
      directory, output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"]
  assert not info["mismatched_keys"] and not info["error_msgs"]
  hf_model.eval()
  inputs, decoder_inputs = _batch(1)
  _check_logits(_hf_logits(hf_model, inputs, decoder_inputs),
                _our_logits(model, params, inputs, decoder_inputs), f"export, tied={tied}")
  np.testing.assert_array_equal(_our_greedy(model, params, inputs), _hf_greedy(hf_model, inputs))


@pytest.mark.e2e
@pytest.mark.parametrize("t5_1_1", [False, True])
def test_read_write_read_is_bitwise(tmp_path, t5_1_1):
  _, directory = _hf_model(tmp_path, t5_1_1)
  source = resolver.resolve(directory).source
  model, params = _ours(source)
  again, flat = _write_ours(tmp_path, model, params, "again")
  reread = resolver.resolve(again).source.read_numpy()
  assert sorted(reread) == sorted(flat)
  for name, value in flat.items():
    np.testing.assert_array_equal(reread[name], value)
  # The tensors transformers reads are the original ones, bit for bit.
  original = hf_format.SafetensorsFile(os.path.join(directory, hf_format.SAFETENSORS))
  written = hf_format.SafetensorsFile(os.path.join(again, hf_format.SAFETENSORS))
  for name in written.tensors:
    np.testing.assert_array_equal(written.read_rows(name), original.read_rows(name))


# --- damaged and foreign directories -----------------------------------------------------------

def _one_line_error(path):
  from synthetic_pretraining import inspect_checkpoint  # pylint: disable=import-outside-toplevel
  import contextlib  # pylint: disable=import-outside-toplevel
  import io  # pylint: disable=import-outside-toplevel
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr):
    code = inspect_checkpoint.main([path])
  lines = [l for l in stderr.getvalue().splitlines() if l.strip()]
  assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), stderr.getvalue()
  return lines[0]


@pytest.mark.e2e
def test_damaged_and_foreign_directories_give_one_line(tmp_path):
  _, directory = _hf_model(tmp_path, t5_1_1=False)
  weights = os.path.join(directory, hf_format.SAFETENSORS)
  content = open(weights, "rb").read()

  truncated = tmp_path / "truncated"
  truncated.mkdir()
  (truncated / "config.json").write_text(open(os.path.join(directory, "config.json")).read())
  (truncated / hf_format.SAFETENSORS).write_bytes(content[: len(content) // 2])
  assert "is damaged" in _one_line_error(str(truncated))

  garbage = tmp_path / "garbage"
  garbage.mkdir()
  (garbage / "config.json").write_text(open(os.path.join(directory, "config.json")).read())
  (garbage / hf_format.SAFETENSORS).write_bytes(struct.pack("<Q", 12) + b"not json!!!!")
  assert "damaged" in _one_line_error(str(garbage))

  no_weights = tmp_path / "no_weights"
  no_weights.mkdir()
  (no_weights / "config.json").write_text("{\"model_type\": \"t5\"}")
  assert "no weights" in _one_line_error(str(no_weights))

  bad_json = tmp_path / "bad_json"
  bad_json.mkdir()
  (bad_json / "config.json").write_text("{not json")
  assert "not JSON" in _one_line_error(str(bad_json))

  foreign = tmp_path / "bert"
  foreign.mkdir()
  (foreign / "config.json").write_text(json.dumps({"model_type": "bert",
                                                   "architectures": ["BertModel"]}))
  (foreign / hf_format.SAFETENSORS).write_bytes(content)
  assert "not a T5" in _one_line_error(str(foreign))

  lying = tmp_path / "lying"  # config says 4 layers, the weights have 2
  lying.mkdir()
  config = json.load(open(os.path.join(directory, "config.json")))
  (lying / "config.json").write_text(json.dumps(dict(config, num_layers=4)))
  (lying / hf_format.SAFETENSORS).write_bytes(content)
  assert "missing" in _one_line_error(str(lying))


@pytest.mark.e2e
def test_model_that_differs_beyond_shapes_is_refused(tmp_path):
  """A gated-GELU checkpoint for a gated-ReLU model has the same shapes: the config decides."""
  from synthetic_pretraining.training import preflight  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.model import partitioning  # pylint: disable=import-outside-toplevel
  _, directory = _hf_model(tmp_path, t5_1_1=True)
  source = resolver.resolve(directory).source
  config = network.T5Config(**dict(source.architecture._asdict(), activations=("relu", "linear")))
  model = models.EncoderDecoderModel(config=config)
  abstract = partitioning.abstract_params(model, partitioning.PjitPartitioner())
  with pytest.raises(hf_format.HFFormatError, match="activations"):
    preflight.check_initial_checkpoint(directory, abstract, "INITIAL_CHECKPOINT_PATH",
                                       model.config)


@pytest.mark.e2e
def test_pytorch_bin_reads_like_safetensors(tmp_path):
  torch, _ = _torch()
  hf_model, directory = _hf_model(tmp_path, t5_1_1=True)
  as_bin = tmp_path / "as_bin"
  as_bin.mkdir()
  (as_bin / "config.json").write_text(open(os.path.join(directory, "config.json")).read())
  torch.save(hf_model.state_dict(), str(as_bin / hf_format.TORCH_BIN))
  expected = resolver.resolve(directory).source.read_numpy()
  read = resolver.resolve(str(as_bin)).source.read_numpy()
  assert sorted(read) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(read[name], value)


# --- statistics-only initialisation from a transformers checkpoint -----------------------------

@pytest.mark.e2e
def test_statistics_init_from_transformers_equals_the_one_from_our_checkpoint(tmp_path):
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.stats_init import __main__ as stats_cli  # pylint: disable=import-outside-toplevel
  torch, transformers = _torch()
  torch.manual_seed(5)
  config = transformers.T5Config(vocab_size=VOCAB, d_model=8, d_kv=3, d_ff=16, num_heads=4,
                                 num_layers=2, num_decoder_layers=2, feed_forward_proj="gated-gelu",
                                 tie_word_embeddings=False, decoder_start_token_id=0)
  hf_model = transformers.T5ForConditionalGeneration(config)
  with torch.no_grad():
    for p in hf_model.parameters():
      p.add_(0.3 * torch.randn_like(p))
    hf_model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 8))
  directory = str(tmp_path / "hf")
  hf_model.save_pretrained(directory)
  _ensure_lm_head(directory, hf_model.lm_head.weight.detach().numpy())
  ours = str(tmp_path / "ours")
  flat = resolver.resolve(directory).source.read_numpy()
  orbax_format.save_params(ours, traverse_util.unflatten_dict(flat, sep="/"))

  def draw(source, out):
    return stats_cli.main(["--gin_file=gin/models/t5_1_1/tiny.gin",
                           f"--gin.network.T5Config.vocab_size={VOCAB}",
                           f"--checkpoint={source}", "--scheme=per_param_grouping___init_scale",
                           f"--output_dir={out}", "--seed=7"])

  assert draw(directory, str(tmp_path / "from_hf")) == 0
  assert draw(ours, str(tmp_path / "from_ours")) == 0
  from_hf = resolver.resolve(str(tmp_path / "from_hf")).source.read_numpy()
  from_ours = resolver.resolve(str(tmp_path / "from_ours")).source.read_numpy()
  assert sorted(from_hf) == sorted(from_ours)
  for name, value in from_ours.items():
    np.testing.assert_array_equal(from_hf[name], value)
  stats = [json.load(open(tmp_path / d / "stats.json")) for d in ("from_hf", "from_ours")]
  assert stats[0]["groups"] == stats[1]["groups"]  # the same statistics, bit for bit
  assert stats[0]["source"] == directory


# --- our trained model -> export_hf -> transformers --------------------------------------------

# The session's shared run (tests/conftest.py): the CPU model with 3 decoder layers against 2
# encoder layers, so an exporter that mixes up the stacks fails.
MODEL_BINDINGS = toy_run.SHARED_MODEL


@pytest.mark.e2e
def test_trained_run_exported_loads_in_transformers_with_the_same_outputs(tmp_path,
                                                                          trained_toy_run):
  import gin  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import export_hf  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.data import vocabularies  # pylint: disable=import-outside-toplevel
  _, transformers = _torch()
  out = str(tmp_path / "hf")
  assert export_hf.main([f"--checkpoint={trained_toy_run}", "--gin_file=gin/models/t5_1_0/cpu.gin",
                         *MODEL_BINDINGS, f"--output_dir={out}"]) == 0
  assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                     "spiece.model", "tokenizer_config.json"]
  hf_model, info = transformers.T5ForConditionalGeneration.from_pretrained(
      out, output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys",
                                   "error_msgs")), info
  hf_model.eval()
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  gin.clear_config()
  gin_utils.parse(["gin/models/t5_1_0/cpu.gin"], [b[len("--gin."):] for b in MODEL_BINDINGS])
  vocabulary = vocabularies.configured_vocabulary()
  text = "copy the sentence: reverse these words please"
  assert tokenizer(text).input_ids == list(vocabulary.encode(text)) + [1]
  assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == vocabulary.vocab_size - 1
  model = models.EncoderDecoderModel(
      config=network.T5Config(**{**gin.get_configurable(network.T5Config)().__dict__,
                                 "vocab_size": hf_model.config.vocab_size, "dropout_rate": 0.0}))
  params = traverse_util.unflatten_dict(resolver.resolve(trained_toy_run).source.read_numpy(),
                                        sep="/")
  rng = np.random.RandomState(3)
  inputs = rng.randint(3, 40, size=(4, 10)).astype(np.int32)
  inputs[:, -1] = 1
  decoder_inputs = np.concatenate([np.zeros((4, 1), np.int32), inputs[:, ::-1][:, :6]], axis=1)
  _check_logits(_hf_logits(hf_model, inputs, decoder_inputs),
                _our_logits(model, params, inputs, decoder_inputs), "trained cpu model")
  np.testing.assert_array_equal(_our_greedy(model, params, inputs, 12),
                                _hf_greedy(hf_model, inputs, 12))
  # Exporting again into the same directory is refused in one line.
  assert export_hf.main([f"--checkpoint={trained_toy_run}", "--gin_file=gin/models/t5_1_0/cpu.gin",
                         *MODEL_BINDINGS, f"--output_dir={out}"]) == 1


# --- gs:// --------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_read_from_and_export_to_gcs(tmp_path, gcs):
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  _, directory = _hf_model(tmp_path, t5_1_1=True)
  remote = f"{gcs.url}/models/tiny"
  for name in os.listdir(directory):
    paths.write_atomic(f"{remote}/{name}", open(os.path.join(directory, name), "rb").read())
  found = resolver.resolve(remote)
  assert found.kind == "transformers"
  expected = resolver.resolve(directory).source.read_numpy()
  read = found.source.read_numpy()
  for name, value in expected.items():
    np.testing.assert_array_equal(read[name], value)
  model, params = _ours(found.source)
  again, flat = _write_ours(tmp_path, model, params, "unused")
  del again
  exported = hf_writer.write(f"{gcs.url}/exports/tiny", hf_writer.architecture_of(model.config),
                             flat.__getitem__)
  reread = resolver.resolve(exported).source.read_numpy()
  for name, value in flat.items():
    np.testing.assert_array_equal(reread[name], value)


# --- provenance: run.json, the report, mini_table1 ------------------------------------------------

@pytest.mark.e2e
def test_finetuning_from_a_transformers_t5_records_it_and_the_report_names_it(tmp_path):
  import toy_tasks  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import report  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.training import run_record  # pylint: disable=import-outside-toplevel
  torch, transformers = _torch()
  torch.manual_seed(0)
  # The shape of cpu.gin with mini_table1's TOY_MODEL sizes (vocabulary cpu_sp: 4,100 -> 4,224).
  config = transformers.T5Config(vocab_size=4224, d_model=32, d_kv=16, d_ff=64, num_heads=2,
                                 num_layers=2, num_decoder_layers=2, decoder_start_token_id=0)
  directory = str(tmp_path / "t5-tiny-natural")
  transformers.T5ForConditionalGeneration(config).save_pretrained(directory)
  model_dir = str(tmp_path / "finetune")
  assert train.main(["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/finetune.gin",
                     "--gin_file=gin/experiments/init/checkpoint_load_all.gin",
                     f"--gin.PRETRAINED_CHECKPOINT='{directory}'",
                     "--gin.network.T5Config.emb_dim=32", "--gin.network.T5Config.mlp_dim=64",
                     "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=16",
                     f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
                     "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.MODEL_DIR='{model_dir}'",
                     "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=8", "--gin.EVAL_PERIOD=2",
                     "--gin.EVAL_STEPS=1", "--gin.TASK_FEATURE_LENGTHS={'inputs': 12, 'targets': 12}",
                     "--gin.run_label.label='natural'"]) == 0
  record = run_record.read(model_dir)
  assert record.init == {"kind": "checkpoint", "path": directory, "load": "all",
                         "format": "transformers", "model": "t5-tiny-natural"}
  text = report.build([model_dir], metrics=("eval:accuracy",))[0]
  assert f"Natural baseline 'natural': finetuned from the transformers T5 't5-tiny-natural' " \
         f"({directory})" in text


@pytest.mark.unit
def test_mini_table1_takes_a_transformers_t5_as_natural_baseline():
  import dataclasses  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.launch import mini_table1  # pylint: disable=import-outside-toplevel
  preset = dataclasses.replace(mini_table1.PRESETS["gpu"], natural_checkpoint="gs://b/t5-small")
  assert "natural" not in {r.label for r in mini_table1.pretrain_runs(preset, "/out")}
  natural = [r for r in mini_table1.finetune_runs(preset, "/out") if r.label == "natural"]
  assert natural and all("--gin.PRETRAINED_CHECKPOINT='gs://b/t5-small'" in r.flags
                         for r in natural)
  assert all("--gin_file=gin/experiments/init/checkpoint_load_all.gin" in r.flags for r in natural)


@pytest.mark.e2e
def test_eval_and_infer_read_a_transformers_checkpoint(tmp_path):
  import toy_tasks  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.training import evaluation  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.training import inference  # pylint: disable=import-outside-toplevel
  torch, transformers = _torch()
  torch.manual_seed(0)
  config = transformers.T5Config(vocab_size=VOCAB, d_model=8, d_kv=3, d_ff=16, num_heads=4,
                                 num_layers=2, num_decoder_layers=2, decoder_start_token_id=0)
  directory = str(tmp_path / "t5")
  transformers.T5ForConditionalGeneration(config).save_pretrained(directory)
  common = ["--gin_file=gin/models/t5_1_0/tiny.gin", f"--gin.network.T5Config.vocab_size={VOCAB}",
            f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
            "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.CHECKPOINT_PATH='{directory}'",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 12, 'targets': 12}"]
  # What `python -m synthetic_pretraining.eval` and `.infer` run.
  assert train.main([*common, "--gin_file=gin/runs/eval.gin", "--gin.BATCH_SIZE=8",
                     "--gin.EVAL_STEPS=1", f"--gin.EVAL_OUTPUT_DIR='{tmp_path / 'eval'}'"],
                    entry_point=evaluation.evaluate_checkpoint) == 0
  assert train.main([*common, "--gin_file=gin/runs/infer.gin", "--gin.SPLIT='validation'",
                     "--gin.EVALUATOR_NUM_EXAMPLES=8",
                     f"--gin.INFER_OUTPUT_DIR='{tmp_path / 'infer'}'"],
                    entry_point=inference.infer) == 0
  assert os.listdir(tmp_path / "eval") and os.listdir(tmp_path / "infer")


@pytest.mark.e2e
def test_scaled_output_layer_with_its_own_weights_is_read_with_the_scale_folded_in(tmp_path):
  """T5 1.0's scaled head, but untied (lm_head.weight differs from shared.weight)."""
  torch, _ = _torch()
  hf_model, directory = _hf_model(tmp_path, t5_1_1=False)
  with torch.no_grad():
    hf_model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 16))
  hf_model.config.tie_word_embeddings = True
  path = os.path.join(directory, hf_format.SAFETENSORS)
  stored = hf_format.SafetensorsFile(path)
  arrays = {n: np.array(stored.read_rows(n)) for n in stored.tensors}
  arrays["lm_head.weight"] = hf_model.lm_head.weight.detach().numpy()
  hf_format.write_safetensors(path, {n: (a.shape, a.dtype) for n, a in arrays.items()},
                              arrays.items(), {"format": "pt"})
  source = resolver.resolve(directory).source
  assert not source.architecture.logits_via_embedding  # read as an untied kernel
  model, params = _ours(source)
  inputs, decoder_inputs = _batch(2)
  _check_logits(_hf_logits(hf_model, inputs, decoder_inputs),
                _our_logits(model, params, inputs, decoder_inputs), "scaled head, own weights")
  np.testing.assert_array_equal(_our_greedy(model, params, inputs), _hf_greedy(hf_model, inputs))


@pytest.mark.unit
def test_bfloat16_export_reads_back_as_the_rounded_values(tmp_path):
  import ml_dtypes  # pylint: disable=import-outside-toplevel
  config = network.T5Config(vocab_size=64, emb_dim=8, num_heads=2, head_dim=4, mlp_dim=16,
                            num_encoder_layers=1, num_decoder_layers=2,
                            activations=("gelu", "linear"), logits_via_embedding=False)
  model = models.EncoderDecoderModel(config=config)
  flat = {p: np.asarray(v) for p, v in traverse_util.flatten_dict(
      model.init_params(jax.random.key(0)), sep="/").items()}
  directory = hf_writer.write(str(tmp_path / "bf16"), hf_writer.architecture_of(config),
                              flat.__getitem__, dtype=np.dtype(ml_dtypes.bfloat16))
  source = resolver.resolve(directory).source
  assert {dtype for _, dtype in source.metadata().values()} == {"bfloat16"}
  for name, value in source.read_numpy().items():
    np.testing.assert_array_equal(value, flat[name].astype(ml_dtypes.bfloat16))


@pytest.mark.e2e
def test_export_hf_refuses_a_checkpoint_of_another_model_in_one_line(tmp_path):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  _, directory = _hf_model(tmp_path, t5_1_1=True)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run(
      [sys.executable, "-m", "synthetic_pretraining.export_hf", f"--checkpoint={directory}",
       "--gin_file=gin/models/t5_1_0/tiny.gin", f"--output_dir={tmp_path / 'out'}",
       # The transformers model's sizes, but T5 1.0 (ReLU MLP, tied output layer).
       f"--gin.network.T5Config.vocab_size={VOCAB}", "--gin.network.T5Config.emb_dim=16",
       "--gin.network.T5Config.head_dim=4", "--gin.network.T5Config.mlp_dim=32",
       "--gin.network.T5Config.num_decoder_layers=3"],
      cwd=root, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu"))
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
  assert "another architecture" in lines[0] and "logits_dense" in lines[0]
  assert not os.path.exists(tmp_path / "out")


@pytest.mark.e2e
def test_a_directory_laid_out_as_the_published_t5_small_reads_as_tied_and_scaled(tmp_path):
  """t5-small's published files: a transformers 4 config (no scale_decoder_outputs, no
  tie_word_embeddings, architectures T5WithLMHeadModel) and copies of the embedding under
  encoder/decoder.embed_tokens and lm_head, plus an unused cross-attention position table."""
  hf_model, directory = _hf_model(tmp_path, t5_1_1=False)
  path = os.path.join(directory, hf_format.SAFETENSORS)
  stored = hf_format.SafetensorsFile(path)
  arrays = {n: np.array(stored.read_rows(n)) for n in stored.tensors}
  for copy in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
    arrays[copy] = arrays["shared.weight"]
  arrays["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = np.ones(
      (32, 4), np.float32)
  hf_format.write_safetensors(path, {n: (a.shape, a.dtype) for n, a in arrays.items()},
                              arrays.items(), {"format": "pt"})
  config = json.load(open(os.path.join(directory, "config.json")))
  for key in ("scale_decoder_outputs", "tie_word_embeddings", "dense_act_fn", "is_gated_act"):
    config.pop(key, None)
  config["architectures"] = ["T5WithLMHeadModel"]
  json.dump(config, open(os.path.join(directory, "config.json"), "w"))
  source = resolver.resolve(directory).source
  assert source.architecture.logits_via_embedding
  assert "decoder/logits_dense/kernel" not in source.metadata()
  model, params = _ours(source)
  inputs, decoder_inputs = _batch(4)
  _check_logits(_hf_logits(hf_model, inputs, decoder_inputs),
                _our_logits(model, params, inputs, decoder_inputs), "t5-small layout")
