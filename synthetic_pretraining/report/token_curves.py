"""Validation loss against tokens for staged (pre-pretraining) runs and their baseline.

  from synthetic_pretraining.report import token_curves
  token_curves.write(run_dirs, baseline="natural", output_dir="runs/x/report")

Reads each run's metrics.jsonl (teacher-forced eval records of the last stage's task, with
`tokens_seen`: non-padding tokens trained on so far, every stage counted) and run.json (label,
seed, tokens per stage), and writes to `output_dir`:

  report.md   per method: runs, tokens trained on (and the first stage's share), final
              validation loss, the tokens at which the loss first reaches the baseline's final
              loss and the tokens saved against the baseline, mean ± sample std over seeds;
  report.csv  the same per run;
  report.png  validation loss against tokens, per method the mean over seeds with the seeds'
              range shaded.

Tokens saved (per seed, paired with the baseline run of the same seed): the baseline's tokens at
its final eval minus the tokens at which the method's loss first reaches the baseline's final
loss, interpolated linearly between the two evals around the crossing (at the first eval when it
is already below there). A method whose loss never reaches it on some seed is "not reached" on
that seed, and its mean covers only the seeds that did (the table says how many).
"""
import csv
import dataclasses
import io
from typing import Dict, List, Optional, Sequence, Tuple

from synthetic_pretraining import paths
from synthetic_pretraining.report import protocol
from synthetic_pretraining.report import render
from synthetic_pretraining.training import run_record

LOSS = "loss_per_nonpadding_target_token"


@dataclasses.dataclass
class Curve:
  """One run: its method, seed, (step, tokens, loss) at each eval, and its run.json stages."""
  path: str
  label: str
  seed: int
  task: str
  points: List[Tuple[int, int, float]]
  stages: List[dict]

  @property
  def final_loss(self) -> float:
    return self.points[-1][2]

  @property
  def final_tokens(self) -> int:
    return self.points[-1][1]

  @property
  def tokens(self) -> int:
    """Non-padding tokens trained on, every stage (run.json)."""
    return sum(int(s["tokens"]) for s in self.stages)

  @property
  def first_stage_share(self) -> float:
    """The share of the tokens trained on in stages before the last (0 for one stage)."""
    return sum(int(s["tokens"]) for s in self.stages[:-1]) / max(self.tokens, 1)


def read_curve(model_dir: str) -> Curve:
  """A run's eval curve and token counts; a `protocol.ReportError` when it has none."""
  record = run_record.read(model_dir)
  if record is None or not record.stages:
    raise protocol.ReportError(f"{model_dir}: no run.json with `stages` (train it with "
                               "trainer.train.stages, one stage for a baseline).")
  evals = [r for r in protocol.read_records(model_dir)
           if r.get("kind") == "eval" and r.get("split") == "validation" and LOSS in r
           and "tokens_seen" in r]
  if not evals:
    raise protocol.ReportError(f"{model_dir}: no validation eval with tokens_seen yet.")
  # A resumed run may repeat an eval; the last record of a step wins.
  by_step = {int(r["step"]): (int(r["step"]), int(r["tokens_seen"]), float(r[LOSS]))
             for r in evals}
  return Curve(paths.as_str(model_dir), record.label or record.task, record.seed, evals[-1]["task"],
               [by_step[s] for s in sorted(by_step)], list(record.stages))


def tokens_to_reach(points: Sequence[Tuple[int, int, float]], target: float) -> Optional[float]:
  """The tokens at which the loss first reaches `target` (interpolated between evals; the first
  eval's tokens when it is already there), or None when it never does."""
  for i, (_, tokens, loss) in enumerate(points):
    if loss <= target:
      if i == 0:
        return float(tokens)
      _, before_tokens, before_loss = points[i - 1]
      return before_tokens + (before_loss - target) / (before_loss - loss) * (tokens - before_tokens)
  return None


@dataclasses.dataclass
class Row:
  """One method's summary over its seeds (see the module docstring)."""
  label: str
  runs: List[Curve]
  # seed -> tokens at the baseline's final loss (None: not reached); empty for the baseline.
  reached: Dict[int, Optional[float]]
  saved: Dict[int, float]  # seed -> tokens saved, for the seeds that reached it


def summarize(curves: Sequence[Curve], baseline: str) -> List[Row]:
  """Rows in order: the baseline first, then the other methods by name; a
  `protocol.ReportError` when a method's seed has no baseline run of the same seed."""
  base = {c.seed: c for c in curves if c.label == baseline}
  if not base:
    raise protocol.ReportError(f"no run labelled {baseline!r} (the baseline) among "
                               f"{sorted({c.label for c in curves})}.")
  rows = []
  for label in [baseline] + sorted({c.label for c in curves} - {baseline}):
    runs = sorted((c for c in curves if c.label == label), key=lambda c: c.seed)
    reached, saved = {}, {}
    for run in runs if label != baseline else ():
      if run.seed not in base:
        raise protocol.ReportError(f"{run.path}: no baseline run of seed {run.seed} to pair with.")
      reference = base[run.seed]
      reached[run.seed] = tokens_to_reach(run.points, reference.final_loss)
      if reached[run.seed] is not None:
        saved[run.seed] = reference.final_tokens - reached[run.seed]
    rows.append(Row(label, runs, reached, saved))
  return rows


