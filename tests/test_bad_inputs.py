"""Every bad input of every binary: exit code 1, one line on the raw stderr, nothing created.

The table runs each case as `python -m synthetic_pretraining.<binary> ARGS` does after its
imports, in a process forked from one interpreter that imported the binaries once
(tests/binary_runner.py), and reads the raw bytes of its descriptor 2: nothing filters them.
What the imports themselves print is checked by `test_fresh_processes_print_one_line`, which
starts a truly fresh `python -m` process per binary.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import toy_tasks

from synthetic_pretraining.synthetic import file_source

pytestmark = pytest.mark.e2e


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
FILE_TASK = "bad_inputs_file_task"
PARALLEL = 2
TOY_MODEL = ["--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32",
             "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=8"]
BINARIES = ("train", "eval", "infer", "export_data", "inspect_checkpoint", "report", "stats_init",
            "precompile", "tasks", "export_hf", "position_split")
MODULES = {b: f"synthetic_pretraining.{b}" for b in BINARIES}


def _env(*extra_paths):
  return {"PYTHONPATH": os.pathsep.join([*extra_paths, REPO, TESTS]),
          "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}


def _train_args(model_dir, *extra, lengths="{'inputs': 12, 'targets': 12}", batch=16,
                task=toy_tasks.TOY_TASK, module="toy_tasks", steps="2", model=TOY_MODEL):
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", "--gin_file=gin/runs/pretrain.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{task}'", f"--gin.MIXTURE_OR_TASK_MODULE='{module}'",
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}",
          f"--gin.BATCH_SIZE={batch}",
          f"--gin.TASK_FEATURE_LENGTHS={lengths}", "--gin.EVAL_STEPS=1", *model, *extra]


def _run_args(binary, *extra, lengths="{'inputs': 12, 'targets': 12}", model=TOY_MODEL):
  """eval.gin / infer.gin with the toy task."""
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", f"--gin_file=gin/runs/{binary}.gin",
          f"--gin.MIXTURE_OR_TASK_NAME='{toy_tasks.TOY_TASK}'",
          "--gin.MIXTURE_OR_TASK_MODULE='toy_tasks'", f"--gin.TASK_FEATURE_LENGTHS={lengths}",
          *model, *extra]


class Runner:
  """tests/binary_runner.py: a process that imported the binaries, forking one child per job."""

  def __init__(self, workdir):
    self.workdir, self.count = workdir, 0
    self.process = subprocess.Popen([sys.executable, os.path.join(TESTS, "binary_runner.py"),
                                     str(PARALLEL)], cwd=REPO, env={**os.environ, **_env()},
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert json.loads(self.process.stdout.readline()) == "ready"

  def run(self, jobs):
    """jobs: (binary, args, env or None); returns [(exit code, stdout, raw stderr bytes)]."""
    requests = []
    for binary, args, env in jobs:
      self.count += 1
      stem = os.path.join(self.workdir, f"job{self.count}")
      requests.append({"module": MODULES[binary], "args": args, "cwd": REPO,
                       "env": env or _env(), "stdout": stem + ".out", "stderr": stem + ".err"})
    self.process.stdin.write(json.dumps(requests) + "\n")
    self.process.stdin.flush()
    codes = json.loads(self.process.stdout.readline())
    results = []
    for code, request in zip(codes, requests):
      _wait_for_writers(request["stderr"])
      with open(request["stdout"]) as f, open(request["stderr"], "rb") as g:
        results.append((code, f.read(), g.read()))
    return results

  def close(self):
    self.process.stdin.close()
    self.process.wait(timeout=60)


def _wait_for_writers(path, seconds=5.0):
  """The native-stderr filter of a finished job may still be writing its last lines."""
  deadline, size = time.time() + seconds, -1
  while time.time() < deadline:
    new = os.path.getsize(path)
    if new == size:
      return
    size = new
    time.sleep(0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  """One runner, one trained toy run and the damaged and foreign inputs made from it."""
  base = tmp_path_factory.mktemp("bad_inputs")
  runner = Runner(str(base))
  trained = str(base / "trained")
  (code, _, err), = runner.run([("train", _train_args(trained), None)])
  assert code == 0, err.decode()[-3000:]
  stats_dir = str(base / "toy_stats")
  (code, _, err), = runner.run([("stats_init", [
      f"--checkpoint={trained}", "--scheme=per_param_grouping___init_scale",
      f"--output_dir={stats_dir}", "--gin_file=gin/models/t5_1_0/cpu.gin", *TOY_MODEL], None)])
  assert code == 0, err.decode()[-3000:]
  damaged = str(base / "damaged")
  shutil.copytree(trained, damaged)
  _damage(os.path.join(damaged, "checkpoint_2"))
  (base / "a_file").write_text("x")
  (base / "garbage.json").write_text("this is not json {")
  (base / "latin1.gin").write_bytes(b"TRAIN_STEPS = 3  # \xe9t\xe9\n")  # saved as Latin-1
  (base / "unclosed.gin").write_text("EVAL_PERIOD = (1,\nTRAIN_STEPS = 3\n")
  (base / "empty_dir").mkdir()
  yield {"base": str(base), "runner": runner, "trained": trained, "damaged": damaged,
         "stats": os.path.join(stats_dir, "stats.json"), "a_file": str(base / "a_file"),
         "garbage_stats": str(base / "garbage.json"), "latin1_gin": str(base / "latin1.gin"),
         "unclosed_gin": str(base / "unclosed.gin"), "empty_dir": str(base / "empty_dir")}
  runner.close()


def _damage(step_dir):
  """Truncates every array file of the checkpoint's params item to half its size."""
  damaged = 0
  for root, _, files in os.walk(os.path.join(step_dir, "params")):
    for name in files:
      path = os.path.join(root, name)
      if "d" in os.path.basename(root) and os.path.getsize(path) > 16:
        with open(path, "r+b") as f:
          f.truncate(os.path.getsize(path) // 2)
        damaged += 1
  assert damaged, os.listdir(step_dir)


def _file_task_module(w, name, content: bytes):
  """A module registering FILE_TASK over a file with `content`; returns (module, env)."""
  folder = os.path.join(w["base"], f"module_{name}")
  os.makedirs(folder, exist_ok=True)
  data = os.path.join(folder, "task.txt")
  with open(data, "wb") as f:
    f.write(content)
  with open(os.path.join(folder, f"ftask_{name}.py"), "w") as f:
    f.write("from synthetic_pretraining import synthetic\n"
            f"synthetic.register_file_task({FILE_TASK!r}, {{'train': {data!r}, "
            f"'validation': {data!r}}}, replace=True)\n")
  return f"ftask_{name}", _env(folder)


def _file_task_case(name, content, phrase):
  def make(w, out):
    module, env = _file_task_module(w, name, content)
    return _train_args(out, task=FILE_TASK, module=module), env
  return (name, "train", make, phrase)


def _late_malformed_line(w, out):
  """A malformed line past the preflight's head of the file (file_source.PREFLIGHT_BYTES), so
  only the data pipeline finds it: before MODEL_DIR is created, when the first batch is read."""
  line = ("[" + ", ".join(str(5 + i % 50) for i in range(100)) + "]\t[7, 8]\n").encode()
  assert len(line * 300) > file_source.PREFLIGHT_BYTES
  module, env = _file_task_module(w, "late_malformed", line * 300 + b"[5, x]\t[7]\n" + line * 20)
  return _train_args(out, task=FILE_TASK, module=module), env


def _replace_flag(args, prefix, new):
  """`args` with the flag starting with `prefix` replaced by `new`."""
  return [new if a.startswith(prefix) else a for a in args]


def _infer_args(w, out, *extra, checkpoint=None):
  return _run_args("infer", f"--gin.CHECKPOINT_PATH='{checkpoint or w['trained']}'",
                   "--gin.SPLIT='validation'", f"--gin.INFER_OUTPUT_DIR='{out}'", *extra)


def _export_hf_args(w, out, *extra, checkpoint=None, model=TOY_MODEL):
  return [f"--checkpoint={checkpoint or w['trained']}", f"--output_dir={out}",
          "--gin_file=gin/models/t5_1_0/cpu.gin", *model, *extra]


def _init_gin(stats):
  return ["--gin_file=gin/init/per_param_grouping___init_scale.gin",
          f"--gin.STATS_SOURCE='{stats}'"]


# (case, binary, make(world, out) -> args or (args, env), a phrase the one line must hold); `out`
# must stay uncreated, and nothing may appear in the world's folder.
CASES = [
    # --- train: TASK_FEATURE_LENGTHS, BATCH_SIZE, the task
    ("lengths_missing_feature", "train",
     lambda w, out: _train_args(out, lengths="{'inputs': 12}"), "no length for 'targets'"),
    ("lengths_negative", "train",
     lambda w, out: _train_args(out, lengths="{'inputs': -5, 'targets': 12}"),
     "TASK_FEATURE_LENGTHS['inputs'] must be a positive integer, got -5"),
    ("lengths_string", "train",
     lambda w, out: _train_args(out, lengths="{'inputs': '12', 'targets': 12}"),
     "must be a positive integer, got '12'"),
    ("lengths_not_a_dict", "train", lambda w, out: _train_args(out, lengths="64"),
     "TASK_FEATURE_LENGTHS must be a dict"),
    ("batch_not_divisible", "train", lambda w, out: _train_args(out, batch=6),
     "BATCH_SIZE=6 is not divisible by the data-parallel size 8"),
    ("batch_negative", "train", lambda w, out: _train_args(out, batch=-8),
     "BATCH_SIZE must be a positive integer, got -8"),
    ("lengths_zero", "train",
     lambda w, out: _train_args(out, lengths="{'inputs': 0, 'targets': 12}"),
     "TASK_FEATURE_LENGTHS['inputs'] must be a positive integer, got 0"),
    ("batch_not_divisible_model_parallel", "train",
     lambda w, out: _train_args(out, "--gin.partitioning.PjitPartitioner.num_partitions=2",
                                batch=6), "data-parallel size 4"),
    ("unknown_task", "train", lambda w, out: _train_args(out, task="toy_revers"),
     "Did you mean 'toy_reverse'"),
    ("unknown_task_module", "train",
     lambda w, out: _train_args(out, module="no_such_module_xyz"), "no_such_module_xyz"),
    ("unknown_task_module_in_a_list", "train",
     lambda w, out: _replace_flag(_train_args(out), "--gin.MIXTURE_OR_TASK_MODULE=",
                                  "--gin.MIXTURE_OR_TASK_MODULE=['toy_tasks', 'no_such_mod']"),
     "MIXTURE_OR_TASK_MODULE='no_such_mod' cannot be imported"),
    # --- train: gin
    ("gin_typo", "train", lambda w, out: _train_args(out, "--gin.TRAIN_STEP=3"),
     "Did you mean TRAIN_STEPS"),
    ("gin_syntax_error_in_flag", "train",
     lambda w, out: _train_args(out, "--gin.EVAL_PERIOD=(1,"), "--gin.EVAL_PERIOD=(1,"),
    ("gin_missing_inner_quotes", "train",
     lambda w, out: _train_args(out)[:4] + ["--gin.MODEL_DIR=runs/x"] + _train_args(out)[5:],
     "--gin.MODEL_DIR=\"'runs/x'\""),
    ("gin_file_missing", "train",
     lambda w, out: _train_args(out, "--gin_file=gin/runs/no_such.gin"), "no_such.gin"),
    ("gin_file_typo", "train",
     lambda w, out: _train_args(out, "--gin_file=gin/runs/pretrian.gin"),
     "Did you mean gin/runs/pretrain.gin"),
    ("gin_unknown_configurable", "train",
     lambda w, out: _train_args(out, "--gin.network.T5Config.emb_dimm=4"), "emb_dimm"),
    ("gin_file_is_a_directory", "train", lambda w, out: _train_args(out, "--gin_file=gin/runs"),
     "Gin file 'gin/runs' is a directory"),
    ("gin_file_not_utf8", "train",
     lambda w, out: _train_args(out, f"--gin_file={w['latin1_gin']}"), "is not UTF-8 text"),
    ("gin_file_syntax_error", "train",
     lambda w, out: _train_args(out, f"--gin_file={w['unclosed_gin']}"),
     "unclosed.gin' is not valid gin"),
    ("no_gin_file", "train",
     lambda w, out: [a for a in _train_args(out) if not a.startswith("--gin_file")],
     "Give the model and the run with --gin_file"),
    ("train_flag_typo", "train",
     lambda w, out: _replace_flag(_train_args(out), "--gin_file=gin/runs/",
                                  "--gin_flie=gin/runs/pretrain.gin"),
     "unrecognised argument --gin_flie=gin/runs/pretrain.gin"),
    # --- train: numbers out of range or of the wrong type
    ("train_steps_string", "train", lambda w, out: _train_args(out, steps="'x'"),
     "TRAIN_STEPS must be a positive integer"),
    ("train_steps_negative", "train", lambda w, out: _train_args(out, steps="-5"),
     "TRAIN_STEPS must be a positive integer"),
    ("train_steps_zero", "train", lambda w, out: _train_args(out, steps="0"),
     "TRAIN_STEPS must be a positive integer"),
    ("seed_string", "train", lambda w, out: _train_args(out, "--gin.SEED='x'"),
     "SEED must be an integer"),
    ("keep_checkpoints_zero", "train",
     lambda w, out: _train_args(out, "--gin.KEEP_CHECKPOINTS=0"), "KEEP_CHECKPOINTS must be"),
    ("checkpoint_period_negative", "train",
     lambda w, out: _train_args(out, "--gin.CHECKPOINT_PERIOD=-1"), "CHECKPOINT_PERIOD must be"),
    ("eval_period_zero", "train",
     lambda w, out: _train_args(out, "--gin.EVAL_PERIOD=0"), "EVAL_PERIOD must be"),
    ("log_period_zero", "train",
     lambda w, out: _train_args(out, "--gin.LOG_PERIOD=0"),
     "LOG_PERIOD must be a positive integer, got 0"),
    # --- train: MODEL_DIR and initial checkpoints
    ("model_dir_under_a_file", "train",
     lambda w, out: _train_args(os.path.join(w["a_file"], "run")), "is a file"),
    ("model_dir_s3", "train", lambda w, out: _train_args("s3://bucket/run"), "s3://"),
    ("model_dir_unknown_scheme", "train", lambda w, out: _train_args("foo://bucket/run"),
     "foo://"),
    ("initial_checkpoint_missing", "train",
     lambda w, out: _train_args(out, f"--gin.INITIAL_CHECKPOINT_PATH='{w['base']}/nothing_here'"),
     "INITIAL_CHECKPOINT_PATH: No checkpoint at"),
    ("initial_checkpoint_wrong_architecture", "train",
     lambda w, out: _train_args(out, f"--gin.INITIAL_CHECKPOINT_PATH='{w['trained']}'",
                                model=[]), "another architecture"),
    ("initial_checkpoint_is_a_file", "train",
     lambda w, out: _train_args(out, f"--gin.INITIAL_CHECKPOINT_PATH='{w['a_file']}'"),
     "it is damaged or not a checkpoint"),
    ("initial_checkpoint_damaged", "train",
     lambda w, out: _train_args(out, f"--gin.INITIAL_CHECKPOINT_PATH='{w['damaged']}'"),
     "damaged/checkpoint_2 cannot be read"),
    ("initial_checkpoint_load_bogus", "train",
     lambda w, out: _train_args(out, f"--gin.INITIAL_CHECKPOINT_PATH='{w['trained']}'",
                                "--gin.INITIAL_CHECKPOINT_LOAD='bogus'"),
     "INITIAL_CHECKPOINT_LOAD must be 'all' or 'all_but_embedding'"),
    ("stats_source_garbage", "train",
     lambda w, out: _train_args(out, *_init_gin(w["garbage_stats"])), "garbage.json"),
    ("stats_source_other_architecture", "train",
     lambda w, out: _train_args(out, *_init_gin(w["stats"]), model=[]), "do not fit the model"),
    # --- train: file tasks
    _file_task_case("empty_task_file", b"", "empty"),
    _file_task_case("non_utf8_task_file", b"[5, 6]\t[7]\n\xff\xfe[5]\t[7]\n", "UTF-8"),
    ("malformed_line_at_data_time", "train", _late_malformed_line,
     "line 301 is not of the form [ids]<TAB>[ids]"),
    # --- train: a multi-process environment
    ("num_processes_without_coordinator", "train",
     lambda w, out: (_train_args(out), {**_env(), "JAX_NUM_PROCESSES": "2"}),
     "JAX_NUM_PROCESSES=2 also needs JAX_COORDINATOR_ADDRESS, JAX_PROCESS_ID"),
    ("heartbeat_not_a_number", "train",
     lambda w, out: (_train_args(out), {**_env(), "JAX_HEARTBEAT_TIMEOUT_SECONDS": "soon"}),
     "JAX_HEARTBEAT_TIMEOUT_SECONDS='soon' must be an integer"),
    ("host_memory_mode_unknown", "train",
     lambda w, out: (_train_args(out), {**_env(), "SYNTHETIC_PRETRAINING_HOST_MEMORY": "lots"}),
     "SYNTHETIC_PRETRAINING_HOST_MEMORY='lots': expected one of pooled, retain, glibc"),
    # --- eval
    ("eval_checkpoint_missing", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['base']}/nothing_here'",
                              f"--gin.EVAL_OUTPUT_DIR='{out}'"), "CHECKPOINT_PATH: No checkpoint"),
    ("eval_batch_not_divisible", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              "--gin.BATCH_SIZE=12", f"--gin.EVAL_OUTPUT_DIR='{out}'"),
     "BATCH_SIZE=12"),
    ("eval_unknown_split", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              "--gin.SPLIT='nosuchsplit'", f"--gin.EVAL_OUTPUT_DIR='{out}'"),
     "nosuchsplit"),
    ("eval_damaged_checkpoint", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['damaged']}'",
                              f"--gin.EVAL_OUTPUT_DIR='{out}'"), "damaged"),
    ("eval_checkpoint_is_a_file", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['a_file']}'",
                              f"--gin.EVAL_OUTPUT_DIR='{out}'"), "it is damaged or not a checkpoint"),
    ("eval_output_is_a_file", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              f"--gin.EVAL_OUTPUT_DIR='{w['a_file']}'"),
     "a_file cannot be used: it is a file"),
    ("eval_steps_zero", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              "--gin.EVAL_STEPS=0", f"--gin.EVAL_OUTPUT_DIR='{out}'"),
     "EVAL_STEPS must be a positive integer or None, got 0"),
    ("eval_flag_typo", "eval",
     lambda w, out: _run_args("eval", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              f"--gin.EVAL_OUTPUT_DIR='{out}'", "--verbos"),
     "unrecognised argument --verbos"),
    # --- infer
    ("infer_lengths_not_a_dict", "infer",
     lambda w, out: _run_args("infer", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              "--gin.SPLIT='validation'", f"--gin.INFER_OUTPUT_DIR='{out}'",
                              lengths="12"), "TASK_FEATURE_LENGTHS must be a dict"),
    ("infer_unknown_split", "infer",
     lambda w, out: _run_args("infer", f"--gin.CHECKPOINT_PATH='{w['trained']}'",
                              "--gin.SPLIT='nosuchsplit'", f"--gin.INFER_OUTPUT_DIR='{out}'"),
     "nosuchsplit"),
    ("infer_checkpoint_is_a_file", "infer",
     lambda w, out: _run_args("infer", f"--gin.CHECKPOINT_PATH='{w['a_file']}'",
                              "--gin.SPLIT='validation'", f"--gin.INFER_OUTPUT_DIR='{out}'"),
     "a_file"),
    ("infer_damaged_checkpoint", "infer",
     lambda w, out: _infer_args(w, out, checkpoint=w["damaged"]),
     "damaged/checkpoint_2 cannot be read"),
    ("infer_output_under_a_file", "infer",
     lambda w, out: _infer_args(w, os.path.join(w["a_file"], "out")), "a_file is a file"),
    ("infer_batch_zero", "infer", lambda w, out: _infer_args(w, out, "--gin.BATCH_SIZE=0"),
     "BATCH_SIZE must be a positive integer, got 0"),
    ("infer_batch_not_divisible", "infer",
     lambda w, out: _infer_args(w, out, "--gin.BATCH_SIZE=12"),
     "BATCH_SIZE=12 is not divisible by the data-parallel size 8"),
    ("infer_num_decodes_zero", "infer", lambda w, out: _infer_args(w, out, "--gin.NUM_DECODES=0"),
     "NUM_DECODES must be a positive integer, got 0"),
    ("infer_num_examples_zero", "infer",
     lambda w, out: _infer_args(w, out, "--gin.EVALUATOR_NUM_EXAMPLES=0"),
     "EVALUATOR_NUM_EXAMPLES must be a positive integer or None, got 0"),
    # --- export_data
    ("export_num_examples_zero", "export_data",
     lambda w, out: ["--task=set", "--num_examples=0", f"--output={out}/set.txt"],
     "--num_examples"),
    ("export_unwritable_output", "export_data",
     lambda w, out: ["--task=set", "--num_examples=2", f"--output={w['a_file']}/set.txt"], ""),
    ("export_unknown_task", "export_data",
     lambda w, out: ["--task=sett", "--num_examples=2", f"--output={out}/x.txt"],
     "Did you mean 'set'"),
    ("export_unknown_split", "export_data",
     lambda w, out: ["--task=set", "--split=test", "--num_examples=2", f"--output={out}/x.txt"],
     "--split must be 'train' or 'validation', got 'test'"),
    ("export_num_examples_not_a_number", "export_data",
     lambda w, out: ["--task=set", "--num_examples=many", f"--output={out}/x.txt"],
     "argument --num_examples: invalid int value: 'many'"),
    ("export_flag_typo", "export_data",
     lambda w, out: ["--task=set", "--num_examples=2", "--sed=3", f"--output={out}/x.txt"],
     "unrecognized arguments: --sed=3"),
    ("export_flag_missing", "export_data", lambda w, out: ["--task=set", f"--output={out}/x.txt"],
     "the following arguments are required: --num_examples"),
    # --- inspect_checkpoint
    ("inspect_missing", "inspect_checkpoint", lambda w, out: [f"{out}/nothing"], "nothing"),
    ("inspect_damaged", "inspect_checkpoint", lambda w, out: [w["damaged"]], "damaged"),
    ("inspect_a_file", "inspect_checkpoint", lambda w, out: [w["a_file"]], "a_file"),
    ("inspect_empty_directory", "inspect_checkpoint", lambda w, out: [w["empty_dir"]],
     "empty_dir holds no checkpoint"),
    ("inspect_flag_typo", "inspect_checkpoint", lambda w, out: [w["trained"], "--jsn"],
     "unrecognized arguments: --jsn"),
    # --- report
    ("report_missing_run", "report",
     lambda w, out: [f"{w['base']}/no_run", f"--output_dir={out}"], "no_run does not exist"),
    ("report_not_a_run", "report",
     lambda w, out: [os.path.dirname(w["stats"]), f"--output_dir={out}"], "no run.json"),
    ("report_bad_label", "report",
     lambda w, out: [w["trained"], "--label=nolabel", f"--output_dir={out}"],
     "--label 'nolabel' is not RUN_DIR=LABEL"),
    ("report_output_under_a_file", "report",
     lambda w, out: [w["trained"], "--metrics=eval:accuracy", f"--output_dir={w['a_file']}/out"],
     "a_file is a file"),
    # --- stats_init
    ("stats_init_missing_source", "stats_init",
     lambda w, out: [f"--checkpoint={w['base']}/no_checkpoint",
                     "--scheme=per_param_grouping___init_scale", f"--output_dir={out}",
                     "--gin_file=gin/models/t5_1_0/tiny.gin"], "no_checkpoint"),
    ("stats_init_other_architecture", "stats_init",
     lambda w, out: [f"--checkpoint={w['trained']}", "--scheme=per_param_grouping___init_scale",
                     f"--output_dir={out}", "--gin_file=gin/models/t5_1_0/cpu.gin"],
     "architecture"),
    ("stats_init_garbage_stats", "stats_init",
     lambda w, out: [f"--checkpoint={w['garbage_stats']}", f"--output_dir={out}",
                     "--gin_file=gin/models/t5_1_0/cpu.gin", *TOY_MODEL], "garbage.json"),
    ("stats_init_no_output_dir", "stats_init",
     lambda w, out: [f"--checkpoint={w['trained']}", "--scheme=per_param_grouping___init_scale",
                     "--gin_file=gin/models/t5_1_0/cpu.gin", *TOY_MODEL], "--output_dir is required"),
    ("stats_init_output_holds_a_checkpoint", "stats_init",
     lambda w, out: [f"--checkpoint={w['trained']}", "--scheme=per_param_grouping___init_scale",
                     f"--output_dir={w['trained']}/checkpoint_2",
                     "--gin_file=gin/models/t5_1_0/cpu.gin", *TOY_MODEL], "already holds"),
    ("stats_init_output_under_a_file", "stats_init",
     lambda w, out: [f"--checkpoint={w['trained']}", "--scheme=per_param_grouping___init_scale",
                     f"--output_dir={w['a_file']}/out", "--gin_file=gin/models/t5_1_0/cpu.gin",
                     *TOY_MODEL], "a_file is a file"),
    ("stats_init_set_malformed", "stats_init",
     lambda w, out: ["--set=pre_attn_ln", f"--output_dir={out}",
                     "--gin_file=gin/models/t5_1_0/cpu.gin", *TOY_MODEL],
     "--set expects NAME=NUMBER, got 'pre_attn_ln'"),
    ("stats_init_seed_not_a_number", "stats_init",
     lambda w, out: [f"--checkpoint={w['trained']}", "--scheme=per_param_grouping___init_scale",
                     f"--output_dir={out}", "--seed=x", "--gin_file=gin/models/t5_1_0/cpu.gin",
                     *TOY_MODEL], "argument --seed: invalid int value: 'x'"),
    ("stats_init_unknown_scheme", "stats_init",
     lambda w, out: [f"--checkpoint={w['trained']}", "--scheme=per_param_grouping___init_scal",
                     f"--output_dir={out}", "--gin_file=gin/models/t5_1_0/cpu.gin", *TOY_MODEL],
     "per_param_grouping___init_scale"),
    # --- precompile
    ("precompile_unknown_topology", "precompile",
     lambda w, out: ["--gin_file=gin/models/t5_1_0/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
                     "--topology=v9-8", f"--output={out}"], "--topology='v9-8' is not a known"),
    ("precompile_no_topology", "precompile",
     lambda w, out: ["--gin_file=gin/models/t5_1_0/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
                     f"--output={out}"], "the following arguments are required: --topology"),
    # --- tasks
    ("tasks_unknown", "tasks", lambda w, out: ["--task=toy_revers", "--module=toy_tasks"],
     "toy_reverse"),
    ("tasks_unknown_module", "tasks", lambda w, out: ["--module=no_such_module_xyz"],
     "no_such_module_xyz' cannot be imported"),
    # --- export_hf
    ("export_hf_output_not_empty", "export_hf",
     lambda w, out: _export_hf_args(w, w["trained"]), "is not empty"),
    ("export_hf_output_under_a_file", "export_hf",
     lambda w, out: _export_hf_args(w, f"{w['a_file']}/hf"), "a_file is a file"),
    ("export_hf_missing_checkpoint", "export_hf",
     lambda w, out: _export_hf_args(w, out, checkpoint=f"{w['base']}/nothing_here"),
     "No checkpoint at"),
    ("export_hf_other_architecture", "export_hf", lambda w, out: _export_hf_args(w, out, model=[]),
     "another architecture"),
    ("export_hf_no_gin_file", "export_hf",
     lambda w, out: [f"--checkpoint={w['trained']}", f"--output_dir={out}"],
     "Give the model with --gin_file"),
    ("export_hf_bad_dtype", "export_hf", lambda w, out: _export_hf_args(w, out, "--dtype=float16"),
     "argument --dtype: invalid choice: 'float16'"),
    # --- position_split
    ("position_split_not_a_run", "position_split",
     lambda w, out: [os.path.dirname(w["stats"])], "has no run.json: not a training run"),
    ("position_split_missing_step", "position_split", lambda w, out: [w["trained"], "--step=999"],
     "No checkpoint at"),
]


