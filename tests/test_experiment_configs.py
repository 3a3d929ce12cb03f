"""The paper's experiments as gin files: every file parses and carries PAPER_FACTS §7's values."""
import glob
import os
import re

import gin
import pytest

from synthetic_pretraining import gin_utils
from synthetic_pretraining.model import network
from synthetic_pretraining import train  # noqa: F401  (registers every configurable)
from synthetic_pretraining.data import vocabularies

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC_TASKS = [
    "lime", "nonsense_summary", "nesting_language", "set", "identity", "delete", "sort", "union",
    "replace", "duplicate", "intersect", "reverse", "deduplicate", "search", "longest_word",
    "length", "count", "first_token", "last_token", "set1_minus_set2", "set2_minus_set1"]
# PAPER_FACTS §7.3: (task, lengths, batch, steps, lr, period, decode length, pack, examples, split)
FINETUNE = {
    "cnndm": ("cnndm_10k", (512, 256), 128, 100_000, 1e-3, 10_000, 148, False, 20_000, "test"),
    "code_translation": ("code_translation", (1024, 1024), 32, 150_000, 3e-3, 10_000, 1024, False,
                         5_000, "test"),
    "mtop": ("mtop", (1024, 128), 128, 100_000, 1e-3, 10_000, 128, False, 5_000, "test"),
    "retrosynthesis": ("retrosynthesis", (256, 256), 128, 400_000, 3e-3, 10_000, 256, False,
                       5_000, "test"),
    "squad": ("squad_v010_allanswers", (512, 128), 128, 250_000, 1e-3, 10_000, 128, True, 20_000,
              "validation"),
    "webqsp": ("webqsp", (2048, 256), 32, 50_000, 1e-3, 5_000, 256, False, 20_000, "test"),
}


def _parse(*files, bindings=()):
  gin.clear_config()
  gin_utils.parse([os.path.join(ROOT, f) for f in files], list(bindings))


def _macro(name):
  value = gin.query_parameter(f"%{name}")
  while isinstance(value, gin.config.ConfigurableReference):  # a macro bound to another macro
    value = value.scoped_configurable_fn()
  return value


def _check_paper_model():
  config = network.T5Config()
  assert (config.emb_dim, config.num_heads, config.head_dim, config.mlp_dim) == (512, 8, 64, 2048)
  assert (config.num_encoder_layers, config.num_decoder_layers) == (6, 6)
  assert config.vocab_size == 32128 and config.dropout_rate == 0.1
  assert config.activations == ("relu",) and config.logits_via_embedding
  assert gin.query_parameter("vocabularies.named_vocabulary.name") == "t5"
  vocabulary = vocabularies.configured_vocabulary()  # built lazily: nothing is downloaded
  assert vocabulary.sentencepiece_model_file == vocabularies.T5_SENTENCEPIECE_MODEL
  assert vocabulary.extra_ids == 100


def test_one_pretraining_file_per_task_id():
  files = {os.path.basename(f)[:-4] for f in glob.glob(os.path.join(ROOT, "gin/experiments/pretrain/*.gin"))}
  assert files - {"_common"} == set(SYNTHETIC_TASKS)


@pytest.mark.parametrize("task", SYNTHETIC_TASKS)
def test_pretraining_files_carry_the_paper_recipe(task):
  _parse(f"gin/experiments/pretrain/{task}.gin", bindings=["MODEL_DIR = '/tmp/x'"])
  assert _macro("MIXTURE_OR_TASK_NAME") == task
  assert _macro("TRAIN_STEPS") == 80_000 and _macro("BATCH_SIZE") == 128
  assert _macro("TASK_FEATURE_LENGTHS") == {"inputs": 512, "targets": 512}
  assert _macro("PACK") is False and _macro("Z_LOSS") == 0.0
  assert _macro("EVAL_PERIOD") == 5_000 and _macro("CHECKPOINT_PERIOD") == 5_000
  assert _macro("EVAL_STEPS") == 20 and _macro("KEEP_CHECKPOINTS") is None
  assert gin.query_parameter("optimizers.create_learning_rate_scheduler.factors") == "rsqrt_decay"
  assert gin.query_parameter("optimizers.create_learning_rate_scheduler.warmup_steps") == 10_000
  _check_paper_model()


