"""The launchers (synthetic_pretraining.launch): dry runs print the expected commands, one per line,
from any working directory; tpu_vm ships the working tree and extra modules; paper_tables checks
its inputs before the first command; mini_table1 runs end to end at toy size."""
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tarfile

import pytest

from synthetic_pretraining.launch import commands as commands_lib
from synthetic_pretraining.launch import mini_table1
from synthetic_pretraining.launch import paper_tables
from synthetic_pretraining.launch import tpu_vm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LAUNCHERS = ("tpu_vm", "mini_table1", "paper_tables", "step_times", "pre_pretraining")


def _launch(name, *flags, cwd):
  """`python -m synthetic_pretraining.launch.<name> FLAGS` in `cwd` (not the checkout)."""
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", f"synthetic_pretraining.launch.{name}", *flags],
                        capture_output=True, text=True, check=False, cwd=cwd, env=env,
                        timeout=300)


def _dry_run(name, *flags, cwd):
  flags = list(flags)
  flags.insert(flags.index("--") if "--" in flags else len(flags), "--dry_run")
  result = _launch(name, *flags, cwd=cwd)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert "'\"'\"'" not in out  # readable quoting: gin strings in double quotes
  return [shlex.split(line) for line in out.splitlines() if line and not line.startswith("#")], out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Every downstream task's files (one line each) and a 'prepared' TFDS squad."""
  root = tmp_path_factory.mktemp("paper_data")
  for task in paper_tables.TSV_TASKS.values():
    (root / "finetuning_data" / task).mkdir(parents=True)
    for name in paper_tables.SPLIT_FILES:
      (root / "finetuning_data" / task / name).write_text("a\tb\n")
  squad = root.joinpath("tensorflow_datasets", *paper_tables.SQUAD_TFDS)
  squad.mkdir(parents=True)
  (squad / "dataset_info.json").write_text("{}")
  return root


@pytest.mark.parametrize("accelerator,workers", [("v3-8", 1), ("v3-32", 4), ("v4-32", 4),
                                                 ("v5litepod-16", 4), ("v2-512", 64)])
def test_worker_count(accelerator, workers):
  assert tpu_vm.num_workers(accelerator) == workers


def test_unknown_accelerator_is_a_clear_error():
  with pytest.raises(ValueError, match="v3-32"):
    tpu_vm.num_workers("tpu-8")


