"""Metrics to TensorBoard (t5x's directory layout) and to one JSON line per record.

`MODEL_DIR/train/` holds training scalars, `MODEL_DIR/training_eval/<task>/` teacher-forced eval,
`MODEL_DIR/inference_eval/<task>/` decoding metrics; `MODEL_DIR/metrics.jsonl` has every record as
`{"step", "kind": "train"|"eval"|"infer", "split", "task", ...values}` for scripts and the report.
Only process 0 writes.
"""
import json
import os
from typing import Dict, Mapping, Optional

import jax
from tensorboardX import SummaryWriter

_KIND_DIRS = {"train": "train", "eval": "training_eval", "infer": "inference_eval"}


class MetricsWriter:
  """Writes scalar metrics for one run directory."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self.enabled = jax.process_index() == 0
    self._writers: Dict[str, SummaryWriter] = {}
    if self.enabled:
      os.makedirs(model_dir, exist_ok=True)

  def _writer(self, kind: str, task: Optional[str]) -> SummaryWriter:
    sub = _KIND_DIRS[kind] if kind == "train" else os.path.join(_KIND_DIRS[kind], task or "all")
    if sub not in self._writers:
      self._writers[sub] = SummaryWriter(os.path.join(self.model_dir, sub))
    return self._writers[sub]

  def write(self, step: int, kind: str, values: Mapping[str, float], *, split: str,
            task: Optional[str] = None) -> None:
    """Records `values` at `step`; non-numeric values go to the JSON line only."""
    if not self.enabled:
      return
    writer = self._writer(kind, task)
    for name, value in values.items():
      if isinstance(value, (int, float)):
        writer.add_scalar(name, value, step)
    writer.flush()
    record = {"step": int(step), "kind": kind, "split": split, "task": task, **values}
    with open(os.path.join(self.model_dir, "metrics.jsonl"), "a") as f:
      f.write(json.dumps(record) + "\n")

  def write_text(self, tag: str, text: str, step: int = 0) -> None:
    """Records text (e.g. the operative gin config) in the training TensorBoard run."""
    if self.enabled:
      writer = self._writer("train", None)
      writer.add_text(tag, text.replace("\n", "  \n"), step)  # Markdown: keep the line breaks
      writer.flush()

  def close(self) -> None:
    for writer in self._writers.values():
      writer.close()
    self._writers.clear()
