"""Reads a local run's metrics.jsonl in tests."""
import json
import os


def metric_records(model_dir, kind):
  """The records of one kind ('train', 'eval', ...) in order; [] before the first is written."""
  path = os.path.join(model_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [r for r in map(json.loads, f) if r["kind"] == kind]
