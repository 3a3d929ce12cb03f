"""The paper's comparison as arithmetic: model selection, aggregation over seeds, the benefit.

Reads run directories only through their structured files: `run.json` (run_record: task, seed,
initialisation, label), `metrics.jsonl` (eval / infer records) and, when present,
`position_split.json`. No gin text is parsed.

Selection (paper §4, "Evaluation"): a run's score is its inference metric at the step of best
teacher-forced validation token accuracy (the first such step on ties; the test split when the
run decoded it, else validation, as for SQuAD).

Aggregation: mean and sample standard deviation over seeds per (task, method).

Benefit: (method - random) / (natural - random) on the means, reported only where natural - random
exceeds SPREAD_FACTOR times the seed spread of the two baselines; otherwise differences from
random in points, each with the standard error of the difference. A statistics-only method is
also reported as a share of its source model's own benefit, (stats - random) / (source - random),
where source - random clears the seed spread in the same way.
"""
import collections
import dataclasses
import json
import math
from typing import Dict, List, Optional, Sequence

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.training import run_dir
from synthetic_pretraining.training import run_record

PRIMARY_METRIC = {"cnndm_10k": "rouge1"}  # every other task of the paper reports em first
DEFAULT_METRIC = "em"
SPREAD_FACTOR = 3.0  # natural - random must exceed this many seed spreads for a benefit ratio
# The target positions of a position split (position_split.json, written by position_split).
POSITION_CATEGORIES = ("first_token", "copyable", "other", "eos")


class ReportError(errors.UsageError):
  """A run directory that cannot be scored."""


@dataclasses.dataclass
class Run:
  """One finetuning run, scored by the protocol.

  Attributes:
    path: the run directory (MODEL_DIR).
    task: the downstream task (run.json).
    label: the method (initialisation) it stands for.
    seed: its seed.
    source: for a statistics-only or checkpoint init, the method name of its source model.
    best_step: the step of best validation token accuracy.
    metrics: inference metrics at best_step, plus 'eval:<name>' teacher-forced ones (accuracy x100).
    infer_split: the split the inference metrics were computed on ('' when there were none).
    position_split: position_split.json's categories, when the run has one.
    note: why inference metrics are missing, for the error that needs them.
    curves: learning curves {'eval:accuracy' (x100) and each inference metric on infer_split:
      [(step, value), ...]} in step order.
  """
  path: str
  task: str
  label: str
  seed: int
  source: Optional[str]
  best_step: int
  metrics: Dict[str, float]
  infer_split: str
  position_split: Optional[dict] = None
  note: str = ""
  curves: Dict[str, List[tuple]] = dataclasses.field(default_factory=dict)


def read_records(path: str) -> List[dict]:
  """The records of MODEL_DIR/metrics.jsonl."""
  records_path = run_dir.path(path, run_dir.METRICS_LOG)
  if not paths.exists(records_path):
    raise ReportError(f"{path}: no metrics.jsonl (not a run directory, or the run has not "
                      "evaluated yet).")
  records = []
  for number, line in enumerate(paths.iter_lines(records_path), 1):
    if line.strip():
      try:
        records.append(json.loads(line))
      except ValueError as e:
        raise ReportError(f"{records_path}: line {number} is not JSON ({e}).") from e
  return records


def validation_accuracies(records: Sequence[dict]) -> List[dict]:
  """The teacher-forced validation eval records that carry an accuracy."""
  return [r for r in records if r.get("kind") == "eval" and r.get("split") == "validation"
          and isinstance(r.get("accuracy"), (int, float))]


