"""The report: selection protocol, benefit arithmetic and labels, from run records (no gin text)."""
import csv
import json
import os

import pytest
from records import fake_run as _run
from records import write_run_record as _record

from synthetic_pretraining import report
from synthetic_pretraining.report import protocol

pytestmark = pytest.mark.unit


def test_score_is_taken_at_the_step_of_best_validation_accuracy(tmp_path):
  path = _run(tmp_path, "r", "mtop", {100: 10.0, 200: 30.0, 300: 20.0},
              {100: 0.5, 200: 0.6, 300: 0.7})
  run = report.read_run(path)
  assert (run.best_step, run.metrics["em"]) == (300, 20.0)  # not the max em (30 at step 200)
  assert run.label == "random" and run.task == "mtop"


def test_ties_pick_the_first_best_step_and_test_beats_validation(tmp_path):
  path = _run(tmp_path, "r", "mtop", {100: 10.0, 200: 30.0}, {100: 0.7, 200: 0.7})
  with open(f"{path}/metrics.jsonl", "a") as f:  # validation decoded as well
    f.write(json.dumps({"step": 100, "kind": "infer", "split": "validation", "task": "mtop",
                        "em": 99.0}) + "\n")
  run = report.read_run(path)
  assert (run.best_step, run.metrics["em"], run.infer_split) == (100, 10.0, "test")
  assert run.metrics["eval:accuracy"] == pytest.approx(70.0)


def test_methods_come_from_run_records_not_gin(tmp_path):
  # Pre-training runs of ours: their run.json names the task, whatever their directory.
  _record(tmp_path / "pretrain" / "run_17", "lime")
  (tmp_path / "pretrain" / "run_17" / "checkpoint_800").mkdir()
  checkpoint = {"kind": "checkpoint", "path": str(tmp_path / "pretrain" / "run_17"),
                "load": "all_but_embedding"}
  step_dir = dict(checkpoint, path=str(tmp_path / "pretrain" / "run_17" / "checkpoint_800"))
  stats = {"kind": "statistics", "scheme": "per_param_grouping___init_scale",
           "source": str(tmp_path / "pretrain" / "run_17")}
  custom = {"kind": "custom", "constants": {"pre_attn_ln": -0.4}, "stds": {}}
  for name, init, want in (("a", checkpoint, "lime"), ("b", step_dir, "lime"),
                           ("c", stats, "stats:per_param_grouping___init_scale(lime)"),
                           ("d", custom, "custom:pre_attn_ln=-0.4"), ("e", None, "random")):
    path = _run(tmp_path, name, "mtop", {5: 1.0}, {5: 0.5}, init=init)
    assert not list((tmp_path / name).glob("*.gin"))
    assert report.read_run(path).label == want
  labelled = _run(tmp_path, "f", "mtop", {5: 1.0}, {5: 0.5}, init=stats, label="stats(set)")
  run = report.read_run(labelled)
  assert (run.label, run.source) == ("stats(set)", "lime")


def test_a_run_without_a_record_is_a_clear_error(tmp_path, capsys):
  path = _run(tmp_path, "r", "mtop", {5: 1.0}, {5: 0.5})
  (tmp_path / "r" / "run.json").unlink()
  (tmp_path / "r" / "config.gin").write_text("MIXTURE_OR_TASK_NAME = 'mtop'\n")
  assert report.main([path, f"--output_dir={tmp_path / 'o'}"]) == 1
  assert "no run.json" in capsys.readouterr().err


def _grid(tmp_path, values, task="squad"):
  runs = []
  for label, scores in values.items():
    for seed, em in enumerate(scores, 1):
      runs.append(_run(tmp_path, f"{label}_{seed}", task, {5: em}, {5: 0.5}, label=label,
                       seed=seed))
  return runs


