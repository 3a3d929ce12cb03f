"""The report's tables and plot: Markdown, CSV and PNG of protocol's comparisons."""
import csv
import io
from typing import Dict, List, Optional, Sequence

from synthetic_pretraining import paths
from synthetic_pretraining.report import floors as floors_lib
from synthetic_pretraining.report import protocol


def _order(labels, random: str, natural: str) -> List[str]:
  return sorted(labels, key=lambda l: (l != random, l != natural, l.startswith("stats"), l))


def _pm(mean: float, std: float, n: int = 2) -> str:
  """mean ± std; one seed has no spread to show."""
  return f"{mean:.2f}" if n < 2 else f"{mean:.2f} ± {std:.2f}"


def comparison_markdown(comparisons: Sequence[protocol.Comparison], random: str,
                        natural: str, floors: Optional[Dict[str, floors_lib.Floor]] = None) -> str:
  """One table per task: mean ± std (n), difference from random, benefit or why there is none,
  and (EM, F1 with `floors`) whether the method is above the best trivial rule."""
  out = []
  for c in comparisons:
    floor = (floors or {}).get(c.task) if c.metric in floors_lib.METRICS else None
    out.append(f"**{c.task}, {c.metric}**\n")
    out.append(f"| method | {c.metric} (mean ± std, n) | − {random} (± s.e.) | benefit | "
               "share of source's benefit |" + (" above the floor? |" if floor else ""))
    out.append("| --- | --- | --- | --- | --- |" + (" --- |" if floor else ""))
    for label in _order(c.rows, random, natural):
      r = c.rows[label]
      baseline = c.rows.get(random)
      one_seed = r.n < 2 and (baseline is None or baseline.n < 2)  # no spread to show
      diff = "" if r.diff is None or label == random else (
          f"{r.diff:+.2f}" if one_seed else f"{r.diff:+.2f} ± {r.diff_se:.2f}")
      benefit = "" if r.benefit is None else f"{100 * r.benefit:.0f}%"
      share = ("" if r.share_of_source is None
               else f"{100 * r.share_of_source:.0f}% of {r.source}")
      above = ""
      if floor:
        rule, best, _ = floor.best(c.metric)
        verdict = floors_lib.above_floor(r.mean, r.std, floor, c.metric)
        above = f" {'yes' if verdict else 'no'} ({r.mean - best:+.2f} vs {rule}) |"
      out.append(f"| {label} | {_pm(r.mean, r.std, r.n)} (n={r.n}) | {diff} | {benefit} | {share} |"
                 + above)
    if c.gap is None:
      missing = " and ".join(f"'{name}'" for name in (random, natural) if name not in c.rows)
      out.append(f"\nNo benefit ratio: it needs runs labelled '{random}' and '{natural}', "
                 f"and no run is labelled {missing}.")
    elif not c.benefit_defined:
      out.append(f"\nNo benefit ratio: {natural} − {random} = {c.gap:.2f} does not exceed "
                 f"{protocol.SPREAD_FACTOR:g} × the larger seed spread of the two baselines "
                 f"({c.gap_noise:.2f}); compare the differences in points instead.")
    else:
      out.append(f"\nBenefit = (method − {random}) / ({natural} − {random}); {natural} − "
                 f"{random} = {c.gap:.2f} exceeds {protocol.SPREAD_FACTOR:g} × the seed spread "
                 f"({c.gap_noise:.2f}).")
    out.append("")
  return "\n".join(out)