def read_run(path: str, label: Optional[str] = None) -> Run:
  """Applies the selection protocol to one run directory (see the module docstring)."""
  if not paths.exists(path):
    raise ReportError(f"{path} does not exist, so no {run_record.FILENAME} (expected a run "
                      f"directory: a MODEL_DIR holding {run_record.FILENAME} and metrics.jsonl).")
  record = run_record.read(path)
  if record is None:
    raise ReportError(f"{path}: no {run_record.FILENAME} (runs write it from this version on; "
                      "rerun, or write one by hand: synthetic_pretraining/training/run_record.py).")
  records = read_records(path)
  evals = validation_accuracies(records)
  if not evals:
    kinds = sorted({f"{r.get('kind')}/{r.get('split')}" for r in records})
    raise ReportError(f"{path}: no teacher-forced validation 'accuracy' in metrics.jsonl "
                      f"(records found: {kinds or 'none'}); the run has not evaluated yet.")
  best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
  infers = [r for r in records if r.get("kind") == "infer" and r.get("step") == best["step"]
            and r.get("task", record.task) == record.task]
  by_split = {r.get("split"): r for r in infers}
  split = "test" if "test" in by_split else "validation" if "validation" in by_split else ""
  values, note = {}, ""
  if split:
    values = {k: float(v) for k, v in by_split[split].items()
              if k not in ("step", "kind", "split", "task") and isinstance(v, (int, float))}
  else:
    steps = sorted({r.get("step") for r in records if r.get("kind") == "infer"})
    note = (f"no inference eval at step {best['step']}, the step of best validation accuracy "
            f"(inference evals at steps {steps})")
  values.update({f"eval:{k}": float(v) * (100 if k == "accuracy" else 1)
                 for k, v in best.items() if k not in ("step", "kind", "split", "task")
                 and isinstance(v, (int, float))})
  source_path = record.init.get("source") or record.init.get("path")
  source = None
  if source_path:
    source_record = _source_record(source_path)
    source = (source_record.label or source_record.task) if source_record else None
  split_path = run_dir.path(path, run_dir.POSITION_SPLIT)  # written by position_split
  split_file = json.loads(paths.read_text(split_path)) if paths.exists(split_path) else None
  return Run(path=path, task=record.task, label=label or record.method(run_record.source_task),
             seed=record.seed, source=source, best_step=int(best["step"]), metrics=values,
             infer_split=split, note=note,
             position_split=split_file["categories"] if split_file else None,
             curves=learning_curves(records, record.task, split))


def learning_curves(records: Sequence[dict], task: str, infer_split: str) -> Dict[str, List[tuple]]:
  """{'eval:accuracy': [(step, validation token accuracy x100)], metric: [(step, value)] for each
  inference metric on `infer_split`}, in step order."""
  curves = collections.defaultdict(list)
  for r in sorted(validation_accuracies(records), key=lambda r: r["step"]):
    curves["eval:accuracy"].append((int(r["step"]), 100 * float(r["accuracy"])))
  infers = [r for r in records if r.get("kind") == "infer" and r.get("split") == infer_split
            and r.get("task", task) == task]
  for r in sorted(infers, key=lambda r: r["step"]):
    for k, v in r.items():
      if k not in ("step", "kind", "split", "task") and isinstance(v, (int, float)):
        curves[k].append((int(r["step"]), float(v)))
  return dict(curves)


def run_names(run_paths: Sequence[str]) -> Dict[str, str]:
  """{path: name}: each run directory relative to the deepest folder holding them all
  (e.g. 'finetune/set/lr_0.01/seed_1'), so that reports carry run labels, never machine paths."""
  parts = [paths.as_str(p).rstrip("/").split("/") for p in run_paths]
  parents = [p[:-1] for p in parts]
  common = 0
  while parents and all(len(p) > common for p in parents) and len(
      {p[common] for p in parents}) == 1:
    common += 1
  return {path: "/".join(p[common:]) for path, p in zip(run_paths, parts)}


def baseline_origins(runs: Sequence[Run], label: str) -> List[str]:
  """Where the runs labelled `label` started from (run.json's init), one phrase per origin:
  names the natural baseline a report compares against (a transformers T5, a run of ours)."""
  origins = []
  for run in runs:
    if run.label != label:
      continue
    record = run_record.read(run.path)
    phrase = run_record.describe_origin(record.init) if record else "unknown (no run.json)"
    if phrase not in origins:
      origins.append(phrase)
  return origins


def _source_record(path: str):
  candidate = paths.as_path(path)
  for directory in (candidate, candidate.parent):
    if paths.isdir(directory):
      found = run_record.read(str(directory))
      if found is not None:
        return found
  return None


def mean_std(values: Sequence[float]):
  """(mean, sample standard deviation; 0 for one value)."""
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, 0.0
  return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def metric_of(run: Run, metric: Optional[str]) -> float:
  name = metric or PRIMARY_METRIC.get(run.task, DEFAULT_METRIC)
  if name not in run.metrics:
    if run.note and not name.startswith("eval:"):
      raise ReportError(f"{run.path}: {run.note}; only the teacher-forced metrics can be "
                        "compared (--metric=eval:accuracy).")
    raise ReportError(f"{run.path}: no {name!r} among its metrics at step {run.best_step} "
                      f"({sorted(run.metrics)}).")
  return run.metrics[name]