def _tokens(mean: float, std: float, n: int) -> str:
  """A token count (and its spread) in the unit of the mean's size: 2.46M, 1.9k, 640."""
  scale, unit, digits = next(((s, u, d) for s, u, d in ((1e6, "M", 2), (1e3, "k", 1), (1, "", 0))
                              if abs(mean) >= s), (1, "", 0))
  text = lambda x: f"{x / scale:.{digits}f}{unit}"  # noqa: E731
  return text(mean) + (f" ± {text(std)}" if n > 1 else "")


def markdown(rows: Sequence[Row], baseline: str) -> str:
  """The report's table and how to read it."""
  task = rows[0].runs[0].task
  lines = [f"# Validation loss on {task} against tokens trained on\n",
           f"Methods against `{baseline}` (the baseline) at the same steps, batch and row length; "
           "mean ± sample std over seeds. Tokens are the non-padding tokens trained on, every "
           "stage counted (run.json). Tokens to the baseline's final loss: where the method's "
           f"{task} validation loss first reaches the final loss of the baseline run of the same "
           "seed (interpolated between evals); tokens saved: the baseline's tokens at its final "
           "eval minus those (positive: fewer tokens needed).\n",
           "| method | seeds | tokens trained on | first stage's share | final validation loss "
           "| tokens to the baseline's final loss | tokens saved | tokens saved (% of baseline) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  base_final = {r.seed: r.final_tokens for r in rows[0].runs}
  for row in rows:
    n = len(row.runs)
    tokens = protocol.mean_std([r.tokens for r in row.runs])
    share = protocol.mean_std([100 * r.first_stage_share for r in row.runs])
    loss = protocol.mean_std([r.final_loss for r in row.runs])
    reached = [v for v in row.reached.values() if v is not None]
    note = "" if len(reached) == n else f" ({len(reached)} of {n} seeds; others not reached)"
    if row.label == baseline:
      to_reach, saved, percent = "(reference)", "—", "—"
    elif not reached:
      to_reach, saved, percent = "not reached", "not reached", "not reached"
    else:
      to_reach = _tokens(*protocol.mean_std(reached), len(reached)) + note
      saved = _tokens(*protocol.mean_std(list(row.saved.values())), len(reached)) + note
      shares = [100 * v / base_final[s] for s, v in row.saved.items()]
      mean, std = protocol.mean_std(shares)
      percent = f"{mean:.1f}%" + (f" ± {std:.1f}%" if len(shares) > 1 else "") + note
    lines.append(f"| {row.label} | {n} | {_tokens(*tokens, n)} | "
                 f"{share[0]:.1f}% | {loss[0]:.4f}" + (f" ± {loss[1]:.4f}" if n > 1 else "")
                 + f" | {to_reach} | {saved} | {percent} |")
  lines.append("\nreport.png: validation loss against tokens, the mean over seeds per method "
               "with the seeds' range shaded; report.csv: every run.")
  return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[Row], path: str) -> None:
  """One line per run (see the module docstring)."""
  buffer = io.StringIO()
  out = csv.writer(buffer)
  # `run`: the run directory's last two parts (<method>/seed_<n>), not the machine's path.
  out.writerow(["method", "seed", "run", "steps", "tokens", "first_stage_tokens",
                "final_validation_loss", "tokens_to_baseline_final_loss", "tokens_saved"])
  for row in rows:
    for run in row.runs:
      reached = row.reached.get(run.seed)
      out.writerow([row.label, run.seed, "/".join(run.path.rstrip("/").split("/")[-2:]),
                    run.points[-1][0], run.tokens,
                    run.tokens - int(run.stages[-1]["tokens"]), f"{run.final_loss:.6f}",
                    "" if reached is None else f"{reached:.0f}",
                    "" if run.seed not in row.saved else f"{row.saved[run.seed]:.0f}"])
  paths.write_atomic(path, buffer.getvalue())


def plot(rows: Sequence[Row], path: str, baseline: str) -> None:
  """Validation loss against tokens: per method the mean over seeds (evals matched by step),
  the seeds' range shaded, and the baseline's final loss as a dotted line."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(7, 4.5))
  palette = plt.get_cmap("tab10")
  for i, row in enumerate(rows):
    steps = sorted(set.intersection(*({p[0] for p in r.points} for r in row.runs)))
    at = [{p[0]: p for p in r.points} for r in row.runs]
    tokens = [sum(a[s][1] for a in at) / len(at) for s in steps]
    losses = [[a[s][2] for a in at] for s in steps]
    color = "black" if row.label == baseline else palette(i % 10)
    ax.plot(tokens, [sum(l) / len(l) for l in losses], color=color, marker=".",
            label=f"{row.label} ({len(row.runs)} seeds)")
    ax.fill_between(tokens, [min(l) for l in losses], [max(l) for l in losses], color=color,
                    alpha=0.2, linewidth=0)
  final = protocol.mean_std([r.final_loss for r in rows[0].runs])[0]
  ax.axhline(final, color="black", linestyle=":", linewidth=1,
             label=f"{baseline} final loss (mean)")
  ax.set_xlabel("tokens trained on (every stage)")
  ax.set_ylabel(f"{rows[0].runs[0].task} validation loss per target token")
  ax.legend(fontsize=8)
  render.save_png(fig, path)


def write(run_dirs: Sequence[str], baseline: str, output_dir: str) -> List[Row]:
  """report.md, report.csv and report.png of `run_dirs` in `output_dir`; returns the rows."""
  rows = summarize([read_curve(d) for d in run_dirs], baseline)
  paths.makedirs(output_dir)
  paths.write_atomic(paths.join(output_dir, "report.md"), markdown(rows, baseline))
  write_csv(rows, paths.join(output_dir, "report.csv"))
  plot(rows, paths.join(output_dir, "report.png"), baseline)
  return rows
