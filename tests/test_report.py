"""The report: the paper's model-selection protocol and the benefit arithmetic on fabricated runs."""
import csv
import json
import os

import pytest

from synthetic_pretraining import report


def _run(root, name, task, em_by_step, acc_by_step, config="", label=None):
  path = root / name
  path.mkdir(parents=True)
  with open(path / "metrics.jsonl", "w") as f:
    for step, acc in acc_by_step.items():
      f.write(json.dumps({"step": step, "kind": "eval", "split": "validation", "task": task,
                          "accuracy": acc}) + "\n")
    for step, em in em_by_step.items():
      f.write(json.dumps({"step": step, "kind": "infer", "split": "test", "task": task,
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


def test_labels_come_from_the_config():
  assert report.label_from_config("INITIAL_CHECKPOINT_PATH = 'runs/pretrain/set'\n") == "set"
  assert report.label_from_config(
      "stats_init.StatisticsInitializer.scheme = 'per_param_grouping___init_scale'\n") == \
      "stats:per_param_grouping___init_scale"
  assert report.label_from_config("INITIAL_CHECKPOINT_PATH = None\n") == "random"


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
