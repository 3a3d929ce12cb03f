"""The pre-pretraining experiment (synthetic_pretraining.launch.pre_pretraining): the toy preset
end to end (runs, equal token slots per arm, the report's table and plot), a rerun skips the
finished runs, the full preset's dry run lists 3 arms x 2 seeds within its time budget, and the
tokens-saved arithmetic on hand-made curves."""
import csv
import json
import shlex

import pytest

from synthetic_pretraining.launch import pre_pretraining
from synthetic_pretraining.report import token_curves

ARMS = ("natural", "shuffle_dyck", "dyck")


@pytest.mark.e2e
@pytest.mark.slow  # six toy runs: 85-107 s on the loaded 2-core machine
def test_toy_preset_end_to_end_then_a_rerun_skips_every_run(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)  # gin files and data come with the package, not the checkout
  out = tmp_path / "pp"
  assert pre_pretraining.main(["--preset=toy", f"--output_dir={out}"]) == 0
  toy = pre_pretraining.PRESETS["toy"]
  slots = {}
  for arm in ARMS:
    for seed in toy.seeds:
      record = json.loads((out / arm / f"seed_{seed}" / "run.json").read_text())
      assert record["label"] == arm and record["seed"] == seed
      stages = record["stages"]
      assert sum(s["steps"] for s in stages) == toy.steps
      assert stages[-1]["task"] == "natural_text" and stages[-1]["tokens"] > 0
      if arm != "natural":
        assert [s["task"] for s in stages] == [arm, "natural_text"]
        assert stages[0]["steps"] == toy.formal_steps and stages[0]["tokens"] > 0
      # Token slots: every step's rows are as long in every arm and stage.
      slots[arm, seed] = record["train_steps"] * record["batch_size"] * sum(
          record["lengths"].values())
  assert len(set(slots.values())) == 1
  text = (out / "report" / "report.md").read_text()
  for arm in ARMS:
    assert f"| {arm} | 2 | " in text
  assert "| tokens saved |" in text and "(reference)" in text
  assert (out / "report" / "report.png").read_bytes()[:4] == b"\x89PNG"
  rows = list(csv.DictReader((out / "report" / "report.csv").open()))
  assert sorted((r["method"], r["seed"]) for r in rows) == sorted(
      (a, str(s)) for a in ARMS for s in toy.seeds)
  assert str(out) not in (out / "report" / "report.csv").read_text()
  # The curve's tokens are those run.json counts.
  curve = token_curves.read_curve(str(out / "dyck" / "seed_1"))
  assert curve.final_tokens == curve.tokens and 0 < curve.first_stage_share < 1
  assert [p[0] for p in curve.points] == list(range(toy.eval_period, toy.steps + 1,
                                                    toy.eval_period))
  capsys.readouterr()

  def refuse(flags):
    raise AssertionError(f"a finished run was trained again: {flags}")

  monkeypatch.setattr(pre_pretraining, "_train", refuse)
  assert pre_pretraining.main(["--preset=toy", f"--output_dir={out}"]) == 0
  assert capsys.readouterr().out.count("finished earlier, skipped") == len(ARMS) * len(toy.seeds)


@pytest.mark.unit
def test_full_dry_run_lists_three_arms_by_two_seeds_within_90_minutes(tmp_path, monkeypatch,
                                                                      capsys):
  monkeypatch.chdir(tmp_path)
  assert pre_pretraining.main(["--preset=full", "--dry_run"]) == 0
  text = capsys.readouterr().out
  head = text.splitlines()[0]
  assert head.startswith("# preset full: 6 runs (3 arms x 2 seeds) of 1000 steps")
  assert float(head.split("about ")[1].split(" minutes")[0]) <= 90
  # A scoped gin flag is shown as the docs write it: the name bare, the value quoted.
  assert "--gin.stage1/data.DatasetConfig.task_feature_lengths=\"{'inputs': 16, 'targets': 80}\"" in text
  commands = [shlex.split(l) for l in text.splitlines() if l.startswith("python -m")]
  assert len(commands) == 6
  full = pre_pretraining.PRESETS["full"]
  for arm in ARMS:
    for seed in full.seeds:
      (command,) = [c for c in commands
                    if f"--gin.MODEL_DIR='{tmp_path}/runs/pre_pretraining_full/{arm}/seed_{seed}'"
                    in c]
      assert f"--gin.SEED={seed}" in command and "--gin.TRAIN_STEPS=1000" in command
      assert "--gin.MIXTURE_OR_TASK_NAME='natural_text'" in command
      assert ("--gin.trainer.train.stages=[@stages.Stage()]" in command) == (arm == "natural")
      assert (f"--gin.STAGE1_TASK='{arm}'" in command) == (arm != "natural")
  assert not list(tmp_path.iterdir())  # a dry run writes nothing


@pytest.mark.unit
def test_a_preset_whose_formal_rows_differ_from_the_texts_is_refused():
  with pytest.raises(ValueError, match="as long as"):
    pre_pretraining.Preset(steps=10, formal_steps=2, batch=4, lengths=(32, 16),
                           formal_lengths=(8, 48), formal_string_lengths=(20, 38),
                           eval_period=5, eval_steps=1)


def _curve(label, seed, points):
  return token_curves.Curve(f"/r/{label}/seed_{seed}", label, seed, "natural_text", points,
                            [{"tokens": points[-1][1]}])


@pytest.mark.unit
def test_tokens_saved_interpolates_the_crossing_and_says_not_reached():
  points = [(1, 100, 5.0), (2, 200, 3.0), (3, 300, 2.0)]
  assert token_curves.tokens_to_reach(points, 4.0) == 150.0
  assert token_curves.tokens_to_reach(points, 6.0) == 100.0
  assert token_curves.tokens_to_reach(points, 1.0) is None
  curves = [_curve("natural", 1, [(1, 100, 5.0), (2, 200, 4.0)]),
            _curve("natural", 2, [(1, 100, 5.0), (2, 200, 4.5)]),
            _curve("dyck", 1, [(1, 100, 4.5), (2, 200, 3.5)]),    # 4.0 at 150: 50 saved
            _curve("dyck", 2, [(1, 100, 4.5), (2, 200, 4.5)]),    # 4.5 at its first eval: 100
            _curve("shuffle_dyck", 1, [(1, 100, 6.0), (2, 200, 5.0)]),
            _curve("shuffle_dyck", 2, [(1, 100, 6.0), (2, 200, 5.0)])]
  rows = {r.label: r for r in token_curves.summarize(curves, "natural")}
  assert rows["dyck"].saved == {1: 50.0, 2: 100.0}
  assert rows["shuffle_dyck"].reached == {1: None, 2: None} and rows["shuffle_dyck"].saved == {}
  table = token_curves.markdown(list(rows.values()), "natural")
  assert "| shuffle_dyck | 2 | " in table and "not reached" in table
  assert "| 37.5% ± 17.7% |" in table  # 25% and 50% of the baseline's 200 tokens
