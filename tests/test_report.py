"""The report: the paper's model-selection protocol and the benefit arithmetic on fabricated runs."""
import csv
import json
import os

import pytest

from synthetic_pretraining import report


def _run(root, name, task, em_by_step, acc_by_step, config="", label=None, split="test"):
  path = root / name
  path.mkdir(parents=True)
  with open(path / "metrics.jsonl", "w") as f:
    for step, acc in acc_by_step.items():
      f.write(json.dumps({"step": step, "kind": "train", "split": "train", "task": task,
                          "accuracy": 1.0}) + "\n")  # training accuracy never selects a step
      f.write(json.dumps({"step": step, "kind": "eval", "split": "validation", "task": task,
                          "accuracy": acc}) + "\n")
    for step, em in em_by_step.items():
      f.write(json.dumps({"step": step, "kind": "infer", "split": split, "task": task,
                          "em": em, "f1": em + 1}) + "\n")
  (path / "config.gin").write_text(f"MIXTURE_OR_TASK_NAME = '{task}'\nSEED = 1\n" + config)
  if label:
    (path / "label.txt").write_text(label)
  return str(path)


def test_score_is_taken_at_the_step_of_best_validation_accuracy(tmp_path):
  path = _run(tmp_path, "r", "mtop", {100: 10.0, 200: 30.0, 300: 20.0},
              {100: 0.5, 200: 0.6, 300: 0.7})
  run = report.read_run(path)
  assert (run.best_step, run.metrics["em"]) == (300, 20.0)  # not the max em (30 at step 200)
  assert run.label == "random" and run.task == "mtop"


def test_ties_pick_the_first_best_step_and_test_beats_validation(tmp_path):
  path = _run(tmp_path, "r", "mtop", {100: 10.0, 200: 30.0}, {100: 0.7, 200: 0.7})
  with open(os.path.join(path, "metrics.jsonl"), "a") as f:  # validation decoded as well
    f.write(json.dumps({"step": 100, "kind": "infer", "split": "validation", "task": "mtop",
                        "em": 99.0}) + "\n")
  run = report.read_run(path)
  assert (run.best_step, run.metrics["em"], run.infer_split) == (100, 10.0, "test")
  assert run.metrics["eval:accuracy"] == pytest.approx(70.0)


def test_validation_inference_is_used_when_no_test_split_was_decoded(tmp_path, capsys):
  # SQuAD's protocol: inference eval on validation.
  runs = [_run(tmp_path, n, "squad_v010_allanswers", {5: em}, {5: 0.5}, label=n, split="validation")
          for n, em in (("random", 10.0), ("natural", 20.0))]
  assert report.main(runs + [f"--output_dir={tmp_path / 'out'}"]) == 0
  assert "squad_v010_allanswers: validation (2 runs)" in capsys.readouterr().out


GIN_CONFIG = """# Macros:
# ==============================================================================
INITIAL_CHECKPOINT_PATH = %PRETRAINED_CHECKPOINT
MIXTURE_OR_TASK_NAME = 'mtop'
PRETRAINED_CHECKPOINT = \\
    '{pretrained}'
SEED = 7

# Parameters for train:
# ==============================================================================
train.initial_checkpoint_path = %INITIAL_CHECKPOINT_PATH
train.seed = %SEED
"""


def test_config_parsing_follows_macros_and_continued_lines(tmp_path):
  # A pretraining run of ours: its config names the pretraining task, whatever its directory.
  pretrained = tmp_path / "pretrain" / "run_17"
  (pretrained / "checkpoint_800").mkdir(parents=True)
  (pretrained / "config.gin").write_text("MIXTURE_OR_TASK_NAME = 'lime'\n")
  for target, want in ((pretrained, "lime"), (pretrained / "checkpoint_800", "lime"),
                       (tmp_path / "t5x" / "natural_t5_small", "natural_t5_small")):
    config = GIN_CONFIG.format(pretrained=target)
    assert report.label_from_config(config) == want
  bindings = report.parse_config(GIN_CONFIG.format(pretrained="/p"))
  assert report.config_value(bindings, "SEED") == 7
  assert report.config_value(bindings, "train.initial_checkpoint_path") == "/p"


def test_labels_come_from_the_config():
  assert report.label_from_config("INITIAL_CHECKPOINT_PATH = 'runs/pretrain/set'\n") == "set"
  assert report.label_from_config(
      "STATS_SOURCE = 'runs/nothing_here/set1_minus_set2'\n"
      "StatisticsInitializer.checkpoint = %STATS_SOURCE\n"
      "StatisticsInitializer.scheme = 'per_param_grouping___init_scale'\n") == \
      "stats:per_param_grouping___init_scale(set1_minus_set2)"
  assert report.label_from_config(
      "PRE_ATTN_LN_VALUE = -0.4\n"
      "stats_init.CustomValueInitializer.constants = {'pre_attn_ln': %PRE_ATTN_LN_VALUE}\n"
      "train.param_initializer = @stats_init.CustomValueInitializer()\n") == \
      "custom:pre_attn_ln=-0.4"
  assert report.label_from_config(
      "stats_init.CustomValueInitializer.constants = \\\n    {'pre_attn_ln': 0.4,\n"
      "     'q': 0.2}\ntrain.param_initializer = @stats_init.CustomValueInitializer()\n") == \
      "custom:pre_attn_ln=0.4,q=0.2"
  assert report.label_from_config("INITIAL_CHECKPOINT_PATH = None\n") == "random"
  assert report.label_from_config("") == "random"


