"""Metrics to TensorBoard (t5x's directory layout) and to one JSON line per record.

`MODEL_DIR/train/` holds training scalars, `MODEL_DIR/training_eval/<task>/` teacher-forced eval,
`MODEL_DIR/inference_eval/<task>/` decoding metrics; `MODEL_DIR/metrics.jsonl` has every record as
`{"step", "kind": "train"|"eval"|"infer", "split", "task", ...values}` for scripts and the report.
Only process 0 writes. MODEL_DIR may be local or gs:// (paths.py); the events go through
`tf.summary`, whose writer speaks every filesystem tf.io.gfile does (tensorboardX would need
google-cloud-storage and re-uploads its whole buffer on each flush), and as t5x's writer does.
"""
import json
import logging
from typing import Dict, Mapping, Optional

import jax
import tensorflow as tf

from synthetic_pretraining import paths
from synthetic_pretraining.training import run_dir

# What TensorBoard's scalars plugin looks for on a float32 tensor summary; written with
# `tf.summary.write`, because `tf.summary.scalar` needs the tensorboard package installed.
_SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))
_TEXT_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="text"))


class MetricsWriter:
  """Writes scalar metrics for one run directory."""

  def __init__(self, model_dir: paths.PathLike):
    self.model_dir = paths.as_str(model_dir)
    self.enabled = jax.process_index() == 0
    self._writers: Dict[tuple, tf.summary.SummaryWriter] = {}
    if self.enabled:
      paths.makedirs(self.model_dir)

  def _writer(self, kind: str, task: Optional[str]) -> tf.summary.SummaryWriter:
    dirs = run_dir.TENSORBOARD_DIRS
    parts = (dirs[kind],) if kind == "train" else (dirs[kind], task or "all")
    if parts not in self._writers:
      self._writers[parts] = tf.summary.create_file_writer(paths.join(self.model_dir, *parts))
    return self._writers[parts]

  def write(self, step: int, kind: str, values: Mapping[str, float], *, split: str,
            task: Optional[str] = None) -> None:
    """Records `values` at `step`; non-numeric values go to the JSON line only."""
    if not self.enabled:
      return
    writer = self._writer(kind, task)
    with writer.as_default():
      for name, value in values.items():
        if isinstance(value, (int, float)):
          tf.summary.write(name, tf.constant(value, tf.float32), step=int(step),
                           metadata=_SCALAR_METADATA)
    writer.flush()
    record = {"step": int(step), "kind": kind, "split": split, "task": task, **values}
    # Appending on an object store rewrites the object (tf.io.gfile downloads it and uploads it
    # whole on close); a file of one short line per logged step stays small enough for that.
    with paths.open_file(run_dir.path(self.model_dir, run_dir.METRICS_LOG), "a") as f:
      f.write(json.dumps(record) + "\n")

  def truncate_after(self, step: int) -> int:
    """Drops the metrics.jsonl records past `step` (the step a run resumes from); returns how many.

    Why truncate rather than mark repeats: the records past the restored checkpoint describe
    parameters that no checkpoint holds, and the resumed run computes those steps again exactly
    (seeds and the saved data position decide everything), writing the same values anew. Cutting
    them keeps exactly one record per step for every reader (the report, pandas, jq) with no
    reader changed; TensorBoard, seeing the step go back in the new events file, discards the
    orphaned events past it (its default purge_orphaned_data). A torn last line (a killed run)
    goes too. One warning names what was dropped.
    """
    if not self.enabled:
      return 0
    path = run_dir.path(self.model_dir, run_dir.METRICS_LOG)
    if not paths.exists(path):
      return 0
    kept, dropped = [], 0
    for line in paths.read_text(path).splitlines():
      try:
        record = json.loads(line)
        keep = int(record.get("step", 0)) <= step
      except (ValueError, TypeError, AttributeError):
        keep = False
      if keep:
        kept.append(line)
      else:
        dropped += 1
    if dropped:
      paths.write_atomic(path, "".join(l + "\n" for l in kept))
      logging.warning("Resuming at step %d: dropped %d record(s) past it from %s (they are "
                      "written again as the run repeats those steps).", step, dropped, path)
    return dropped

  def write_text(self, tag: str, text: str, step: int = 0) -> None:
    """Records text (e.g. the operative gin config) in the training TensorBoard run."""
    if self.enabled:
      writer = self._writer("train", None)
      with writer.as_default():  # Markdown: two spaces keep the line breaks
        tf.summary.write(tag, tf.constant(text.replace("\n", "  \n")), step=int(step),
                         metadata=_TEXT_METADATA)
      writer.flush()

  def close(self) -> None:
    for writer in self._writers.values():
      writer.close()
    self._writers.clear()
