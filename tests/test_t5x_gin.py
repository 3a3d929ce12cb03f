"""gin/t5x: the paper's experiments for t5x's own binary carry the same values as gin/experiments.

Read textually (t5x need not be installed): each file's macro and parameter bindings, following
its includes inside the repository. test_t5x_interop.py parses them with t5x when it is installed.
"""
import ast
import glob
import os
import re

import pytest

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T5X_GIN = os.path.join(ROOT, "gin", "t5x")
# Files t5x ships (resolved by t5x's gin search path, not ours).
T5X_INCLUDES = {"t5x/examples/t5/t5_1_0/small.gin", "t5x/configs/runs/pretrain.gin",
                "t5x/configs/runs/finetune.gin"}
_BINDING = re.compile(r"^([A-Za-z_][\w./]*)\s*=\s*(.+)$")


def _logical_lines(text):
  """Lines of a gin file with comments dropped and bracketed continuations joined."""
  out, pending, depth = [], "", 0
  for line in text.splitlines():
    line = line.split("#", 1)[0].rstrip()
    if not line.strip():
      continue
    pending = f"{pending} {line.strip()}" if pending else line.strip()
    depth = sum(pending.count(c) for c in "([{") - sum(pending.count(c) for c in ")]}")
    if depth == 0:
      out.append(pending)
      pending = ""
  assert not pending, f"unbalanced brackets: {pending}"
  return out


def _bindings(rel_path, includes=None):
  """{name: value text} after the file and its repository includes (later bindings win)."""
  includes = [] if includes is None else includes
  values = {}
  with open(os.path.join(ROOT, rel_path)) as f:
    lines = _logical_lines(f.read())
  for line in lines:
    if line.startswith("include "):
      target = ast.literal_eval(line[len("include "):])
      includes.append(target)
      if target not in T5X_INCLUDES:
        values.update(_bindings(target, includes))
      continue
    if line.startswith(("from ", "import ")):
      continue
    match = _BINDING.match(line)
    assert match, f"{rel_path}: unexpected line {line!r}"
    values[match.group(1)] = match.group(2).strip()
  return values


def _value(values, name):
  """A binding's Python value, following macro references (%NAME) inside the same files."""
  text = values[name]
  while text.startswith("%") and text[1:] in values:
    text = values[text[1:]]
  return text if text.startswith(("@", "%")) else ast.literal_eval(text)


def _experiment(rel_path):
  """Our own experiment file's macros, parsed the same way (they use our gin names)."""
  return _bindings(rel_path)


def test_every_file_uses_dynamic_registration_and_t5x_files():
  files = sorted(glob.glob(os.path.join(T5X_GIN, "**", "*.gin"), recursive=True))
  assert len(files) >= 21 + 6 + 4
  for path in files:
    text = open(path).read()
    imports = re.findall(r"^(?:from \S+ )?import .+$", text, re.M)
    if imports:  # t5x's style: modules named by import statements, not registered names
      assert "from __gin__ import dynamic_registration" in text, path
    # No configurable of our own trainer: these files are for t5x's binary.
    assert not re.search(r"^(trainer\.train|optimizers\.|data\.DatasetConfig)", text, re.M), path
  includes = []
  _bindings("gin/t5x/pretrain/lime.gin", includes)
  assert {"t5x/examples/t5/t5_1_0/small.gin", "t5x/configs/runs/pretrain.gin"} <= set(includes)
  includes = []
  _bindings("gin/t5x/finetune/squad.gin", includes)
  assert {"t5x/examples/t5/t5_1_0/small.gin", "t5x/configs/runs/finetune.gin"} <= set(includes)


def test_paper_model_matches_ours():
  ours = _bindings("gin/experiments/paper_model.gin")
  theirs = _bindings("gin/t5x/paper_model.gin")
  assert _value(ours, "network.T5Config.dtype") == _value(theirs, "network.T5Config.dtype")
  assert _value(theirs, "DROPOUT_RATE") == _value(ours, "DROPOUT_RATE") == 0.1
  assert (_value(theirs, "vocabularies.named_vocabulary.name") ==
          _value(ours, "vocabularies.named_vocabulary.name") == "t5")
  assert theirs["VOCABULARY"] == "@vocabularies.named_vocabulary()"


def _pretrain_tasks(directory):
  return sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(ROOT, directory, "*.gin"))
                if not f.endswith("_common.gin"))


def test_one_pretraining_file_per_task_of_ours():
  assert _pretrain_tasks("gin/t5x/pretrain") == _pretrain_tasks("gin/experiments/pretrain")


