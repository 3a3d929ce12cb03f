"""Every bad input of every binary: exit code 1, exactly one line on stderr, nothing created."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import toy_tasks

from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import cli
from synthetic_pretraining.data import pipeline
from synthetic_pretraining import export_data
from synthetic_pretraining.training import inference
from synthetic_pretraining import inspect_checkpoint
from synthetic_pretraining import report
from synthetic_pretraining import synthetic
from synthetic_pretraining import train
from synthetic_pretraining.training import evaluation
from synthetic_pretraining.synthetic import file_source
from synthetic_pretraining.stats_init import __main__ as stats_init_main

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_TASK = "bad_inputs_file_task"
_TF_STARTUP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} )")


def _train_args(model_dir, *extra, lengths="{'inputs': 12, 'targets': 12}", batch=16,
                task=toy_tasks.TOY_TASK):
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/pretrain.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{task}'", "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'",
          f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=2", f"--gin.BATCH_SIZE={batch}",
          f"--gin.TASK_FEATURE_LENGTHS={lengths}", "--gin.EVAL_STEPS=1",
          "--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32",
          "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=8", *extra]


def _run_args(binary, *extra, lengths="{'inputs': 12, 'targets': 12}"):
  """eval.gin / infer.gin with the toy task."""
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", f"--gin_file=gin/runs/{binary}.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.TASK_FEATURE_LENGTHS={lengths}",
          "--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32",
          "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=8", *extra]


def _file_task(tmp_path, content: bytes) -> str:
  path = tmp_path / "task.txt"
  path.write_bytes(content)
  synthetic.register_file_task(FILE_TASK, {"train": str(path), "validation": str(path)},
                               replace=True)
  return FILE_TASK


def _wrong_architecture_checkpoint(tmp_path) -> str:
  path = str(tmp_path / "other_model")
  orbax_format.save_params(path, {"encoder": {"kernel": np.zeros((3, 5), np.float32)}})
  return path


def _a_file(tmp_path) -> str:
  (tmp_path / "a_file").write_text("x")
  return str(tmp_path / "a_file")


# (case, binary, argument builder taking (tmp_path, out) where `out` must stay uncreated,
#  a phrase the one line must hold)
CASES = [
    ("lengths_missing_feature", "train",
     lambda t, out: _train_args(out, lengths="{'inputs': 12}"), "no length for 'targets'"),
    ("lengths_negative", "train",
     lambda t, out: _train_args(out, lengths="{'inputs': -5, 'targets': 12}"),
     "TASK_FEATURE_LENGTHS['inputs'] must be a positive integer, got -5"),
    ("lengths_string", "train",
     lambda t, out: _train_args(out, lengths="{'inputs': '12', 'targets': 12}"),
     "must be a positive integer, got '12'"),
    ("lengths_not_a_dict", "train", lambda t, out: _train_args(out, lengths="64"),
     "TASK_FEATURE_LENGTHS must be a dict"),
    ("batch_not_divisible", "train", lambda t, out: _train_args(out, batch=6),
     "BATCH_SIZE=6 is not divisible by the data-parallel size 8"),
    ("batch_not_divisible_model_parallel", "train",
     lambda t, out: _train_args(out, "--gin.partitioning.PjitPartitioner.num_partitions=2",
                                batch=6), "data-parallel size 4"),
    ("unknown_task", "train", lambda t, out: _train_args(out, task="toy_revers"),
     "Did you mean 'toy_reverse'"),
    ("gin_typo", "train", lambda t, out: _train_args(out, "--gin.TRAIN_STEP=3"),
     "Did you mean TRAIN_STEPS"),
    ("initial_checkpoint_missing", "train",
     lambda t, out: _train_args(out, f"--gin.INITIAL_CHECKPOINT_PATH='{t}/nothing_here'"),
     "INITIAL_CHECKPOINT_PATH: No checkpoint at"),
    ("initial_checkpoint_wrong_architecture", "train",
     lambda t, out: _train_args(
         out, f"--gin.INITIAL_CHECKPOINT_PATH='{_wrong_architecture_checkpoint(t)}'"),
     "written for another architecture"),
    ("model_dir_under_a_file", "train",
     lambda t, out: _train_args(os.path.join(_a_file(t), "run")), "is a file"),
    ("empty_task_file", "train",
     lambda t, out: _train_args(out, task=_file_task(t, b"")), "empty"),
    ("eval_checkpoint_missing", "eval",
     lambda t, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{t}/nothing_here'",
                              f"--gin.EVAL_OUTPUT_DIR='{out}'"), "CHECKPOINT_PATH: No checkpoint"),
    ("eval_batch_not_divisible", "eval",
     lambda t, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{t}'", "--gin.BATCH_SIZE=12",
                              f"--gin.EVAL_OUTPUT_DIR='{out}'"), "BATCH_SIZE=12"),
    ("infer_lengths_not_a_dict", "infer",
     lambda t, out: _run_args("infer", f"--gin.CHECKPOINT_PATH='{t}'", "--gin.SPLIT='validation'",
                              f"--gin.INFER_OUTPUT_DIR='{out}'", lengths="12"),
     "TASK_FEATURE_LENGTHS must be a dict"),
    ("export_num_examples_zero", "export_data",
     lambda t, out: ["--task=set", "--num_examples=0", f"--output={out}/set.txt"],
     "--num_examples"),
    ("export_unwritable_output", "export_data",
     lambda t, out: ["--task=set", "--num_examples=2", f"--output={_a_file(t)}/set.txt"], ""),
    ("inspect_missing", "inspect_checkpoint", lambda t, out: [f"{out}/nothing"], "nothing"),
    ("report_missing_run", "report",
     lambda t, out: [f"{t}/no_run", f"--output_dir={out}"], "no_run"),
    ("stats_init_missing_source", "stats_init",
     lambda t, out: [f"--checkpoint={t}/no_checkpoint", "--scheme=per_param_grouping___init_scale",
                     f"--output_dir={out}", "--gin_file=gin/models/t5_1_0/tiny.gin"],
     "no_checkpoint"),
]
MAINS = {"train": train.main,
         "eval": lambda a: train.main(a, entry_point=evaluation.evaluate_checkpoint),
         "infer": lambda a: train.main(a, entry_point=inference.infer), "export_data": lambda a: cli.run(export_data.main, a),
         "inspect_checkpoint": lambda a: cli.run(inspect_checkpoint.main, a),
         "report": lambda a: cli.run(report.main, a),
         "stats_init": lambda a: cli.run(stats_init_main.main, a)}


@pytest.mark.parametrize("case,binary,make_args,phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_creates_nothing(case, binary, make_args, phrase, tmp_path,
                                                      capsys):
  del case
  out = str(tmp_path / "out")
  args = make_args(tmp_path, out)
  before = set(os.listdir(tmp_path))
  rc = MAINS[binary](args)
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert rc == 1, captured.err
  assert len(lines) == 1, captured.err
  assert lines[0].startswith("error: ") and phrase in lines[0], lines[0]
  assert not os.path.exists(out)
  assert set(os.listdir(tmp_path)) == before


def test_malformed_line_stops_training_with_one_short_line(tmp_path, capsys):
  model_dir = str(tmp_path / "run")
  task = _file_task(tmp_path, b"[5, 6]\t[7]\n[5, x]\t[7]\n" * 8)
  assert train.main(_train_args(model_dir, task=task)) == 1
  err = capsys.readouterr().err
  error_lines = [l for l in err.splitlines() if l.startswith("error: ")]
  assert len(error_lines) == 1 and "Traceback" not in err, err[-3000:]
  # Training reads the lines in a seeded random order: the first bad line met is any even one.
  prefix, suffix = f"error: Malformed line in {tmp_path}/task.txt: line ", (
      " is not of the form [ids]<TAB>[ids] : [5, x]\\t[7]")
  assert error_lines[0].startswith(prefix) and error_lines[0].endswith(suffix), error_lines[0]
  assert int(error_lines[0][len(prefix):-len(suffix)]) % 2 == 0
  assert orbax_format.checkpoint_steps(model_dir) == []  # nothing half-trained is left


def test_huge_line_is_refused_before_parsing_and_never_echoed_whole(tmp_path):
  path = tmp_path / "huge.txt"
  path.write_bytes(b"[" + b"1, " * 4_000_000 + b"1]\t[2]\n")  # one 12 MB line
  source = file_source.AuthorsFileSource({"train": str(path)})
  with pytest.raises(cli.UsageError) as e:
    next(pipeline.CheckpointableIterator(source.get_dataset("train", shuffle=False)))
  message = cli.one_line(e.value)
  assert "line 1 is longer than 1048576 bytes" in message and len(message) < 600, message[:600]


def test_verbose_adds_the_traceback(tmp_path, capsys):
  assert train.main(_train_args(str(tmp_path / "out"), "--verbose", lengths="64")) == 1
  err = capsys.readouterr().err
  assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_the_binary_itself_prints_one_line(tmp_path):
  """Through `python -m` (what users run): no traceback, exit code 1."""
  out = str(tmp_path / "out")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]))
  result = subprocess.run([sys.executable, "-m", "synthetic_pretraining.train",
                           *_train_args(out, lengths="{'inputs': -5, 'targets': 12}")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr
  # TensorFlow's C++ runtime logs its start-up (oneDNN, CUDA probing) before Python runs any of
  # our code, whatever TF_CPP_MIN_LOG_LEVEL says; those lines are not ours to silence.
  ours = [l for l in result.stderr.strip().splitlines() if not _TF_STARTUP.match(l)]
  assert ours == [
      "error: TASK_FEATURE_LENGTHS['inputs'] must be a positive integer, got -5 "
      "(e.g. {'inputs': 512, 'targets': 512})."]
  assert not os.path.exists(out)
