r"""The paper's comparison read off finetuning runs: `python -m synthetic_pretraining.report`.

  python -m synthetic_pretraining.report RUN_DIR... [--output_dir=DIR] [--metric=em]
    [--random=random] [--natural=natural] [--label=RUN_DIR=LABEL ...]

Protocol (PAPER_FACTS §7.5): for each run, the step with the best teacher-forced validation token
accuracy (`eval` records of metrics.jsonl); the run's score is its inference metric at that step
(`infer` records: the test split for the custom tasks, validation for SQuAD), or with
`--metric=eval:accuracy` that best validation token accuracy itself. Runs are grouped by
downstream task (MIXTURE_OR_TASK_NAME of config.gin) and method; seeds give mean and spread
(sample standard deviation). The benefit of a method on a task is
(method - random) / (natural - random); the table averages it over tasks. Writes report.md,
report.csv and report.png to --output_dir (default: the working directory) and prints the table.

A run's method label is, in order: --label, a `label.txt` in the run directory, or derived from
config.gin: 'random', the pretrained MODEL_DIR's name (INITIAL_CHECKPOINT_PATH), 'stats:<scheme>'
(statistics-only initialisation) or 'custom' (set values).
"""
import argparse
import collections
import csv
import dataclasses
import io
import json
import math
import os
import re
import sys
from typing import Dict, List, Optional, Sequence

PRIMARY_METRIC = {"cnndm_10k": "rouge1"}  # every other task of the paper reports em first
DEFAULT_METRIC = "em"


class ReportError(ValueError):
  """A run directory that cannot be scored."""


def _open(path: str, mode: str = "r"):
  if "://" in path:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.io.gfile.GFile(path, mode)
  return open(path, mode)


def _exists(path: str) -> bool:
  if "://" in path:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.io.gfile.exists(path)
  return os.path.exists(path)


@dataclasses.dataclass
class Run:
  """One finetuning run, scored by the protocol."""
  path: str
  task: str
  label: str
  seed: str
  best_step: int
  best_accuracy: float
  metrics: Dict[str, float]
  infer_split: str


def _config_value(config: str, name: str) -> Optional[str]:
  match = re.search(rf"^{re.escape(name)}\s*=\s*(.+)$", config, re.M)
  return match.group(1).strip() if match else None


def _unquote(value: Optional[str]) -> Optional[str]:
  if value is None or value == "None":
    return None
  return value.strip("'\"")


def label_from_config(config: str) -> str:
  """The method of a run from its config.gin."""
  scheme = _config_value(config, "StatisticsInitializer.scheme")
  if scheme is None:
    scheme = _config_value(config, "stats_init.StatisticsInitializer.scheme")
  if scheme:
    return f"stats:{_unquote(scheme)}"
  if re.search(r"CustomValueInitializer", config):
    return "custom"
  path = _unquote(_config_value(config, "INITIAL_CHECKPOINT_PATH"))
  if path:
    return os.path.basename(os.path.normpath(path)) or path
  return "random"


def read_run(path: str, label: Optional[str] = None) -> Run:
  """Applies the protocol to one run directory."""
  records_path = os.path.join(path, "metrics.jsonl")
  if not _exists(records_path):
    raise ReportError(f"{path}: no metrics.jsonl (not a run directory, or the run has not "
                      "evaluated yet).")
  with _open(records_path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  config = ""
  if _exists(os.path.join(path, "config.gin")):
    with _open(os.path.join(path, "config.gin")) as f:
      config = f.read()
  evals = [r for r in records if r.get("kind") == "eval" and r.get("split") == "validation"
           and "accuracy" in r]
  if not evals:
    raise ReportError(f"{path}: no teacher-forced validation eval in metrics.jsonl.")
  best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))  # the first best step
  infers = [r for r in records if r.get("kind") == "infer"]
  at_best = [r for r in infers if r["step"] == best["step"]]
  if not at_best:
    steps = sorted({r["step"] for r in infers})
    raise ReportError(f"{path}: no inference eval at step {best['step']}, the step of best "
                      f"validation accuracy (inference evals at steps {steps}).")
  record = at_best[-1]
  values = {k: float(v) for k, v in record.items()
            if k not in ("step", "kind", "split", "task") and isinstance(v, (int, float))}
  # The teacher-forced validation metrics at that step, for `--metric=eval:accuracy`.
  values.update({f"eval:{k}": float(v) * (100 if k == "accuracy" else 1)
                 for k, v in best.items() if k not in ("step", "kind", "split", "task")
                 and isinstance(v, (int, float))})
  if label is None and _exists(os.path.join(path, "label.txt")):
    with _open(os.path.join(path, "label.txt")) as f:
      label = f.read().strip()
  return Run(path=path, task=record.get("task") or _unquote(
      _config_value(config, "MIXTURE_OR_TASK_NAME")) or "?",
             label=label or label_from_config(config),
             seed=_unquote(_config_value(config, "SEED")) or "?", best_step=int(best["step"]),
             best_accuracy=float(best["accuracy"]), metrics=values,
             infer_split=str(record.get("split")))


