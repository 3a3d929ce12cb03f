"""Trivial-rule floors: what rules that never read the question score on the same test examples.

A finetuned model has learnt something about the task only where it beats rules that look at the
context alone. For each downstream task the report scores, on the very examples its runs decoded
(their `inference_eval/<task>-<step>.jsonl`, which carry each input and every gold answer):

* `random_span`: a span of k consecutive context words at a random place (DRAWS draws; mean and
  standard deviation over draws), k the answers' typical (median) length in words;
* `first_words`: the first k words of the context;
* `whole_context`: the whole context.

The context is the text after `context:` in a SQuAD-style input, else the whole input. EM and F1
are the task's own (SQuAD's normalised metric where the examples carry all gold answers, raw EM and
token F1 otherwise). A method is *above the floor* on a metric only when its mean exceeds the best
rule's mean by more than the larger of its seed spread and that rule's spread (`above_floor`).
"""
import dataclasses
import json
import random
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from synthetic_pretraining.data import metrics
from synthetic_pretraining import paths

RULES = ("random_span", "first_words", "whole_context")
METRICS = ("em", "f1")
DRAWS = 20
CONTEXT_MARKER = " context: "


@dataclasses.dataclass
class Floor:
  """The rules' scores on one task's examples.

  Attributes:
    task: the downstream task.
    n: examples scored.
    k: words in a random span and in first_words (the answers' median length).
    scores: {rule: {metric: (mean, std over draws; 0 for deterministic rules)}}.
    source: the run whose decoded examples were scored (its label, never a path).
    mismatched: runs of the task that decoded other examples than `source` did.
  """
  task: str
  n: int
  k: int
  scores: Dict[str, Dict[str, Tuple[float, float]]]
  source: str = ""
  mismatched: int = 0

  def best(self, metric: str) -> Tuple[str, float, float]:
    """(rule, mean, std) of the rule with the highest mean on `metric`."""
    rule = max(self.scores, key=lambda r: self.scores[r][metric][0])
    return (rule,) + tuple(self.scores[rule][metric])


def context_of(text: str) -> str:
  """The part of an input a question-blind rule may use: after 'context:' (SQuAD), else all."""
  head, marker, tail = text.partition(CONTEXT_MARKER)
  return tail if marker and head.startswith("question:") else text


def _score(golds: Sequence[Sequence[str]], predictions: Sequence[str], squad: bool):
  if squad:
    return metrics.squad([list(g) for g in golds], list(predictions))
  return metrics.exact_match_f1([g[0] for g in golds], list(predictions))


def compute(examples: Sequence[dict], draws: int = DRAWS, seed: int = 0,
            task: str = "") -> Floor:
  """The floors of `examples` (rows of an inference file: 'input', 'target', optional 'answers').

  Raises:
    ValueError: no examples.
  """
  if not examples:
    raise ValueError(f"no decoded examples to compute the floors of {task or 'a task'} on")
  squad = all("answers" in ex for ex in examples)
  golds = [list(ex["answers"]) if squad else [ex["target"]] for ex in examples]
  contexts = [context_of(ex["input"]).split() for ex in examples]
  k = max(1, round(statistics.median(len(g[0].split()) for g in golds)))
  rng = random.Random(seed)

  def random_span(words):
    if len(words) <= k:
      return " ".join(words)
    start = rng.randrange(len(words) - k + 1)
    return " ".join(words[start:start + k])

  scores = {}
  spans = [_score(golds, [random_span(w) for w in contexts], squad) for _ in range(draws)]
  scores["random_span"] = {m: _mean_std([s[m] for s in spans]) for m in METRICS}
  first = _score(golds, [" ".join(w[:k]) for w in contexts], squad)
  scores["first_words"] = {m: (first[m], 0.0) for m in METRICS}
  whole = _score(golds, [" ".join(w) for w in contexts], squad)
  scores["whole_context"] = {m: (whole[m], 0.0) for m in METRICS}
  return Floor(task=task, n=len(examples), k=k, scores=scores)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, 0.0
  return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def above_floor(mean: float, std: float, floor: Floor, metric: str) -> Optional[bool]:
  """Whether a method's mean ± std (over seeds) is above the best rule on `metric`: by more than
  the larger of the two spreads. None when the floor has no such metric."""
  if metric not in METRICS:
    return None
  _, best, best_std = floor.best(metric)
  return mean - best > max(std, best_std)


def decoded_examples(run_dir: str, task: str, step: Optional[int] = None) -> List[dict]:
  """The rows a run decoded for `task` at `step` (default: its first inference eval file)."""
  directory = paths.join(run_dir, "inference_eval")
  if not paths.isdir(directory):
    return []
  prefix = f"{task}-"
  names = sorted(n for n in (paths.as_path(p).name for p in paths.listdir(directory))
                 if n.startswith(prefix) and n[len(prefix):-len(".jsonl")].isdigit())
  if step is not None:
    names = [n for n in names if n == f"{task}-{step:06d}.jsonl"]
  if not names:
    return []
  return [json.loads(line) for line in paths.iter_lines(paths.join(directory, names[0]))
          if line.strip()]


def task_floors(runs, random_label: str = "random", names: Optional[Dict[str, str]] = None,
                draws: int = DRAWS) -> Dict[str, Floor]:
  """{task: Floor} from the examples the runs decoded (a `random_label` run's first, if any).

  Args:
    runs: protocol.Run objects.
    random_label: the method whose examples are preferred.
    names: {run path: run name} to say which run was scored.
    draws: random_span draws.
  """
  out = {}
  by_task: Dict[str, list] = {}
  for run in runs:
    by_task.setdefault(run.task, []).append(run)
  for task, task_runs in sorted(by_task.items()):
    ordered = sorted(task_runs, key=lambda r: r.label != random_label)
    decoded = [(r, decoded_examples(r.path, task)) for r in ordered]
    decoded = [(r, rows) for r, rows in decoded if rows]
    if not decoded:
      continue
    source, rows = decoded[0]
    floor = compute(rows, draws=draws, task=task)
    inputs = [row["input"] for row in rows]
    floor.mismatched = sum([row["input"] for row in other] != inputs for _, other in decoded[1:])
    floor.source = (names or {}).get(source.path, f"{source.label} seed {source.seed}")
    out[task] = floor
  return out