def test_benefit_only_where_natural_clears_the_seed_spread(tmp_path):
  # Well separated: random 10 ± 1, natural 30 ± 1 -> gap 20 > 3 x 1; set mean 22 -> 60%.
  runs = _grid(tmp_path / "a", {"random": [9, 11], "natural": [29, 31], "set": [20, 24]})
  (c,) = protocol.compare([report.read_run(r) for r in runs], "em")
  assert c.benefit_defined and c.rows["set"].benefit == pytest.approx(0.6)
  assert c.rows["set"].diff == pytest.approx(12.0)
  assert c.rows["set"].diff_se == pytest.approx((8 / 2 + 2 / 2) ** 0.5)
  # Ill-conditioned: natural - random = 2 with spreads of 1.41: no ratio, differences instead.
  runs = _grid(tmp_path / "b", {"random": [9, 11], "natural": [11, 13], "set": [60, 64]})
  out = tmp_path / "out"
  assert report.main(runs + ["--metrics=em", f"--output_dir={out}"]) == 0
  text = (out / "report.md").read_text()
  assert "No benefit ratio: natural − random = 2.00 does not exceed 3 ×" in text
  set_row = [l for l in text.splitlines() if l.startswith("| set |")][0]
  assert "62.00 ± 2.83 (n=2)" in set_row and "+52.00 ± 2.24" in set_row and "%" not in set_row
  rows = list(csv.DictReader(open(out / "report.csv")))
  summary = {r["method"]: r for r in rows if r["kind"] == "summary"}
  assert summary["set"]["benefit"] == "" and float(summary["set"]["diff"]) == pytest.approx(52)
  assert (out / "report.png").stat().st_size > 1000


def test_statistics_inits_are_a_share_of_their_source(tmp_path):
  _record(tmp_path / "pretrain" / "set", "set", label="set")
  stats = {"kind": "statistics", "scheme": "s", "source": str(tmp_path / "pretrain" / "set")}
  checkpoint = {"kind": "checkpoint", "path": str(tmp_path / "pretrain" / "set"), "load": "all"}
  runs = [_run(tmp_path, "r", "squad", {5: 10.0}, {5: 0.5}, label="random"),
          _run(tmp_path, "n", "squad", {5: 20.0}, {5: 0.5}, label="natural"),
          _run(tmp_path, "s", "squad", {5: 30.0}, {5: 0.5}, init=checkpoint),
          _run(tmp_path, "t", "squad", {5: 15.0}, {5: 0.5}, init=stats, label="stats(set)")]
  (c,) = protocol.compare([report.read_run(r) for r in runs], "em")
  assert c.rows["stats(set)"].share_of_source == pytest.approx(0.25)  # 5 of set's 20 points
  assert c.rows["stats(set)"].benefit == pytest.approx(0.5)  # against natural's 10 points
  assert c.rows["set"].share_of_source is None
  # A source whose own benefit is within the seed spread gives no share.
  runs.append(_run(tmp_path, "s2", "squad", {5: 5.0}, {5: 0.5}, init=checkpoint, seed=2))
  (c,) = protocol.compare([report.read_run(r) for r in runs], "em")
  assert c.rows["set"].mean == 17.5 and c.rows["stats(set)"].share_of_source is None


def test_pretraining_plateau_flag(tmp_path):
  for name, curve in (("flat", {100: 0.5, 200: 0.59, 300: 0.595, 400: 0.6}),
                      ("rising", {100: 0.2, 200: 0.3, 300: 0.4, 400: 0.5})):
    _run(tmp_path, name, "set", {}, curve)
  flat, rising = (protocol.read_pretraining(str(tmp_path / n)) for n in ("flat", "rising"))
  assert flat.plateaued and flat.final_accuracy == pytest.approx(60.0)
  assert not rising.plateaued and rising.late_gain == pytest.approx(10.0)


def test_runs_that_cannot_be_scored_are_clear_errors(tmp_path, capsys):
  assert report.main([str(tmp_path / "nothing")]) == 1
  assert "no run.json" in capsys.readouterr().err
  path = _run(tmp_path, "gap", "mtop", {100: 1.0}, {100: 0.1, 200: 0.9})
  assert report.main([path, "--metrics=em"]) == 1
  assert "no inference eval at step 200" in capsys.readouterr().err
  # The teacher-forced comparison still works for such a run.
  assert report.main([path, "--metrics=eval:accuracy", f"--output_dir={tmp_path / 'o'}"]) == 0
  empty = tmp_path / "empty"
  _record(empty, "mtop")
  (empty / "metrics.jsonl").write_text(json.dumps({"step": 1, "kind": "train", "split": "train",
                                                   "loss": 1.0}) + "\n")
  assert report.main([str(empty)]) == 1
  assert "no teacher-forced validation 'accuracy'" in capsys.readouterr().err
  (empty / "metrics.jsonl").write_text("{not json\n")
  assert report.main([str(empty)]) == 1
  assert "metrics.jsonl: line 1 is not JSON" in capsys.readouterr().err


