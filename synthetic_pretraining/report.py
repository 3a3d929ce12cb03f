r"""The paper's comparison read off finetuning runs: `python -m synthetic_pretraining.report`.

  python -m synthetic_pretraining.report RUN_DIR... [--output_dir=DIR] [--metric=em]
    [--random=random] [--natural=natural] [--label=RUN_DIR=LABEL ...] [--label_file=FILE]

Protocol (PAPER_FACTS 7.5): for each run, the step with the best teacher-forced validation token
accuracy (`eval` records of MODEL_DIR/metrics.jsonl, split validation, key `accuracy`; the first
such step on ties); the run's score is its inference metric at that step (`infer` records: the
test split when the run decoded it, as for the custom tasks, else validation, as for SQuAD; the
split used is printed per task), or with `--metric=eval:accuracy` that best validation token
accuracy itself (x100). The metric defaults to the one the paper reports per task: rouge1 for
cnndm_10k, em for the others. Runs are grouped by downstream task (MIXTURE_OR_TASK_NAME of
config.gin) and method; seeds give mean and spread (sample standard deviation). The benefit of a
method on a task is (method - random) / (natural - random) on the means over seeds; the table
averages it over the tasks that have both baselines. Writes report.md, report.csv (per run and
per task and method) and report.png to --output_dir (default: the working directory).

A run's method label is, in order: --label / --label_file, a `label.txt` in the run directory,
or derived from its config.gin: 'stats:<scheme>(<source>)' (statistics-only initialisation),
'custom:<set>=<value>' (set values, Table 3), the pretraining task of INITIAL_CHECKPOINT_PATH
(MIXTURE_OR_TASK_NAME of that run's config.gin; for other checkpoints, such as t5x's, their
directory name), or 'random'. Name the natural baseline's label with --natural.
"""
import argparse
import ast
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
  """One finetuning run, scored by the protocol.

  Attributes:
    path: the run directory (MODEL_DIR).
    task: the downstream task.
    label: the method (initialisation) it stands for.
    seed: SEED of its config, '?' when unknown.
    best_step: the step of best validation token accuracy.
    best_accuracy: that accuracy (fraction 0-1).
    metrics: inference metrics at best_step, plus 'eval:<name>' teacher-forced ones (accuracy x100).
    infer_split: the split the inference metrics were computed on ('' when there were none).
    note: why inference metrics are missing, for the error that needs them.
  """
  path: str
  task: str
  label: str
  seed: str
  best_step: int
  best_accuracy: float
  metrics: Dict[str, float]
  infer_split: str
  note: str = ""


_BINDING = re.compile(r"^([A-Za-z_][\w./]*)\s*=\s*(.*)$")


def parse_config(text: str) -> Dict[str, str]:
  """The bindings of a config.gin as {name: value text}.

  gin.config_str() writes long values over several lines (a trailing backslash, then indented
  lines), so continuation lines are joined to the binding they belong to.
  """
  bindings, name, parts = {}, None, []
  for line in text.splitlines() + [""]:
    stripped = line.strip()
    if name is not None and line[:1].isspace() and stripped and not stripped.startswith("#"):
      parts.append(stripped)
      continue
    if name is not None:
      bindings[name] = " ".join(p.rstrip("\\").strip() for p in parts).strip()
      name, parts = None, []
    match = _BINDING.match(line)
    if match and not stripped.startswith(("#", "import ", "include ")):
      name, parts = match.group(1), [match.group(2)]
  return bindings


_MACRO = re.compile(r"%([A-Za-z_][\w.]*)")


def _expand(text: str, bindings: Dict[str, str], depth: int = 0) -> str:
  """`text` with every %MACRO replaced by its value, also inside dicts and lists."""
  if depth > 20:  # macro chains are short; the bound stops a cycle
    return text
  return _MACRO.sub(lambda m: _expand(bindings[m.group(1)], bindings, depth + 1)
                    if m.group(1) in bindings else m.group(0), text)