@pytest.mark.parametrize("name", sorted(FINETUNE))
@pytest.mark.parametrize("init", ["random", "checkpoint", "checkpoint_load_all",
                                  "stats:per_param_grouping___init_scale"])
def test_finetuning_files_carry_the_paper_table(name, init):
  task, lengths, batch, steps, lr, period, decode, pack, examples, split = FINETUNE[name]
  bindings = ["MODEL_DIR = '/tmp/x'"]
  if init.startswith("stats:"):
    init_file = f"gin/init/{init[6:]}.gin"
    bindings.append("STATS_SOURCE = '/tmp/pretrained'")
  else:
    init_file = f"gin/experiments/init/{init}.gin"
    if init != "random":
      bindings.append("PRETRAINED_CHECKPOINT = '/tmp/pretrained'")
  _parse(f"gin/experiments/finetune/{name}.gin", init_file, bindings=bindings)
  assert _macro("MIXTURE_OR_TASK_NAME") == task
  assert _macro("TASK_FEATURE_LENGTHS") == {"inputs": lengths[0], "targets": lengths[1]}
  assert (_macro("BATCH_SIZE"), _macro("TRAIN_STEPS"), _macro("LEARNING_RATE")) == (batch, steps, lr)
  assert _macro("EVAL_PERIOD") == period and _macro("CHECKPOINT_PERIOD") == period
  assert _macro("MAX_DECODE_LENGTH") == decode and _macro("PACK") is pack
  assert _macro("EVALUATOR_NUM_EXAMPLES") == examples and _macro("INFER_EVAL_SPLIT") == split
  assert _macro("NUM_DECODES") == 4 and _macro("Z_LOSS") == 1e-4 and _macro("EVAL_STEPS") == 128
  assert gin.query_parameter("optimizers.create_learning_rate_scheduler.factors") == "constant"
  _check_paper_model()
  if init == "random":
    assert _macro("INITIAL_CHECKPOINT_PATH") is None
  elif init.startswith("checkpoint"):
    assert _macro("INITIAL_CHECKPOINT_PATH") == "/tmp/pretrained"
    assert _macro("INITIAL_CHECKPOINT_LOAD") == ("all" if init.endswith("all") else
                                                 "all_but_embedding")
  else:
    assert _macro("STATS_SOURCE") == "/tmp/pretrained"


def test_every_gin_file_in_the_repository_parses():
  """Model, run, init and experiment files, each with whatever its macros require."""
  required = ["MODEL_DIR = '/tmp/x'", "MIXTURE_OR_TASK_NAME = 'set'", "TRAIN_STEPS = 1",
              "STATS_SOURCE = '/tmp/s'", "PRETRAINED_CHECKPOINT = '/tmp/p'",
              "CHECKPOINT_PATH = '/tmp/c'", "INFER_OUTPUT_DIR = '/tmp/o'",
              "EVAL_OUTPUT_DIR = '/tmp/e'", "STAGE1_STEPS = 100"]
  files = sorted(glob.glob(os.path.join(ROOT, "gin", "**", "*.gin"), recursive=True))
  assert len(files) > 60
  for path in files:
    rel = os.path.relpath(path, ROOT)
    if rel.startswith("gin/t5x/"):  # for t5x's binary: tests/test_t5x_gin.py, test_t5x_interop.py
      continue
    if rel.startswith(("gin/experiments/pretrain", "gin/experiments/finetune")):
      files_ = [rel]
    elif rel.startswith(("gin/models", "gin/experiments/paper_model")):
      files_ = [rel, "gin/runs/pretrain.gin"]
    elif rel.startswith("gin/runs"):
      files_ = ["gin/models/t5_1_0/tiny.gin", rel]
    else:  # initialisations: added to a finetuning run
      files_ = ["gin/models/t5_1_0/tiny.gin", "gin/runs/finetune.gin", rel]
    text = "".join(t for f in files_ for t in gin_utils._file_texts(os.path.join(ROOT, f)))  # pylint: disable=protected-access
    gin.clear_config()
    # Only bind the macros these files use (unused macros are rejected by design).
    used = [b for b in required if re.search(rf"\b{b.split('=')[0].strip()}\b", text)]
    try:
      _parse(*files_, bindings=used)
    except gin_utils.GinConfigError as e:
      raise AssertionError(f"{rel}: {e}") from e