@dataclasses.dataclass
class Row:
  """One (task, method) of a comparison: mean ± std over n seeds and what follows from it."""
  mean: float
  std: float
  n: int
  diff: Optional[float] = None  # mean - random's mean, in the metric's units
  diff_se: Optional[float] = None  # standard error of that difference
  benefit: Optional[float] = None  # (mean - random) / (natural - random), when well conditioned
  share_of_source: Optional[float] = None  # (mean - random) / (source - random), stats inits
  source: Optional[str] = None


@dataclasses.dataclass
class Comparison:
  """One metric on one task: rows per method and whether the benefit ratio is meaningful."""
  task: str
  metric: str
  rows: Dict[str, Row]
  gap: Optional[float]  # natural - random
  gap_noise: Optional[float]  # SPREAD_FACTOR x the larger seed spread of the two baselines
  benefit_defined: bool


def compare(runs: Sequence[Run], metric: Optional[str], random: str = "random",
            natural: str = "natural") -> List[Comparison]:
  """Groups runs by task and method (see the module docstring for the arithmetic)."""
  values = collections.defaultdict(lambda: collections.defaultdict(list))
  sources, names = {}, {}
  for run in runs:
    values[run.task][run.label].append(metric_of(run, metric))
    names[run.task] = metric or PRIMARY_METRIC.get(run.task, DEFAULT_METRIC)
    if run.source:
      sources[run.label] = run.source
  out = []
  for task in sorted(values):
    stats = {label: mean_std(v) + (len(v),) for label, v in values[task].items()}
    base, top = stats.get(random), stats.get(natural)
    gap = gap_noise = None
    defined = False
    if base and top:
      gap = top[0] - base[0]
      gap_noise = SPREAD_FACTOR * max(base[1], top[1])
      defined = gap > gap_noise and gap > 0
    rows = {}
    for label, (mean, std, n) in stats.items():
      row = Row(mean=mean, std=std, n=n, source=sources.get(label))
      if base:
        row.diff = mean - base[0]
        row.diff_se = math.sqrt(std ** 2 / n + base[1] ** 2 / base[2])
        if defined:
          row.benefit = row.diff / gap
        # A share of the source's benefit only where that benefit clears the seed spread.
        source = stats.get(sources.get(label)) if sources.get(label) != label else None
        if source and source[0] - base[0] > SPREAD_FACTOR * max(source[1], base[1]):
          row.share_of_source = row.diff / (source[0] - base[0])
      rows[label] = row
    out.append(Comparison(task, names[task], rows, gap, gap_noise, defined))
  return out


def position_splits(runs: Sequence[Run]) -> Dict[str, Dict[str, Dict[str, float]]]:
  """{method: {category: {'share', 'accuracy'}}} averaged over the runs that have a split."""
  grouped = collections.defaultdict(list)
  for run in runs:
    if run.position_split:
      grouped[run.label].append(run.position_split)
  out = {}
  for label, splits in grouped.items():
    out[label] = {c: {k: sum(s[c][k] for s in splits) / len(splits) for k in ("share", "accuracy")}
                  for c in splits[0]}
    out[label]["n"] = len(splits)
  return out


@dataclasses.dataclass
class Pretraining:
  """A pre-training run's last validation accuracy and whether it had levelled off."""
  path: str
  label: str
  task: str
  seed: int
  steps: int
  final_accuracy: Optional[float]
  late_gain: Optional[float]  # accuracy gained over the last quarter of training (points)
  plateaued: Optional[bool]


PLATEAU_POINTS = 1.0  # gaining more than this over the last quarter of steps is "still rising"


def read_pretraining(path: str) -> Pretraining:
  """Final validation token accuracy of a pre-training run and its gain over the last quarter."""
  if not paths.exists(path):
    raise ReportError(f"{path} does not exist, so no {run_record.FILENAME} (expected a run "
                      f"directory: a MODEL_DIR holding {run_record.FILENAME} and metrics.jsonl).")
  record = run_record.read(path)
  if record is None:
    raise ReportError(f"{path}: no {run_record.FILENAME}.")
  evals = sorted(validation_accuracies(read_records(path)), key=lambda r: r["step"])
  if not evals:
    return Pretraining(path, record.label or record.task, record.task, record.seed,
                       record.train_steps, None, None, None)
  last = evals[-1]
  quarter = [r for r in evals if r["step"] <= 0.75 * last["step"]]
  gain = 100 * (last["accuracy"] - quarter[-1]["accuracy"]) if quarter else None
  return Pretraining(path, record.label or record.task, record.task, record.seed,
                     record.train_steps, 100 * last["accuracy"], gain,
                     None if gain is None else gain <= PLATEAU_POINTS)
