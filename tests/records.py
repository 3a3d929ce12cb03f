"""A local run's records in tests: reading metrics.jsonl, and writing made-up runs (run.json and
metrics.jsonl) for the report's tests."""
import json
import os

from synthetic_pretraining.training import run_record


def metric_records(model_dir, kind):
  """The records of one kind ('train', 'eval', ...) in order; [] before the first is written."""
  path = os.path.join(model_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [r for r in map(json.loads, f) if r["kind"] == kind]


def write_run_record(path, task, seed=1, init=None, label=None, steps=10):
  """Writes `path`/run.json for a made-up run of `task`."""
  path.mkdir(parents=True, exist_ok=True)
  record = run_record.RunRecord(task=task, seed=seed, train_steps=steps, batch_size=8,
                                lengths={"inputs": 64, "targets": 8},
                                init=init or {"kind": "random"}, label=label)
  (path / "run.json").write_text(json.dumps(record.__dict__))


def fake_run(root, name, task, em_by_step, acc_by_step, label=None, split="test", init=None, seed=1):
  """A made-up finetuning run root/name: validation accuracy and EM/F1 at the given steps."""
  path = root / name
  write_run_record(path, task, seed=seed, init=init, label=label)
  with open(path / "metrics.jsonl", "w") as f:
    for step, acc in acc_by_step.items():
      f.write(json.dumps({"step": step, "kind": "train", "split": "train", "task": task,
                          "accuracy": 1.0}) + "\n")  # training accuracy never selects a step
      f.write(json.dumps({"step": step, "kind": "eval", "split": "validation", "task": task,
                          "accuracy": acc}) + "\n")
    for step, em in em_by_step.items():
      f.write(json.dumps({"step": step, "kind": "infer", "split": split, "task": task,
                          "em": em, "f1": em + 1}) + "\n")
  return str(path)