# The launcher's `--help` as `python -m` runs it, then the heavy libraries it imported, on stdout.
_HELP_IMPORTS = """
import contextlib, io, runpy, sys
name = sys.argv.pop()
sys.argv = [name, "--help"]
with contextlib.redirect_stdout(io.StringIO()):
  try:
    runpy.run_module(name, run_name="__main__", alter_sys=True)
  except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in ("jax", "tensorflow", "seqio", "flax", "orbax") if m in sys.modules))
"""


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_launcher_has_a_fast_help_with_its_flags(name, tmp_path):
  result = _launch(name, "--help", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  # Fast because nothing heavy is imported (a clock here would fail on a busy machine).
  imported = subprocess.run([sys.executable, "-c", _HELP_IMPORTS,
                             f"synthetic_pretraining.launch.{name}"], capture_output=True,
                            text=True, check=False, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
  assert imported.returncode == 0 and imported.stdout.strip() == "[]", (imported.stdout,
                                                                      imported.stderr[-3000:])
  assert f"python -m synthetic_pretraining.launch.{name}" in result.stdout
  assert "--output_dir" in result.stdout or "--dry_run" in result.stdout
  assert not list(tmp_path.iterdir())


def test_commands_are_shown_as_the_readme_writes_them():
  command = ["python3", "-m", "x", "--gin.MODEL_DIR='gs://b/x'",
             "--gin.TASK_FEATURE_LENGTHS={'inputs': 96, 'targets': 32}", "it's $HOME", "a b"]
  text = commands_lib.show(command)
  assert text.startswith("python3 -m x --gin.MODEL_DIR=\"'gs://b/x'\" "
                         "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 96, 'targets': 32}\"")
  assert shlex.split(text) == command


@pytest.mark.parametrize("accelerator,workers", [("v3-8", 1), ("v3-32", 4)])
def test_tpu_vm_dry_run(accelerator, workers, tmp_path):
  train = ["python3", "-m", "synthetic_pretraining.train",
           "--gin_file=gin/experiments/pretrain/set.gin", "--gin.MODEL_DIR='gs://b/pretrain/set'"]
  extra = tmp_path / "my_tasks.py"
  extra.write_text("# my own task module\n")
  commands, text = _dry_run("tpu_vm", "--tpu=node", "--zone=us-central1-a",
                            f"--accelerator={accelerator}", "--create", "--setup",
                            f"--extra={extra}", "--", *train, cwd=tmp_path)
  assert f"{workers} worker(s)" in text
  assert f"# pack the working tree of {ROOT} into " in text
  assert "as synthetic_pretraining/user_modules/my_tasks.py" in text
  create, scp, install, run = commands
  assert create[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  assert f"--accelerator-type={accelerator}" in create and "--zone=us-central1-a" in create
  assert scp[4] == "scp" and "--worker=all" in scp
  assert install[4] == "ssh" and "--worker=all" in install
  assert "pip install -q -e '.[tpu]'" in [a for a in install if a.startswith("--command=")][0]
  assert run[4:6] == ["ssh", "node"] and "--worker=all" in run
  remote = [a for a in run if a.startswith("--command=")][0][len("--command="):]
  assert shlex.split(remote) == ["cd", "synthetic_pretraining", "&&", "PYTHONPATH=user_modules",
                                 *train]
  # One command a line, the remote command's gin string readable.
  assert "--gin.MODEL_DIR=\\\"'gs://b/pretrain/set'\\\"" in text
  assert not list(p for p in tmp_path.iterdir() if p != extra)  # nothing packed in a dry run


def _git(repo, *argv):
  subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True,
                 env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                          GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"))


def _members(archive):
  with tarfile.open(archive) as tar:
    return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}


def test_tpu_vm_packs_the_working_tree_with_extras_or_the_head(tmp_path):
  repo = tmp_path / "checkout"
  repo.mkdir()
  _git(repo, "init", "-q")
  (repo / "setup.py").write_text("# setup\n")
  (repo / "train.py").write_text("committed\n")
  (repo / "gone.py").write_text("deleted later\n")
  (repo / ".gitignore").write_text("runs/\n")
  _git(repo, "add", ".")
  _git(repo, "commit", "-q", "-m", "first")
  (repo / "train.py").write_text("changed, not committed\n")
  (repo / "gone.py").unlink()
  (repo / "new_task.py").write_text("untracked\n")
  (repo / "runs").mkdir()
  (repo / "runs" / "big.bin").write_text("ignored\n")
  extra = tmp_path / "mine"
  (extra / "__pycache__").mkdir(parents=True)
  (extra / "__init__.py").write_text("my tasks\n")
  (extra / "__pycache__" / "x.pyc").write_text("cache")

  args = tpu_vm.parser().parse_args(["--tpu=t", "--zone=z", "--setup", f"--source={repo}",
                                     f"--extra={extra}"])
  assert tpu_vm.check(args) == str(repo)
  manifest = tpu_vm.pack(args, str(repo), str(tmp_path / "tree.tar.gz"))
  files = _members(tmp_path / "tree.tar.gz")
  assert files["train.py"] == "changed, not committed\n" and files["new_task.py"] == "untracked\n"
  assert "gone.py" not in files and "runs/big.bin" not in files
  assert files["user_modules/mine/__init__.py"] == "my tasks\n"
  assert not any("__pycache__" in name for name in files)
  assert manifest["changed_since_head"] == ["gone.py", "new_task.py", "train.py"]
  assert json.loads(files["SHIPPED.json"])["extras"] == ["mine"]

  args = tpu_vm.parser().parse_args(["--tpu=t", "--zone=z", "--setup", f"--source={repo}",
                                     "--ship=head"])
  tpu_vm.pack(args, str(repo), str(tmp_path / "head.tar.gz"))
  files = _members(tmp_path / "head.tar.gz")
  assert files["train.py"] == "committed\n" and files["gone.py"] == "deleted later\n"
  assert "new_task.py" not in files

  bad = tpu_vm.parser().parse_args(["--tpu=t", "--zone=z", "--setup", f"--source={tmp_path}"])
  with pytest.raises(tpu_vm.LaunchError, match="not a checkout"):
    tpu_vm.check(bad)


def test_paper_table_dry_runs(tmp_path, data_dir):
  common = ("--tpu=node", "--zone=z", "--accelerator=v3-32", "--bucket=gs://b/x",
            f"--data_dir={data_dir}")
  commands, text = _dry_run("paper_tables", "--table=1", *common, cwd=tmp_path)
  assert "4 worker(s)" in text and "42 finetuning runs" in text  # 6 tasks x (random, natural, 5 tasks)
  assert "# estimate: about " in text.splitlines()[1]
  remote = [shlex.split([a for a in c if a.startswith("--command=")][0][10:])
            for c in commands[:-1]]
  pretrain = [r for r in remote if any("experiments/pretrain/" in a for a in r)]
  assert len(pretrain) == 5
  finetune = [r for r in remote if any("experiments/finetune/" in a for a in r)]
  assert len(finetune) == 42 and all(f"--gin.DATA_DIR='{data_dir}'" in r for r in finetune)
  squad = [r for r in finetune if "--gin_file=gin/experiments/finetune/squad.gin" in r]
  assert len(squad) == 7
  assert all(f"TFDS_DATA_DIR={data_dir}/tensorflow_datasets" in r for r in squad)
  assert commands[-1][:3] == ["python3", "-m", "synthetic_pretraining.report"]
  assert len([a for a in commands[-1] if a.startswith("gs://b/x/finetune/")]) == 42

  commands, text = _dry_run("paper_tables", "--table=2", *common, "--stats_sources=set,lime",
                            "--downstream=squad", "--seeds=1,2", cwd=tmp_path)
  assert "36 finetuning runs" in text  # 2 sources x 9 schemes x 2 seeds
  assert "gin/init/per_param_grouping___init_scale.gin" in text and "--gin.SEED=2" in text

  commands, text = _dry_run("paper_tables", "--table=3", *common, "--values=0.2,-0.4",
                            cwd=tmp_path)
  assert "12 finetuning runs" in text and "PRE_ATTN_LN_VALUE=-0.4" in text
  assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("flags,message", [
    ((), "--data_dir is not given"),
    (("--data_dir={missing}",), "--data_dir={missing} does not exist"),
    (("--data_dir={data}", "--tfds_data_dir={missing}"),
     "squad: TFDS squad/v1.1:3.0.0 is not prepared in {missing}"),
    (("--data_dir={data}", "--schemes=no_such_scheme", "--table=2"),
     "gin file(s) not found: gin/init/no_such_scheme.gin"),
    (("--data_dir={data}", "--bucket=/local/dir"), "must be a gs:// URL"),
])
def test_paper_tables_refuses_missing_inputs_before_the_first_command(flags, message, tmp_path,
                                                                      data_dir):
  values = {"missing": tmp_path / "no_data", "data": data_dir}
  flags = [f.format(**values) for f in flags]
  table = [] if any(f.startswith("--table") for f in flags) else ["--table=1"]
  bucket = [] if any(f.startswith("--bucket") for f in flags) else ["--bucket=gs://b/x"]
  result = _launch("paper_tables", *table, *bucket, "--tpu=node", "--zone=z", "--dry_run",
                   *flags, cwd=tmp_path)
  assert result.returncode == 2 and result.stdout == ""
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(**values) in lines[0]


def test_paper_tables_estimate_follows_the_slice():
  args = paper_tables._parser().parse_args(["--table=1", "--bucket=gs://b", "--tpu=t", "--zone=z",
                                            "--accelerator=v3-8", "--data_dir=gs://d"])
  commands, _ = paper_tables.grid(args)
  pretrain = paper_tables.run_seconds(commands[0][0], tflops=100.0)
  # 80k steps of batch 128 at 512/512 of T5 1.0 small: about 27.5 TFLOP each.
  assert 80000 * 25e12 / 100e12 < pretrain < 80000 * 30e12 / 100e12 + 3600
  slow, fast = (paper_tables.estimate(paper_tables._parser().parse_args(
      ["--table=1", "--bucket=gs://b", "--tpu=t", "--zone=z", f"--accelerator={a}"]), commands)
      for a in ("v3-8", "v4-32"))
  # Training follows the slice's FLOPs; beam-search decoding (latency-bound) does not.
  hours = lambda line: float(line.split("pre-training ")[1].split(" h")[0])  # noqa: E731
  assert hours(slow) > 3 * hours(fast)


def test_mini_table1_gpu_preset_dry_run(tmp_path):
  commands, text = _dry_run("mini_table1", "--preset=gpu", "--output_dir=/out", cwd=tmp_path)
  head = text.splitlines()[0]
  assert "1 pre-training runs, 6 finetuning runs" in head
  minutes = float(head.split("about ")[1].split(" minutes")[0])
  assert minutes <= 10
  pretrain = [c for c in commands if "--gin_file=gin/runs/pretrain.gin" in c]
  finetune = [c for c in commands if "--gin_file=gin/runs/finetune.gin" in c]
  assert all("--gin_file=gin/models/t5_1_0/small.gin" in c for c in pretrain + finetune)
  assert all("--gin.vocabularies.named_vocabulary.name='cpu_sp'" in c for c in pretrain + finetune)
  assert all("--gin.TASK_FEATURE_LENGTHS={'inputs': 96, 'targets': 96}" in c for c in pretrain)
  assert all("--gin.BATCH_SIZE=128" in c and "--gin.TRAIN_STEPS=2000" in c for c in pretrain)
  assert all("--gin.TASK_FEATURE_LENGTHS={'inputs': 96, 'targets': 32}" in c for c in finetune)
  assert all("--gin.MIXTURE_OR_TASK_NAME='squad_window'" in c for c in finetune)
  stats = [c for c in finetune if "--gin_file=gin/init/per_param_grouping___init_mean_std.gin" in c]
  assert [[a for a in c if a.startswith("--gin.STATS_SOURCE")] for c in stats] == [
      ["--gin.STATS_SOURCE='/out/pretrain/set/seed_0'"]] * 2
  assert sorted({a for c in finetune for a in c if a.startswith("--gin.SEED=")}) == [
      "--gin.SEED=1", "--gin.SEED=2"]
  assert all("--gin.LEARNING_RATE=0.001" in c for c in finetune)
  assert commands[-1][:3] == ["python", "-m", "synthetic_pretraining.report"]
  # Without --output_dir the runs go under the working directory.
  commands, _ = _dry_run("mini_table1", "--preset=demo", cwd=tmp_path)
  assert f"--gin.MODEL_DIR='{tmp_path}/runs/mini_table1_demo/pretrain/set/seed_0'" in commands[0]
  assert not list(tmp_path.iterdir())


def test_mini_table1_presets_fit_their_budgets_and_natural_gets_the_most_compute():
  # full: 2 h 15 min of runs on the idle 2-core machine; demo (make demo) about 13 minutes.
  budgets = {"full": 135, "demo": 14, "gpu": 10}
  for name, minutes in budgets.items():
    preset = mini_table1.PRESETS[name]
    assert mini_table1.estimate_minutes(preset) <= minutes, name
    tokens = mini_table1.pretraining_tokens(preset)
    if preset.natural:
      assert tokens["natural_text"] == max(tokens.values()), name
    assert preset.finetune_task == "squad_window" and len(preset.seeds) >= 2 or name == "demo"
    # squad_window inputs are at most 95 tokens with EOS: none is cut.
    assert preset.finetune_lengths[0] >= 96
  full = mini_table1.PRESETS["full"]
  assert len(full.stats_seeds) >= 2 and full.natural and set(full.stats_schemes) == {
      "stats_mean_std", "stats_scale"}


def test_pretraining_lengths_must_cover_the_finetuning_lengths():
  with pytest.raises(ValueError, match="untrained"):
    dataclasses.replace(mini_table1.PRESETS["full"], pretrain={"set": (64, 64, 10)})


def test_full_preset_pretraining_lengths_cut_no_set_example():
  runs = {r.label: r for r in mini_table1.pretrain_runs(mini_table1.PRESETS["full"], "/tmp/x")}
  shares = mini_table1.truncation_share(runs["set"].flags, num_examples=64)
  assert shares == {"inputs": 0.0, "targets": 0.0}


def test_preflight_refuses_a_task_that_would_be_cut_in_most_examples():
  preset = dataclasses.replace(mini_table1.PRESETS["toy"], pretrain={"set": (16, 16, 4)},
                               set_max_body=40, finetune_lengths=(16, 8))
  with pytest.raises(SystemExit, match="would cut most examples"):
    mini_table1.preflight(mini_table1.pretrain_runs(preset, "/tmp/x"), num_examples=32)


def test_swept_rates_reach_the_later_seeds():
  preset = dataclasses.replace(mini_table1.PRESETS["toy"], seeds=(1, 2), stats_seeds=(0, 1))
  runs = mini_table1.finetune_runs(preset, "/o", {"random": 3e-3, "set": 1e-2,
                                                  "stats_mean_std(set)": 3e-3})
  first = [r for r in runs if r.seed == 1]
  assert sorted({r.learning_rate for r in first}) == [3e-3, 1e-2] and len(first) == 6
  later = {r.label: r for r in runs if r.seed == 2}
  assert later["random"].learning_rate == 3e-3 and "--gin.LEARNING_RATE=0.003" in later["random"].flags
  assert "--gin.PRETRAINED_CHECKPOINT='/o/pretrain/set/seed_1'" in later["set"].flags


def test_mini_table1_driver_runs_end_to_end_at_toy_size(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # gin files and data come with the package, not the checkout
  from synthetic_pretraining import report  # pylint: disable=import-outside-toplevel
  out = tmp_path / "mini"
  assert mini_table1.main(["--preset=toy", f"--output_dir={out}"]) == 0
  text = (out / "report" / "report.md").read_text()
  for label in ("random", "set", "stats_mean_std(set)"):
    assert f"| {label} | " in text
  assert "What the validation token accuracy is made of" in text and "## Pre-training" in text
  assert "## Learning rate per init" in text
  # squad_window's trivial-rule floors, on the test questions the runs decoded, beside random.
  assert "## Trivial-rule floors" in text and "| *random init (seeds)* |" in text
  assert "**squad_window, em**" in text and "above the floor?" in text
  assert str(out) not in (out / "report" / "report.csv").read_text()
  chosen = json.loads((out / "learning_rates.json").read_text())
  rate = chosen["stats_mean_std(set)"]["rate"]
  record = json.loads((out / "finetune" / "stats_mean_std_set" / f"lr_{rate:g}" / "seed_1" /
                       "run.json").read_text())
  assert record["init"] == {"kind": "statistics", "scheme": "per_param_grouping___init_mean_std",
                            "source": str(out / "pretrain" / "set" / "seed_0"),
                            "source_format": "ours"}
  assert record["label"] == "stats_mean_std(set)" and record["lengths"] == {"inputs": 32,
                                                                            "targets": 8}
  assert (out / "finetune" / "stats_mean_std_set" / f"lr_{rate:g}" / "seed_1" /
          "position_split.json").exists()
  # The position split from the command line, under the run's own config.gin.
  from synthetic_pretraining import position_split  # pylint: disable=import-outside-toplevel
  random_dir = out / "finetune" / "random" / f"lr_{chosen['random']['rate']:g}" / "seed_1"
  (random_dir / "position_split.json").unlink()
  assert position_split.main([str(random_dir), "--max_batches=1", "--write"]) == 0
  assert position_split.read(str(random_dir))["categories"]["all"]["tokens"] > 0
  # The report reads run records only: it still works with every config.gin gone.
  runs = [str(out / "finetune" / label.replace("(", "_").replace(")", "") /
               f"lr_{c['rate']:g}" / "seed_1") for label, c in chosen.items()]
  for config in out.glob("**/config.gin"):
    config.unlink()
  assert report.main(runs + ["--metrics=eval:accuracy", f"--output_dir={tmp_path / 'again'}"]) == 0
  assert "| set | " in (tmp_path / "again" / "report.md").read_text()