@pytest.fixture(scope="module")
def table(world):
  """Every case of CASES, run PARALLEL at a time: {case: (code, stdout, stderr, out, listing)}."""
  jobs, outs = [], []
  before = set(os.listdir(world["base"]))
  for case, binary, make, _ in CASES:
    out = os.path.join(world["base"], f"out_{case}")
    made = make(world, out)
    args, env = made if isinstance(made, tuple) else (made, None)
    jobs.append((binary, args, env))
    outs.append(out)
  before |= {n for n in os.listdir(world["base"]) if n.startswith("module_")}
  results = world["runner"].run(jobs)
  after = set(os.listdir(world["base"]))
  created = {n for n in after - before if not n.startswith("job")}
  summary = os.environ.get("BAD_INPUTS_SUMMARY")
  if summary:  # a readable table of every case: exit code, stderr line count, the stderr
    with open(summary, "w") as f:
      for (case, binary, *_), (code, _, err) in zip(CASES, results):
        text = err.decode("utf-8", "replace")
        f.write(f"{case} [{binary}] rc={code} lines={len(text.splitlines())}\n{text}\n")
  return {case: (*result, out, created)
          for (case, *_), result, out in zip(CASES, results, outs)}


@pytest.mark.parametrize("case,binary,make_args,phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_creates_nothing(case, binary, make_args, phrase, table):
  del binary, make_args
  code, _, raw_err, out, created = table[case]
  text = raw_err.decode("utf-8", "replace")
  lines = text.splitlines()
  assert code == 1, text[-3000:]
  assert len(lines) == 1, text[-3000:]
  assert lines[0].startswith("error: ") and phrase in lines[0], lines[0]
  assert not os.path.exists(out)
  assert not {n for n in created if n.startswith(f"out_{case}")}, created


def test_nothing_else_was_created(table):
  """No case created anything in the shared folder (only the runner's job logs are new)."""
  created = next(iter(table.values()))[4]
  assert not created, created


def test_verbose_adds_the_traceback(world):
  (code, _, err), = world["runner"].run(
      [("train", _train_args(os.path.join(world["base"], "v"), "--verbose", lengths="64"), None)])
  text = err.decode()
  assert code == 1 and "Traceback" in text and text.strip().splitlines()[-1].startswith("error: ")


def test_malformed_line_stops_training_with_one_short_line(world):
  module, env = _file_task_module(world, "malformed", b"[5, 6]\t[7]\n[5, x]\t[7]\n" * 8)
  model_dir = os.path.join(world["base"], "malformed_run")
  (code, _, err), = world["runner"].run(
      [("train", _train_args(model_dir, task=FILE_TASK, module=module), env)])
  text = err.decode()
  data = os.path.join(world["base"], "module_malformed", "task.txt")
  assert code == 1 and text.splitlines() == [
      f"error: Malformed line in {data}: line 2 is not of the form [ids]<TAB>[ids] : [5, x]\\t[7]"
  ], text[-3000:]
  # Found by the preflight read of the file's head: nothing was created, not even MODEL_DIR.
  assert not os.path.exists(model_dir)


def test_huge_line_is_refused_before_parsing_and_never_echoed_whole(tmp_path):
  from synthetic_pretraining import cli  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.data import pipeline  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.synthetic import file_source  # pylint: disable=import-outside-toplevel
  path = tmp_path / "huge.txt"
  path.write_bytes(b"[" + b"1, " * 4_000_000 + b"1]\t[2]\n")  # one 12 MB line
  source = file_source.AuthorsFileSource({"train": str(path)})
  with pytest.raises(cli.UsageError) as e:
    next(pipeline.CheckpointableIterator(source.get_dataset("train", shuffle=False)))
  message = cli.one_line(e.value)
  assert "line 1 is longer than 1048576 bytes" in message and len(message) < 600, message[:600]


# One bad input per binary (every one of BINARIES) in a truly fresh `python -m` process: the
# imports print nothing.
FRESH = [
    ("train", lambda t: _train_args(str(t / "out"), lengths="{'inputs': -5, 'targets': 12}"),
     "error: TASK_FEATURE_LENGTHS['inputs'] must be a positive integer, got -5 "
     "(e.g. {'inputs': 512, 'targets': 512})."),
    ("eval", lambda t: _run_args("eval", f"--gin.CHECKPOINT_PATH='{t}/nothing_here'",
                                 f"--gin.EVAL_OUTPUT_DIR='{t}/out'"), "CHECKPOINT_PATH"),
    ("infer", lambda t: _run_args("infer", f"--gin.CHECKPOINT_PATH='{t}/nothing_here'",
                                  "--gin.SPLIT='validation'",
                                  f"--gin.INFER_OUTPUT_DIR='{t}/out'"), "CHECKPOINT_PATH"),
    ("inspect_checkpoint", lambda t: [f"{t}/out"], "out"),
    ("stats_init", lambda t: [f"--checkpoint={t}/nothing", "--output_dir=" + str(t / "out"),
                              "--scheme=per_param_grouping___init_scale",
                              "--gin_file=gin/models/t5_1_0/tiny.gin"], "nothing"),
    ("export_data", lambda t: ["--task=set", "--num_examples=0", f"--output={t}/out/x.txt"],
     "--num_examples"),
    ("report", lambda t: [f"{t}/no_run", f"--output_dir={t}/out"], "no_run"),
    ("precompile", lambda t: ["--gin_file=gin/models/t5_1_0/tiny.gin",
                              "--gin_file=gin/runs/no_such.gin", "--topology=v4-8",
                              f"--output={t}/out"], "no_such.gin"),
    ("tasks", lambda t: ["--task=sett"], "Did you mean 'set'"),
    ("export_hf", lambda t: [f"--checkpoint={t}/nothing", f"--output_dir={t}/out",
                             "--gin_file=gin/models/t5_1_0/tiny.gin"], "No checkpoint at"),
    ("position_split", lambda t: [f"{t}/out"], "has no run.json"),
]


def test_fresh_processes_print_one_line(tmp_path):
  """Raw stderr of `python -m synthetic_pretraining.<binary>`, imports included: one line."""
  assert sorted(b for b, *_ in FRESH) == sorted(BINARIES)
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env.update(_env())
  started = []
  for binary, make, phrase in FRESH:
    folder = tmp_path / binary
    folder.mkdir()
    started.append((binary, folder, phrase, subprocess.Popen(
        [sys.executable, "-m", MODULES[binary], *make(folder)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    if len([p for *_, p in started if p.poll() is None]) >= PARALLEL:
      started[-PARALLEL][3].wait(timeout=300)
  for binary, folder, phrase, process in started:
    _, err = process.communicate(timeout=300)
    text = err.decode("utf-8", "replace")
    assert process.returncode == 1, (binary, text[-3000:])
    assert len(text.splitlines()) == 1 and text.startswith("error: "), (binary, text[-3000:])
    assert phrase in text, (binary, text)
    assert not os.path.exists(folder / "out"), binary


@pytest.mark.parametrize("binary", sorted(MODULES))
def test_help_is_fast_and_needs_no_heavy_import(binary):
  started = time.perf_counter()
  result = subprocess.run([sys.executable, "-m", MODULES[binary], "--help"], cwd=REPO,
                          env={**os.environ, **_env()}, capture_output=True, text=True, timeout=60)
  assert result.returncode == 0 and result.stderr == "", result.stderr
  assert f"python -m {MODULES[binary]}" in result.stdout, result.stdout
  assert time.perf_counter() - started < 5