HAND_MADE = [{"input": "question: which colour? context: red blue green", "target": "red",
              "answers": ["red"], "prediction": "x"},
             {"input": "question: which number? context: one two", "target": "two",
              "answers": ["two", "Two"], "prediction": "x"}]


def test_floors_on_a_hand_made_case():
  from synthetic_pretraining.report import floors  # pylint: disable=import-outside-toplevel
  floor = floors.compute(HAND_MADE, draws=4000, task="squad")
  assert (floor.n, floor.k) == (2, 1)
  # The first word: 'red' right, 'one' wrong.
  assert floor.scores["first_words"] == {"em": (50.0, 0.0), "f1": (50.0, 0.0)}
  # The whole context: no exact match; F1 (1/3 precision, recall 1) -> 0.5 and 2/3.
  assert floor.scores["whole_context"]["em"] == (0.0, 0.0)
  assert floor.scores["whole_context"]["f1"][0] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
  # One random word: right with probability 1/3 and 1/2.
  mean, std = floor.scores["random_span"]["em"]
  assert mean == pytest.approx(100 * (1 / 3 + 1 / 2) / 2, abs=1.0) and 20 < std < 40
  assert floor.best("em")[:2] == ("first_words", 50.0)
  assert floor.best("f1")[:2] == ("whole_context", pytest.approx(58.333, abs=0.01))
  # Above only by more than the larger spread.
  assert floors.above_floor(60.0, 5.0, floor, "em") and not floors.above_floor(54.0, 5.0, floor,
                                                                                "em")
  assert floors.above_floor(99.0, 0.0, floor, "accuracy") is None
  # Without every gold answer (a TSV task) the target itself is the gold, raw EM.
  plain = floors.compute([{"input": "add one two", "target": "add"}], draws=3)
  assert plain.scores["first_words"]["em"] == (100.0, 0.0)
  assert floors.context_of("question: q? context: a b") == "a b"
  assert floors.context_of("translate: context: x") == "translate: context: x"


def _decoded(path, task, step, rows):
  directory = os.path.join(path, "inference_eval")
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, f"{task}-{step:06d}.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)


def test_report_prints_floors_beside_random_names_runs_and_plots_curves(tmp_path):
  runs = []
  for label, ems in (("random", [40.0, 60.0]), ("set", [90.0, 95.0])):
    for seed, em in enumerate(ems, 1):
      path = _run(tmp_path / "runs" / label, f"seed_{seed}", "squad_window",
                  {5: em - 20, 10: em}, {5: 0.4, 10: 0.5}, label=label, seed=seed)
      _decoded(path, "squad_window", 5, HAND_MADE)
      _decoded(path, "squad_window", 10, HAND_MADE)
      runs.append(path)
  out = tmp_path / "out"
  assert report.main(runs + ["--metrics=em,f1", f"--output_dir={out}"]) == 0
  text = (out / "report.md").read_text()
  assert "## Trivial-rule floors" in text and "| first_words | 50.00 ± 0.00 |" in text
  assert "| *random init (seeds)* | 50.00 ± 14.14 (n=2) |" in text
  em_table = text[text.index("**squad_window, em**"):text.index("**squad_window, f1**")]
  assert "| set | 92.50 ± 3.54 (n=2) |" in em_table and "yes (+42.50 vs first_words) |" in em_table
  assert [l for l in em_table.splitlines() if l.startswith("| random |")][0].endswith(
      "no (+0.00 vs first_words) |")
  rows = list(csv.DictReader(open(out / "report.csv")))
  assert {r["run"] for r in rows if r["kind"] == "run"} == {
      "random/seed_1", "random/seed_2", "set/seed_1", "set/seed_2"}
  assert not any(str(tmp_path) in v for r in rows for v in r.values())
  assert {r["method"] for r in rows if r["kind"] == "floor"} == {
      "random_span", "first_words", "whole_context"}
  run = report.read_run(runs[0])
  assert run.curves["em"] == [(5, 20.0), (10, 40.0)]
  assert run.curves["eval:accuracy"] == [(5, 40.0), (10, 50.0)]
  assert (out / "report.png").stat().st_size > 1000


def test_run_names_drop_the_common_folder():
  assert protocol.run_names(["/a/b/x/s1", "/a/b/y/s1"]) == {"/a/b/x/s1": "x/s1",
                                                             "/a/b/y/s1": "y/s1"}
  assert protocol.run_names(["gs://b/r/one"]) == {"gs://b/r/one": "one"}
