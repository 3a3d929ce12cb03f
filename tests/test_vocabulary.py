"""Tasks take the vocabulary of the gin macro VOCABULARY, as t5x's model files bind it."""
import json
import os
import subprocess
import sys

import gin
import pytest
import seqio

import synthetic_pretraining.tasks  # noqa: F401  (imported before any gin parsing)
from synthetic_pretraining import gin_utils
from synthetic_pretraining.model import models
from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.synthetic import registry
from synthetic_pretraining.synthetic import simple_tasks
from synthetic_pretraining.synthetic.common import TokenSpace
from synthetic_pretraining.synthetic.sources import SyntheticSource

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One task of each kind: simple, LIME, text, span-corrupted, downstream, shipped data.
SAMPLE_TASKS = ("set", "induct", "nonsense_summary", "nesting_language", "mtop", "squad_offline",
                "natural_text")
# How t5x's model files bind the vocabulary (t5x/examples/t5/t5_1_0/base.gin), with the shipped
# SentencePiece model in place of T5's (which lives on gs://).
T5X_STYLE = f"""
from __gin__ import dynamic_registration
import seqio

VOCABULARY = @seqio.SentencePieceVocabulary()
seqio.SentencePieceVocabulary.sentencepiece_model_file = "{vocabularies.CPU_SENTENCEPIECE_MODEL}"
seqio.SentencePieceVocabulary.extra_ids = 100
"""


def _task_vocabularies():
  return {name: seqio.get_mixture_or_task(name).output_features["targets"].vocabulary
          for name in SAMPLE_TASKS}


def test_configured_vocabulary_is_the_macro_else_the_named_default():
  assert vocabularies.configured_vocabulary() == seqio.ByteVocabulary(extra_ids=100)
  gin.parse_config("import synthetic_pretraining.data.vocabularies\n"
                   "VOCABULARY = @vocabularies.named_vocabulary()\n"
                   "vocabularies.named_vocabulary.name = 'cpu_sp'")
  assert vocabularies.configured_vocabulary() == seqio.SentencePieceVocabulary(
      vocabularies.CPU_SENTENCEPIECE_MODEL, extra_ids=100)
  gin.clear_config()
  gin.parse_config("VOCABULARY = 3")
  with pytest.raises(ValueError, match="VOCABULARY must give a seqio vocabulary"):
    vocabularies.configured_vocabulary()


def test_tasks_imported_before_gin_follow_the_vocabulary_it_configures():
  bytes_50 = seqio.ByteVocabulary(extra_ids=50)
  gin.parse_config("import synthetic_pretraining.data.vocabularies\n"
                   "VOCABULARY = @vocabularies.named_vocabulary()\n"
                   "vocabularies.named_vocabulary.extra_ids = 50")
  gin.finalize()  # as every binary does after parsing; tasks take the vocabulary now
  assert all(v == bytes_50 for v in _task_vocabularies().values())
  assert all(t.output_features["inputs"].vocabulary == bytes_50
             for t in seqio.get_mixture_or_task("lime").tasks)
  example = next(seqio.get_mixture_or_task("set").get_dataset(
      {"inputs": 64, "targets": 64}, split="train", shuffle=False, seed=0).as_numpy_iterator())
  # extra_id_0 divides the task name from the body; it is the top id of *this* vocabulary.
  assert vocabularies.sentinel_id(bytes_50, 0) == bytes_50.vocab_size - 1 == 308
  assert 308 in example["inputs"].tolist() and max(example["inputs"]) == 308
  # The unconfigured default again once gin is cleared and the tasks are looked up.
  gin.clear_config()
  assert registry.sync_vocabulary() == seqio.ByteVocabulary(extra_ids=100)
  assert all(v == seqio.ByteVocabulary(extra_ids=100) for v in _task_vocabularies().values())