def test_explicit_labels_win(tmp_path, capsys):
  a = _run(tmp_path, "a", "mtop", {5: 10.0}, {5: 0.5}, label="from_file")
  b = _run(tmp_path, "b", "mtop", {5: 30.0}, {5: 0.5})
  c = _run(tmp_path, "c", "mtop", {5: 20.0}, {5: 0.5})
  labels = tmp_path / "labels.txt"
  labels.write_text(f"# run=label\n{b}/=natural\n")
  out = tmp_path / "out"
  assert report.main([a, b, c, f"--label={a}=random", f"--label_file={labels}",
                      "--label", f"{c}=mine", f"--output_dir={out}"]) == 0
  text = (out / "report.md").read_text()
  assert "| mine | 20.00 ± 0.00 (n=1), benefit 50% | 50% |" in text
  assert report.main([a, f"--label={tmp_path}/elsewhere=x"]) == 1
  assert "not reported" in capsys.readouterr().err


def test_a_missing_baseline_is_said_not_silent(tmp_path, capsys):
  runs = [_run(tmp_path, n, "mtop", {5: em}, {5: 0.5}, label=n)
          for n, em in (("random", 1.0), ("natural_t5_small", 5.0), ("set", 3.0))]
  assert report.main(runs + [f"--output_dir={tmp_path / 'o1'}"]) == 0
  assert "no run labelled 'natural'" in capsys.readouterr().err
  assert report.main(runs + [f"--output_dir={tmp_path / 'o2'}", "--natural=natural_t5_small"]) == 0
  text = (tmp_path / "o2" / "report.md").read_text()
  assert "| set | 3.00 ± 0.00 (n=1), benefit 50% | 50% |" in text


def test_benefit_arithmetic(tmp_path, capsys):
  runs = []
  # Task A: random 10, natural 30, set 20 and 24 over two seeds (mean 22 -> benefit 60%).
  for name, em, label in (("a_r", 10, "random"), ("a_n", 30, "natural"), ("a_s1", 20, "set"),
                          ("a_s2", 24, "set")):
    runs.append(_run(tmp_path, name, "task_a", {5: em}, {5: 0.5}, label=label))
  # Task B: random 0, natural 50, set 10 (benefit 20%): mean benefit of set = 40%.
  for name, em, label in (("b_r", 0, "random"), ("b_n", 50, "natural"), ("b_s", 10, "set")):
    runs.append(_run(tmp_path, name, "task_b", {5: em}, {5: 0.5}, label=label))
  out = tmp_path / "out"
  assert report.main(runs + [f"--output_dir={out}"]) == 0
  text = (out / "report.md").read_text()
  set_row = [l for l in text.splitlines() if l.startswith("| set |")][0]
  assert "22.00 ± 2.83 (n=2), benefit 60%" in set_row and "benefit 20%" in set_row
  assert set_row.rstrip().endswith("| 40% |")
  rows = list(csv.DictReader(open(out / "report.csv")))
  summary = {(r["task"], r["method"]): r for r in rows if r["kind"] == "summary"}
  assert float(summary[("task_a", "set")]["benefit"]) == pytest.approx(0.6)
  assert float(summary[("task_b", "natural")]["benefit"]) == pytest.approx(1.0)
  assert (out / "report.png").stat().st_size > 1000
  assert "benefit 60%" in capsys.readouterr().out


def test_runs_that_cannot_be_scored_are_clear_errors(tmp_path, capsys):
  assert report.main([str(tmp_path / "nothing")]) == 1
  assert "no metrics.jsonl" in capsys.readouterr().err
  path = _run(tmp_path, "gap", "mtop", {100: 1.0}, {100: 0.1, 200: 0.9})
  assert report.main([path]) == 1
  assert "no inference eval at step 200" in capsys.readouterr().err
  # The teacher-forced comparison still works for such a run.
  assert report.main([path, "--metric=eval:accuracy", f"--output_dir={tmp_path / 'o'}"]) == 0
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "metrics.jsonl").write_text(json.dumps({"step": 1, "kind": "train", "split": "train",
                                                   "loss": 1.0}) + "\n")
  assert report.main([str(empty)]) == 1
  assert "no teacher-forced validation 'accuracy'" in capsys.readouterr().err
  (empty / "metrics.jsonl").write_text("{not json\n")
  assert report.main([str(empty)]) == 1
  assert "metrics.jsonl: line 1 is not JSON" in capsys.readouterr().err


def _upload(local_dir, remote_dir):
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  for name in os.listdir(local_dir):
    paths.write_atomic(paths.join(remote_dir, name),
                       paths.read_bytes(os.path.join(local_dir, name)))
  return remote_dir


def test_runs_and_output_on_gs(tmp_path, gcs, capsys):
  # Run directories, the pretraining run named by INITIAL_CHECKPOINT_PATH and --output_dir all in
  # a bucket (the emulator).
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  paths.write_atomic(f"{gcs.url}/pretrain/config.gin", "MIXTURE_OR_TASK_NAME = 'lime_deduct'\n")
  finetuned = f"INITIAL_CHECKPOINT_PATH = '{gcs.url}/pretrain/checkpoint_100'\n"
  runs = [_upload(_run(tmp_path, name, "mtop", {5: em}, {5: 0.5}, config=config, label=label),
                  f"{gcs.url}/runs/{name}")
          for name, em, config, label in (("random", 10.0, "", "random"),
                                          ("natural", 30.0, "", "natural"),
                                          ("lime", 20.0, finetuned, None))]
  assert report.main(runs + [f"--output_dir={gcs.url}/report"]) == 0
  assert "| lime_deduct | 20.00 ± 0.00 (n=1), benefit 50%" in capsys.readouterr().out
  assert gcs.objects("report/") == ["report/report.csv", "report/report.md", "report/report.png"]
  assert paths.read_bytes(f"{gcs.url}/report/report.png").startswith(b"\x89PNG")
  assert "lime_deduct" in paths.read_text(f"{gcs.url}/report/report.md")
