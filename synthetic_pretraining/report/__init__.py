r"""The paper's comparison read off run records: `python -m synthetic_pretraining.report`.

  python -m synthetic_pretraining.report RUN_DIR... [--pretrain=DIR ...] [--output_dir=DIR]
    [--metrics=em,f1,eval:accuracy] [--random=random] [--natural=natural] [--label=RUN_DIR=LABEL]

For each finetuning run (its run.json and metrics.jsonl; see `protocol` for the arithmetic): the
inference metric at the step of best validation token accuracy, mean ± std over seeds per method,
the difference from random init with its standard error, the benefit (method − random) /
(natural − random) where natural − random clears the seed spread, and a statistics-only method's
share of its source model's own benefit; the position split of token accuracy for runs that have
position_split.json; the final validation accuracy of each --pretrain run, flagged when it was
still rising; trivial-rule floors (`floors`: question-blind rules scored on the examples the runs
decoded) beside random init, and whether each method clears them. The PNG adds every run's
learning curves. A run's method is its run.json label, else derived from its initialisation
(random, the source checkpoint's task, `stats:<scheme>(<source task>)`). Writes report.md,
report.csv and report.png to --output_dir.
"""
import sys

from synthetic_pretraining import cli
from synthetic_pretraining import paths
from synthetic_pretraining.report import floors
from synthetic_pretraining.training import run_record
from synthetic_pretraining.report import protocol
from synthetic_pretraining.report import render
from synthetic_pretraining.report.protocol import ReportError, read_run  # noqa: F401

DEFAULT_METRICS = "em,f1,eval:accuracy"


def build(run_dirs, pretrain_dirs=(), metrics=(None,), random="random", natural="natural",
          labels=None):
  """(Markdown text, runs, comparisons, {task: trivial-rule Floor}) of a report; raises
  ReportError on unusable input."""
  labels = labels or {}
  runs = [protocol.read_run(d, labels.get(paths.as_str(d))) for d in run_dirs]
  comparisons = [c for m in metrics for c in protocol.compare(runs, m, random, natural)]
  task_floors = floors.task_floors(runs, random, protocol.run_names([r.path for r in runs]))
  parts = ["## Finetuning: score at the step of best validation token accuracy\n",
           render.comparison_markdown(comparisons, random, natural, task_floors)]
  if task_floors:
    parts += ["## Trivial-rule floors (the same test examples)\n",
              render.floors_markdown(task_floors, comparisons, random)]
  origins = protocol.baseline_origins(runs, natural)
  if origins:
    parts.append(f"Natural baseline '{natural}': finetuned from {'; '.join(origins)}.\n")
  parts += [f"**Note:** {w}\n" for w in setting_differences(run_dirs)]
  splits = protocol.position_splits(runs)
  if splits:
    parts += ["## What the validation token accuracy is made of\n",
              render.position_markdown(splits, random, natural)]
  pretraining = [protocol.read_pretraining(d) for d in pretrain_dirs]
  if pretraining:
    parts += ["## Pre-training\n", render.pretraining_markdown(pretraining)]
  inferred = sorted({(r.task, r.infer_split) for r in runs if r.infer_split})
  if inferred:
    parts.append("Inference split: " + ", ".join(f"{t}: {s}" for t, s in inferred) + ".\n")
  return "\n".join(parts), runs, comparisons, task_floors


def setting_differences(run_dirs) -> list:
  """One sentence per task whose compared runs differ in training steps, batch size or lengths
  (their scores are then not comparable as they stand)."""
  by_task = {}
  for d in run_dirs:
    record = run_record.read(d)
    if record is not None:
      by_task.setdefault(record.task, []).append((d, record))
  out = []
  for task, items in sorted(by_task.items()):
    for name, get in (("TRAIN_STEPS", lambda r: r.train_steps),
                      ("BATCH_SIZE", lambda r: r.batch_size),
                      ("TASK_FEATURE_LENGTHS", lambda r: dict(r.lengths or {}))):
      values = {}
      for d, record in items:
        values.setdefault(repr(get(record)), []).append(paths.as_str(d).rsplit("/", 1)[-1])
      if len(values) > 1:
        shown = "; ".join(f"{v} ({', '.join(runs[:3])}{', ...' if len(runs) > 3 else ''})"
                          for v, runs in sorted(values.items()))
        out.append(f"the {task} runs compared differ in {name}: {shown}.")
  return out


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input, `cli.run`)."""
  return cli.run(_main, argv)


def _main(argv) -> int:
  p = cli.ArgumentParser(prog="python -m synthetic_pretraining.report",
                         description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="finetuning MODEL_DIRs")
  p.add_argument("--pretrain", action="append", default=[], help="a pre-training MODEL_DIR")
  p.add_argument("--output_dir", default=".")
  p.add_argument("--metrics", default=DEFAULT_METRICS,
                 help="comma-separated inference metrics, 'eval:accuracy' for the best validation "
                      "token accuracy (x100), 'default' for each task's reported metric")
  p.add_argument("--random", default="random", help="label of the random-init baseline")
  p.add_argument("--natural", default="natural", help="label of the natural pre-training baseline")
  p.add_argument("--label", action="append", default=[], metavar="RUN_DIR=LABEL",
                 help="method of a run (overrides its run.json); repeatable")
  args = p.parse_args(argv)
  paths.check_writable_dir(args.output_dir, "--output_dir")  # before the runs are read
  metrics = [None if m == "default" else m for m in args.metrics.split(",") if m]
  labels = {}
  for item in args.label:
    path, sep, label = item.rpartition("=")
    if not sep or not path or not label:
      raise ReportError(f"--label {item!r} is not RUN_DIR=LABEL.")
    labels[paths.as_str(path)] = label
  for warning in setting_differences(args.runs):
    print(f"warning: {warning}", file=sys.stderr)
  text, runs, comparisons, task_floors = build(args.runs, args.pretrain, metrics, args.random,
                                                args.natural, labels)
  paths.write_atomic(paths.join(args.output_dir, "report.md"), text)
  render.write_csv(runs, comparisons, paths.join(args.output_dir, "report.csv"), task_floors)
  render.plot(comparisons, paths.join(args.output_dir, "report.png"), args.random, args.natural,
              runs)
  print(text)
  print(f"Wrote report.md, report.csv and report.png to {args.output_dir}.")
  return 0