def floors_markdown(floors: Dict[str, floors_lib.Floor],
                    comparisons: Sequence[protocol.Comparison], random: str) -> str:
  """Per task: EM and F1 of the question-blind rules on the decoded test examples, beside random
  init's scores."""
  out = []
  for task, floor in sorted(floors.items()):
    rows = {c.metric: c.rows.get(random) for c in comparisons if c.task == task}
    out.append(f"**{task}** ({floor.n} examples decoded by {floor.source}; k = {floor.k} words, "
               "the answers' median length)\n")
    out.append("| rule | em (± std over draws) | f1 (± std over draws) |")
    out.append("| --- | --- | --- |")
    for rule in floors_lib.RULES:
      cells = [_pm(*floor.scores[rule][m]) for m in floors_lib.METRICS]
      out.append(f"| {rule} | " + " | ".join(cells) + " |")
    cells = [_pm(rows[m].mean, rows[m].std) + f" (n={rows[m].n})" if rows.get(m) else "—"
             for m in floors_lib.METRICS]
    out.append(f"| *{random} init (seeds)* | " + " | ".join(cells) + " |")
    if floor.mismatched:
      out.append(f"\n**Warning**: {floor.mismatched} run(s) of {task} decoded other examples; "
                 "their scores are not on the floor's examples.")
    out.append("")
  return "\n".join(out) + (
      "\nRules that never read the question: random_span, k consecutive context words at a "
      f"random place ({floors_lib.DRAWS} draws); first_words, the first k context words; "
      "whole_context, the whole context. A method is above the floor only when its mean exceeds "
      "the best rule by more than the larger of its seed spread and the rule's spread.\n")


def position_markdown(splits: Dict[str, dict], random: str, natural: str) -> str:
  """Teacher-forced validation accuracy split by target position (position_split)."""
  if not splits:
    return ""
  cats = protocol.POSITION_CATEGORIES
  head = "| method | " + " | ".join(f"{c}: share / acc." for c in cats) + " | all: acc. | n |"
  lines = [head, "|" + " --- |" * (len(cats) + 3)]
  for label in _order(splits, random, natural):
    s = splits[label]
    cells = [f"{s[c]['share']:.1f} / {s[c]['accuracy']:.1f}" for c in cats]
    lines.append(f"| {label} | " + " | ".join(cells) + f" | {s['all']['accuracy']:.1f} | "
                 f"{s['n']} |")
  return ("\n".join(lines) + "\n\nShare: % of validation target tokens; acc.: % predicted "
          "correctly (teacher-forced, at the step of best validation accuracy). first_token: the "
          "answer's first token; copyable: a later token that follows the previous gold token "
          "somewhere in the input (a copy rule gets it); other: the rest; eos: the closing EOS.\n")


def pretraining_markdown(runs: Sequence[protocol.Pretraining]) -> str:
  """Final validation token accuracy of each pre-training run, flagged when still rising."""
  if not runs:
    return ""
  lines = ["| pre-training | seed | steps | final val. token acc. (%) | gain over last quarter "
           "(points) | plateaued |", "| --- | --- | --- | --- | --- | --- |"]
  for p in runs:
    acc = "" if p.final_accuracy is None else f"{p.final_accuracy:.1f}"
    gain = "" if p.late_gain is None else f"{p.late_gain:+.1f}"
    flag = {None: "unknown", True: "yes", False: "**no: still rising**"}[p.plateaued]
    lines.append(f"| {p.label} | {p.seed} | {p.steps} | {acc} | {gain} | {flag} |")
  return "\n".join(lines) + (f"\n\nPlateaued: gained at most {protocol.PLATEAU_POINTS:g} point "
                             "of validation token accuracy over the last quarter of its steps.\n")