_SCRIPT = """
import json, sys
import gin, seqio
mode, config = sys.argv[1], sys.argv[2]
if mode == "while_parsing":  # a gin file imports the module before VOCABULARY is bound
  config = config.replace("import seqio", "import seqio\\nimport tasks", 1)
gin.parse_config(config)
gin.finalize()  # t5x's parse_gin_flags locks the config
if mode == "after_parsing":  # t5x's get_dataset imports MIXTURE_OR_TASK_MODULE now
  import tasks
task = seqio.get_mixture_or_task("set")
vocabulary = task.output_features["inputs"].vocabulary
example = next(task.get_dataset({"inputs": 64, "targets": 64}, split="train", shuffle=False,
                                seed=0).as_numpy_iterator())
print(json.dumps({"file": vocabulary.sentencepiece_model_file, "extra_ids": vocabulary.extra_ids,
                  "names": [n for n in %r if seqio.get_mixture_or_task(n)
                            .output_features["targets"].vocabulary == vocabulary],
                  "inputs": example["inputs"].tolist()}))
""" % (SAMPLE_TASKS,)


@pytest.mark.parametrize("mode", ["while_parsing", "after_parsing"])
def test_t5x_style_config_reaches_a_module_imported_while_or_after_parsing(mode):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  run = subprocess.run([sys.executable, "-c", _SCRIPT, mode, T5X_STYLE], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  got = json.loads(run.stdout.strip().splitlines()[-1])
  assert got["file"] == vocabularies.CPU_SENTENCEPIECE_MODEL and got["extra_ids"] == 100
  assert got["names"] == list(SAMPLE_TASKS)
  assert 4099 in got["inputs"] and max(got["inputs"]) < 4100  # extra_id_0 of cpu_sp + 100


def test_built_in_sentinel_pieces_count_like_seqios_extra_ids(tmp_path):
  # T5's cc_all.32000.100extra (t5x's gin files, extra_ids=0) carries its sentinels as pieces;
  # seqio's model with 100 extra ids, written out, is such a model for the shipped vocabulary.
  appended = seqio.SentencePieceVocabulary(vocabularies.CPU_SENTENCEPIECE_MODEL, extra_ids=100)
  path = tmp_path / "cpu_sp.100extra.model"
  path.write_bytes(appended.sp_model)
  built_in = seqio.SentencePieceVocabulary(str(path))
  assert built_in.extra_ids == 0 and built_in.vocab_size == appended.vocab_size == 4100
  assert vocabularies.num_sentinels(built_in) == vocabularies.num_sentinels(appended) == 100
  assert vocabularies.num_sentinels(
      seqio.SentencePieceVocabulary(vocabularies.CPU_SENTENCEPIECE_MODEL)) == 0
  spaces = [TokenSpace.from_vocabulary(v) for v in (appended, built_in)]
  assert spaces[0].pool.tolist() == spaces[1].pool.tolist() and spaces[0].pool.max() == 3999
  assert spaces[0].task_name_divider == spaces[1].task_name_divider == 4099
  task = simple_tasks.TASKS["set"]
  examples = [SyntheticSource("set", registry.simple_task_builder(task), vocabulary=v)
              .example("train", 3) for v in (appended, built_in)]
  assert examples[0] == examples[1]


def test_our_model_files_configure_the_vocabulary():
  gin_utils.parse(["gin/models/t5_1_0/cpu.gin"], [])
  cpu_sp = seqio.SentencePieceVocabulary(vocabularies.CPU_SENTENCEPIECE_MODEL, extra_ids=100)
  assert vocabularies.configured_vocabulary() == cpu_sp
  assert all(v == cpu_sp for v in _task_vocabularies().values())
  assert models.EncoderDecoderModel(gin.get_configurable("network.T5Config")()).config.vocab_size \
      == 4224  # 4,100 ids padded to a multiple of 128
  gin.clear_config()
  # VOCABULARY on the command line is accepted although no gin file writes %VOCABULARY.
  gin_utils.parse(["gin/models/t5_1_1/tiny.gin"],
                  ["VOCABULARY = @vocabularies.named_vocabulary()",
                   "vocabularies.named_vocabulary.name = 'cpu_sp'"])
  assert vocabularies.configured_vocabulary() == cpu_sp