def config_value(bindings: Dict[str, str], *names: str):
  """The Python value of the first binding found among `names`, macros followed.

  A name also matches a binding that only differs by a scope or module prefix
  (`StatisticsInitializer.scheme` finds `stats_init.StatisticsInitializer.scheme`). Values that
  are not literals (`@Initializer()`) come back as their text; missing ones as None.
  """
  for name in names:
    keys = [name] if name in bindings else [k for k in bindings if k.endswith("." + name)
                                            or k.endswith("/" + name)]
    if not keys:
      continue
    text = _expand(bindings[keys[0]], bindings)
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text
  return None


def _checkpoint_name(path: str) -> str:
  """What a checkpoint was pretrained on: the task in its run's config.gin, else its name.

  Args:
    path: INITIAL_CHECKPOINT_PATH or a statistics source: a MODEL_DIR, one of its
      `checkpoint_<step>` directories, a t5x checkpoint or a stats.json.

  Returns:
    The pretraining task of our own runs (MIXTURE_OR_TASK_NAME of the run's config.gin), else
    the last path component that is not a step directory ('natural_t5_small').
  """
  path = path.rstrip("/")
  parts = [p for p in re.split(r"[/\\]", path) if p]
  while len(parts) > 1 and re.fullmatch(r"checkpoint_\d+|model\.ckpt-\d+|stats\.json|checkpoint",
                                        parts[-1]):
    parts.pop()
  run_dir = path[: path.rindex(parts[-1]) + len(parts[-1])] if parts else path
  config_path = os.path.join(run_dir, "config.gin")
  try:
    if _exists(config_path):
      with _open(config_path) as f:
        task = config_value(parse_config(f.read()), "MIXTURE_OR_TASK_NAME")
      if isinstance(task, str) and task:
        return task
  except Exception:  # pylint: disable=broad-except
    pass  # an unreadable config (permissions, gs:// errors) only costs the nicer name
  return parts[-1] if parts else path


def _short(value) -> str:
  return f"{value:g}" if isinstance(value, float) else str(value)


def label_from_config(config: str) -> str:
  """The method of a run, from the text of its config.gin.

  Returns:
    'stats:<scheme>(<source>)' for statistics-only initialisation, 'custom:<set>=<value>,...' for
    set values (paper Table 3), the pretraining task (or checkpoint name) for a run started from
    INITIAL_CHECKPOINT_PATH, and 'random' otherwise.
  """
  bindings = parse_config(config)
  scheme = config_value(bindings, "StatisticsInitializer.scheme")
  if scheme:
    source = config_value(bindings, "StatisticsInitializer.checkpoint",
                          "StatisticsInitializer.stats_file")
    return f"stats:{scheme}" + (f"({_checkpoint_name(source)})"
                                if isinstance(source, str) and source else "")
  if "CustomValueInitializer" in str(config_value(bindings, "InitConfig.param_initializer", "train.param_initializer") or ""):
    constants = config_value(bindings, "CustomValueInitializer.constants")
    stds = config_value(bindings, "CustomValueInitializer.stds")
    constants = constants if isinstance(constants, dict) else {}
    stds = stds if isinstance(stds, dict) else {}
    items = [f"{k}={_short(v)}" for k, v in sorted(constants.items())]
    items += [f"{k}~N(0,{_short(v)})" for k, v in sorted(stds.items())]
    return "custom:" + ",".join(items) if items else "custom"
  path = config_value(bindings, "INITIAL_CHECKPOINT_PATH", "InitConfig.checkpoint_path", "train.initial_checkpoint_path")
  if isinstance(path, str) and path and path != "None":
    return _checkpoint_name(path)
  return "random"