def write_csv(runs: Sequence[protocol.Run], comparisons: Sequence[protocol.Comparison],
              path: str, floors: Optional[Dict[str, floors_lib.Floor]] = None) -> None:
  """One row per run and metric, one per (task, metric, method) summary, one per floor rule.
  Runs are named relative to the folder holding them all (`protocol.run_names`), never by a
  machine path."""
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["kind", "task", "method", "seed", "run", "best_step", "split", "metric",
                   "value", "std", "n", "diff", "diff_se", "benefit", "share_of_source"])
  names = protocol.run_names([run.path for run in runs])
  for run in runs:
    for name, value in sorted(run.metrics.items()):
      split = "validation" if name.startswith("eval:") else run.infer_split
      writer.writerow(["run", run.task, run.label, run.seed, names[run.path], run.best_step,
                       split, name, value, "", "", "", "", "", ""])
  for task, floor in sorted((floors or {}).items()):
    for rule in floors_lib.RULES:
      for metric in floors_lib.METRICS:
        mean, std = floor.scores[rule][metric]
        writer.writerow(["floor", task, rule, "", floor.source, "", "", metric, mean, std,
                         floor.n, "", "", "", ""])
  blank = lambda v: "" if v is None else v
  for c in comparisons:
    for label, r in sorted(c.rows.items()):
      writer.writerow(["summary", c.task, label, "", "", "", "", c.metric, r.mean, r.std, r.n,
                       blank(r.diff), blank(r.diff_se), blank(r.benefit),
                       blank(r.share_of_source)])
  paths.write_atomic(path, buffer.getvalue())


def plot(comparisons: Sequence[protocol.Comparison], path: str, random: str,
         natural: str, runs: Sequence[protocol.Run] = ()) -> None:
  """Bars of mean ± std per method, one panel per (task, metric); below, the learning curves of
  every finetuning run (its task's headline inference metric and validation token accuracy
  against steps), one line per run, coloured by method."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  curves = _curve_panels(runs)
  columns = max(len(comparisons), len(curves), 1)
  rows = 2 if curves else 1
  fig, axes = plt.subplots(rows, columns, figsize=(max(5, 4.5 * columns), 4 * rows),
                           squeeze=False)
  for ax in axes.flat:
    ax.set_visible(False)
  for ax, c in zip(axes[0], comparisons):
    ax.set_visible(True)
    labels = _order(c.rows, random, natural)
    colors = ["#999999" if l == random else "#1f77b4" if l == natural else "#ff7f0e"
              for l in labels]
    ax.bar(range(len(labels)), [c.rows[l].mean for l in labels],
           yerr=[c.rows[l].std for l in labels], color=colors, capsize=3)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_title(f"{c.task}: {c.metric}")
  labels = _order({r.label for r in runs}, random, natural)
  palette = plt.get_cmap("tab10")
  color = {label: palette(i % 10) for i, label in enumerate(labels)}
  for ax, (task, metric) in zip(axes[-1] if curves else [], curves):
    ax.set_visible(True)
    shown = set()
    for run in sorted(runs, key=lambda r: (labels.index(r.label), r.seed)):
      points = run.curves.get(metric) if run.task == task else None
      if not points:
        continue
      ax.plot([p[0] for p in points], [p[1] for p in points], color=color[run.label],
              marker=".", linewidth=1, label=None if run.label in shown else run.label)
      shown.add(run.label)
    ax.set_xlabel("step")
    name = "validation token accuracy (%)" if metric == "eval:accuracy" else f"test {metric}"
    ax.set_title(f"{task}: {name}", fontsize=9)
    ax.legend(fontsize=7)
  save_png(fig, path)


def save_png(fig, path: str) -> None:
  """Writes a matplotlib figure as a PNG to `path` (local or gs://: drawn in memory, then written
  whole through the path layer) and closes it."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120)
  plt.close(fig)
  paths.write_atomic(path, buffer.getvalue())


def _curve_panels(runs: Sequence[protocol.Run]) -> List[tuple]:
  """(task, metric) of each learning-curve panel: per task its headline inference metric (when
  decoded) and the validation token accuracy."""
  panels = []
  for task in sorted({r.task for r in runs}):
    headline = protocol.PRIMARY_METRIC.get(task, protocol.DEFAULT_METRIC)
    task_runs = [r for r in runs if r.task == task]
    for metric in (headline, "eval:accuracy"):
      if any(r.curves.get(metric) for r in task_runs):
        panels.append((task, metric))
  return panels