@pytest.mark.parametrize("task", _pretrain_tasks("gin/experiments/pretrain"))
def test_pretraining_files_mirror_ours(task):
  ours = _experiment(f"gin/experiments/pretrain/{task}.gin")
  theirs = _bindings(f"gin/t5x/pretrain/{task}.gin")
  assert _value(theirs, "MIXTURE_OR_TASK_NAME") == _value(ours, "MIXTURE_OR_TASK_NAME") == task
  for macro in ("TRAIN_STEPS", "BATCH_SIZE", "TASK_FEATURE_LENGTHS", "Z_LOSS",
                "MIXTURE_OR_TASK_MODULE", "USE_CACHED_TASKS"):
    assert _value(theirs, macro) == _value(ours, macro), macro
  assert _value(theirs, "RANDOM_SEED") == _value(ours, "SEED")
  for split in ("train", "train_eval"):
    assert _value(theirs, f"{split}/utils.DatasetConfig.pack") == _value(ours, "PACK") is False
  assert _value(theirs, "train_script.train.eval_period") == _value(ours, "EVAL_PERIOD")
  assert _value(theirs, "train_script.train.eval_steps") == _value(ours, "EVAL_STEPS")
  assert _value(theirs, "utils.SaveCheckpointConfig.period") == _value(ours, "CHECKPOINT_PERIOD")
  assert _value(theirs, "utils.SaveCheckpointConfig.keep") is _value(ours, "KEEP_CHECKPOINTS")
  # Ours: 'rsqrt_decay' = 1/sqrt(max(step, warmup)); t5x's 'constant' multiplies by 1.0.
  assert _value(ours, "optimizers.create_learning_rate_scheduler.factors") == "rsqrt_decay"
  assert (_value(theirs, "utils.create_learning_rate_scheduler.factors"),
          _value(theirs, "utils.create_learning_rate_scheduler.base_learning_rate")) == (
              "constant * rsqrt_decay", 1.0)
  assert (_value(theirs, "utils.create_learning_rate_scheduler.warmup_steps") ==
          _value(ours, "optimizers.create_learning_rate_scheduler.warmup_steps"))


FINETUNE = sorted(os.path.basename(f)[:-4] for f in glob.glob(
    os.path.join(ROOT, "gin/experiments/finetune/*.gin")) if not f.endswith(
        ("_common.gin", "data_dir.gin")))


def test_one_finetuning_file_per_experiment_of_ours():
  assert sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(T5X_GIN, "finetune/*.gin"))
                if not f.endswith("_common.gin")) == FINETUNE


@pytest.mark.parametrize("name", FINETUNE)
def test_finetuning_files_mirror_ours(name):
  ours = _experiment(f"gin/experiments/finetune/{name}.gin")
  theirs = _bindings(f"gin/t5x/finetune/{name}.gin")
  for macro in ("MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS", "BATCH_SIZE", "TRAIN_STEPS",
                "LEARNING_RATE", "EVAL_PERIOD", "CHECKPOINT_PERIOD", "EVALUATOR_NUM_EXAMPLES",
                "INFER_EVAL_SPLIT", "NUM_DECODES", "Z_LOSS", "EVAL_STEPS", "PACK",
                "MIXTURE_OR_TASK_MODULE", "USE_CACHED_TASKS"):
    assert _value(theirs, macro) == _value(ours, macro), macro
  assert _value(theirs, "RANDOM_SEED") == _value(ours, "SEED")
  infer = _value(theirs, "INFER_EVAL_FEATURE_LENGTHS")
  assert infer == {"inputs": _value(ours, "TASK_FEATURE_LENGTHS")["inputs"],
                   "targets": _value(ours, "MAX_DECODE_LENGTH")}
  assert theirs["infer_eval/utils.DatasetConfig.task_feature_lengths"] == "%INFER_EVAL_FEATURE_LENGTHS"
  assert theirs["infer_eval/utils.DatasetConfig.split"] == "%INFER_EVAL_SPLIT"
  for split in ("train", "train_eval"):
    assert theirs[f"{split}/utils.DatasetConfig.pack"] == "%PACK"
  assert _value(theirs, "utils.create_learning_rate_scheduler.factors") == "constant"
  assert theirs["utils.create_learning_rate_scheduler.base_learning_rate"] == "%LEARNING_RATE"
  assert _value(theirs, "utils.SaveCheckpointConfig.period") == _value(ours, "CHECKPOINT_PERIOD")
  assert _value(theirs, "decoding.beam_search.alpha") == 0.6
  assert theirs["models.EncoderDecoderModel.predict_batch_with_aux.num_decodes"] == "%NUM_DECODES"
  assert theirs["natural.data_dir.path"] == "%DATA_DIR"


def test_initialisations():
  random = _bindings("gin/t5x/init/random.gin")
  assert _value(random, "INITIAL_CHECKPOINT_PATH") == []
  fresh = (("state/param_states/.*", None), ("state/step", None))
  for name, required, extra in [("statistics", "STATS_CHECKPOINT", ()),
                                ("checkpoint_load_all", "PRETRAINED_CHECKPOINT", ()),
                                ("checkpoint", "PRETRAINED_CHECKPOINT",
                                 (("target/token_embedder/.*", None),))]:
    values = _bindings(f"gin/t5x/init/{name}.gin")
    assert values["INITIAL_CHECKPOINT_PATH"] == f"%{required}"
    assert values[required] == "%gin.REQUIRED"
    assert _value(values, "utils.RestoreCheckpointConfig.assignment_map") == fresh + extra
    assert _value(values, "utils.RestoreCheckpointConfig.fallback_to_scratch") is True
    # Every pattern is a full-match regex over t5x's state paths.
    for pattern, _ in fresh + extra:
      re.compile(pattern)