def _read_records(path: str) -> List[dict]:
  records_path = os.path.join(path, "metrics.jsonl")
  if not _exists(records_path):
    raise ReportError(f"{path}: no metrics.jsonl (not a run directory, or the run has not "
                      "evaluated yet).")
  records = []
  with _open(records_path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except ValueError as e:
        raise ReportError(f"{records_path}: line {number} is not JSON ({e}).") from e
  return records


def read_run(path: str, label: Optional[str] = None) -> Run:
  """Applies the protocol to one run directory.

  Args:
    path: the run's MODEL_DIR (metrics.jsonl, config.gin, optionally label.txt).
    label: its method; default: label.txt in the directory, else derived from config.gin.

  Returns:
    The run scored at its step of best validation token accuracy: the inference metrics of the
    test split there (validation when that is the only split decoded, as for SQuAD), plus the
    teacher-forced validation metrics as 'eval:<name>'.

  Raises:
    ReportError: no metrics.jsonl, or no teacher-forced validation accuracy in it.
  """
  records = _read_records(path)
  config = ""
  if _exists(os.path.join(path, "config.gin")):
    with _open(os.path.join(path, "config.gin")) as f:
      config = f.read()
  bindings = parse_config(config)
  task = config_value(bindings, "MIXTURE_OR_TASK_NAME")
  evals = [r for r in records if r.get("kind") == "eval" and r.get("split") == "validation"
           and isinstance(r.get("accuracy"), (int, float))]
  if not task:
    task = next((r.get("task") for r in evals if r.get("task")), None) or "?"
  if not evals:
    kinds = sorted({f"{r.get('kind')}/{r.get('split')}" for r in records})
    raise ReportError(f"{path}: no teacher-forced validation 'accuracy' in metrics.jsonl "
                      f"(records found: {kinds or 'none'}); the run has not evaluated yet.")
  # The first step reaching the best accuracy; a step evaluated twice (resumption) counts once.
  best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
  infers = [r for r in records if r.get("kind") == "infer" and r.get("step") == best["step"]]
  if any(r.get("task") == task for r in infers):
    infers = [r for r in infers if r.get("task") == task]
  # The paper reads the test split for its custom tasks and validation for SQuAD, whichever the
  # run decoded; test wins when both were.
  by_split = {r.get("split"): r for r in infers}
  split = "test" if "test" in by_split else "validation" if "validation" in by_split else (
      next(iter(by_split), ""))
  values, note = {}, ""
  if not split:
    steps = sorted({r.get("step") for r in records if r.get("kind") == "infer"})
    note = (f"no inference eval at step {best['step']}, the step of best validation accuracy "
            f"(inference evals at steps {steps})")
  if split:
    values = {k: float(v) for k, v in by_split[split].items()
              if k not in ("step", "kind", "split", "task") and isinstance(v, (int, float))}
  values.update({f"eval:{k}": float(v) * (100 if k == "accuracy" else 1)
                 for k, v in best.items() if k not in ("step", "kind", "split", "task")
                 and isinstance(v, (int, float))})
  if label is None and _exists(os.path.join(path, "label.txt")):
    with _open(os.path.join(path, "label.txt")) as f:
      label = f.read().strip() or None
  seed = config_value(bindings, "SEED", "train.seed")
  return Run(path=path, task=str(task), label=label or label_from_config(config),
             seed="?" if seed is None else str(seed), best_step=int(best["step"]),
             best_accuracy=float(best["accuracy"]), metrics=values, infer_split=split,
             note=note)


def _mean_std(values: Sequence[float]):
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, 0.0
  return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(runs: Sequence[Run], metric: Optional[str], random: str, natural: str):
  """Groups runs by task and method and computes the benefit.

  Args:
    runs: scored runs.
    metric: the metric to compare; None: each task's reported metric (PRIMARY_METRIC).
    random: label of the random-init baseline.
    natural: label of the natural pre-training baseline.

  Returns:
    ({task: {label: {'mean', 'std', 'n', 'benefit'}}}, {task: metric name}). The benefit is
    (mean - mean of random) / (mean of natural - mean of random), None where a baseline is
    missing or the two baselines tie.

  Raises:
    ReportError: a run lacks the metric.
  """
  by_task = collections.defaultdict(lambda: collections.defaultdict(list))
  metric_of = {}
  for run in runs:
    name = metric or PRIMARY_METRIC.get(run.task, DEFAULT_METRIC)
    if name not in run.metrics:
      if run.note and not name.startswith("eval:"):
        raise ReportError(f"{run.path}: {run.note}; only the teacher-forced metrics can be "
                          "compared (--metric=eval:accuracy).")
      raise ReportError(f"{run.path}: no {name!r} among its metrics at step {run.best_step} "
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
      rows[label] = {"mean": mean, "std": std, "n": len(values), "benefit": benefit,
                     "metric": metric_of[task]}
    table[task] = rows
  return table, metric_of


def missing_baselines(table, random: str, natural: str) -> List[str]:
  """Tasks without one of the two baselines, so without benefits (a label typo, most often)."""
  problems = []
  for task, rows in sorted(table.items()):
    absent = [b for b in (random, natural) if b not in rows]
    if absent:
      problems.append(f"{task}: no run labelled {' or '.join(map(repr, absent))} (labels: "
                      f"{', '.join(sorted(rows))}); set --random/--natural or label the runs")
  return problems


def markdown(table, metric_of, random: str, natural: str,
             runs: Sequence[Run] = ()) -> str:
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
    if benefits and len(benefits) < len(tasks):
      mean_benefit += f" ({len(benefits)} of {len(tasks)} tasks)"
    lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean_benefit} |")
  note = (f"\nBenefit = (method - {random}) / ({natural} - {random}), per task on the mean over "
          "seeds, averaged over the tasks that have both baselines; score = the metric in the "
          "column header (inference, or eval: teacher-forced) at the step of best validation "
          "token accuracy; ± is the sample standard deviation over seeds.\n")
  splits = collections.Counter((r.task, r.infer_split) for r in runs if r.infer_split)
  if splits:
    note += "\nInference split per task: " + ", ".join(
        f"{task}: {split} ({n} runs)" for (task, split), n in sorted(splits.items())) + ".\n"
  for problem in missing_baselines(table, random, natural):
    note += f"\nNo benefit for {problem}.\n"
  return "\n".join(lines) + "\n" + note


def write_csv(runs: Sequence[Run], table, path: str) -> None:
  """One row per run, then one per (task, method) summary."""
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["kind", "task", "method", "seed", "run", "best_step", "best_accuracy",
                   "split", "metric", "value", "std", "n", "benefit"])
  for run in runs:
    for name, value in sorted(run.metrics.items()):
      split = "validation" if name.startswith("eval:") else run.infer_split
      writer.writerow(["run", run.task, run.label, run.seed, run.path, run.best_step,
                       run.best_accuracy, split, name, value, "", "", ""])
  for task, rows in sorted(table.items()):
    for label, row in sorted(rows.items()):
      writer.writerow(["summary", task, label, "", "", "", "", "", row["metric"], row["mean"],
                       row["std"], row["n"], "" if row["benefit"] is None else row["benefit"]])
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