def _mean_std(values: Sequence[float]):
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, 0.0
  return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(runs: Sequence[Run], metric: Optional[str], random: str, natural: str):
  """{task: {label: (mean, std, n, [benefit per seed mean])}} and the metric used per task."""
  by_task = collections.defaultdict(lambda: collections.defaultdict(list))
  metric_of = {}
  for run in runs:
    name = metric or PRIMARY_METRIC.get(run.task, DEFAULT_METRIC)
    if name not in run.metrics:
      raise ReportError(f"{run.path}: no {name!r} in its inference metrics "
                        f"({sorted(run.metrics)}); choose one with --metric.")
    metric_of[run.task] = name
    by_task[run.task][run.label].append(run.metrics[name])
  table = {}
  for task, labels in by_task.items():
    rows = {}
    base = _mean_std(labels[random])[0] if random in labels else None
    top = _mean_std(labels[natural])[0] if natural in labels else None
    for label, values in labels.items():
      mean, std = _mean_std(values)
      benefit = None
      if base is not None and top is not None and top != base:
        benefit = (mean - base) / (top - base)
      rows[label] = {"mean": mean, "std": std, "n": len(values), "benefit": benefit}
    table[task] = rows
  return table, metric_of


def markdown(table, metric_of, random: str, natural: str) -> str:
  """The report as a Markdown table: per task mean ± std (n) and benefit, then the average."""
  tasks = sorted(table)
  labels = sorted({l for rows in table.values() for l in rows},
                  key=lambda l: (l != random, l != natural, l))
  head = "| method | " + " | ".join(f"{t} ({metric_of[t]})" for t in tasks) + " | mean benefit |"
  lines = [head, "|" + " --- |" * (len(tasks) + 2)]
  for label in labels:
    cells, benefits = [], []
    for task in tasks:
      row = table[task].get(label)
      if row is None:
        cells.append("")
        continue
      cell = f"{row['mean']:.2f} ± {row['std']:.2f} (n={row['n']})"
      if row["benefit"] is not None:
        cell += f", benefit {100 * row['benefit']:.0f}%"
        benefits.append(row["benefit"])
      cells.append(cell)
    mean_benefit = f"{100 * sum(benefits) / len(benefits):.0f}%" if benefits else ""
    lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean_benefit} |")
  note = (f"\nBenefit = (method - {random}) / ({natural} - {random}), per task on the mean over "
          "seeds; score = inference metric at the step of best validation token accuracy.\n")
  return "\n".join(lines) + "\n" + note


def write_csv(runs: Sequence[Run], table, path: str) -> None:
  """One row per run, then one per (task, method) summary."""
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["kind", "task", "method", "seed", "run", "best_step", "best_accuracy",
                   "metric", "value", "std", "n", "benefit"])
  for run in runs:
    for name, value in sorted(run.metrics.items()):
      writer.writerow(["run", run.task, run.label, run.seed, run.path, run.best_step,
                       run.best_accuracy, name, value, "", "", ""])
  for task, rows in sorted(table.items()):
    for label, row in sorted(rows.items()):
      writer.writerow(["summary", task, label, "", "", "", "", "", row["mean"], row["std"],
                       row["n"], "" if row["benefit"] is None else row["benefit"]])
  with _open(path, "w") as f:
    f.write(buffer.getvalue())


def plot(table, metric_of, path: str, random: str, natural: str) -> None:
  """Bar chart: mean ± std per method, one panel per task."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  tasks = sorted(table)
  fig, axes = plt.subplots(1, len(tasks), figsize=(max(5, 4.5 * len(tasks)), 4), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    labels = sorted(table[task], key=lambda l: (l != random, l != natural, l))
    means = [table[task][l]["mean"] for l in labels]
    stds = [table[task][l]["std"] for l in labels]
    colors = ["#999999" if l == random else "#1f77b4" if l == natural else "#ff7f0e"
              for l in labels]
    ax.bar(range(len(labels)), means, yerr=stds, color=colors, capsize=3)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_title(task)
    ax.set_ylabel(metric_of[task])
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120)
  plt.close(fig)
  with _open(path, "wb") as f:
    f.write(buffer.getvalue())


def main(argv=None) -> int:
  """Entry point; returns an exit code."""
  p = argparse.ArgumentParser(prog="python -m synthetic_pretraining.report",
                              description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="finetuning MODEL_DIRs")
  p.add_argument("--output_dir", default=".")
  p.add_argument("--metric", default=None,
                 help="inference metric to compare (default per task: em, rouge1 for cnndm_10k); "
                      "'eval:accuracy' compares the best validation token accuracy (x100)")
  p.add_argument("--random", default="random", help="label of the random-init baseline")
  p.add_argument("--natural", default="natural", help="label of the natural pre-training baseline")
  p.add_argument("--label", action="append", default=[], metavar="RUN_DIR=LABEL")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  labels = dict(item.rsplit("=", 1) for item in args.label)
  try:
    runs = [read_run(path, labels.get(path)) for path in args.runs]
    table, metric_of = summarize(runs, args.metric, args.random, args.natural)
  except ReportError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  text = markdown(table, metric_of, args.random, args.natural)
  if "://" not in args.output_dir:
    os.makedirs(args.output_dir, exist_ok=True)
  with _open(os.path.join(args.output_dir, "report.md"), "w") as f:
    f.write(text)
  write_csv(runs, table, os.path.join(args.output_dir, "report.csv"))
  plot(table, metric_of, os.path.join(args.output_dir, "report.png"), args.random, args.natural)
  print(text)
  print(f"Wrote report.md, report.csv and report.png to {args.output_dir}.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