def _key(path: str) -> str:
  """Run directories compare equal however they were spelled (trailing slash, ./)."""
  return path.rstrip("/") if "://" in path else os.path.normpath(path)


def _label_mapping(items: Sequence[str], label_file: Optional[str]) -> Dict[str, str]:
  """{run dir: label} from --label items and the lines of --label_file."""
  pairs = [("--label", item) for item in items]
  if label_file:
    if not _exists(label_file):
      raise ReportError(f"--label_file {label_file} does not exist.")
    with _open(label_file) as f:
      pairs += [(f"{label_file}: line {n}", line.strip()) for n, line in enumerate(f, 1)
                if line.strip() and not line.lstrip().startswith("#")]
  labels = {}
  for where, item in pairs:
    path, sep, label = item.rpartition("=")
    if not sep or not path.strip() or not label.strip():
      raise ReportError(f"{where}: {item!r} is not RUN_DIR=LABEL.")
    labels[_key(path.strip())] = label.strip()
  return labels


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
  p.add_argument("--label", action="append", default=[], metavar="RUN_DIR=LABEL",
                 help="method of a run (overrides label.txt and config.gin); repeatable")
  p.add_argument("--label_file", default=None,
                 help="a file of RUN_DIR=LABEL lines ('#' comments), like repeated --label")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    labels = _label_mapping(args.label, args.label_file)
    known = {_key(path) for path in args.runs}
    unknown = sorted(path for path in labels if path not in known)
    if unknown:
      raise ReportError(f"labels given for run directories that are not reported: {unknown}")
    runs = [read_run(path, labels.get(_key(path))) for path in args.runs]
    table, metric_of = summarize(runs, args.metric, args.random, args.natural)
  except ReportError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for problem in missing_baselines(table, args.random, args.natural):
    print(f"warning: no benefit for {problem}.", file=sys.stderr)
  text = markdown(table, metric_of, args.random, args.natural, runs)
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
