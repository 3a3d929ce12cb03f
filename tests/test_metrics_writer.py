"""metrics_writer: t5x's event layout and metrics.jsonl, on local disk and on gs:// (emulator)."""
import json

import pytest
import tensorflow as tf

from synthetic_pretraining import paths

from synthetic_pretraining.training import metrics_writer

pytestmark = [pytest.mark.e2e, pytest.mark.gcs]


def _scalars(directory):
  """{tag: [(step, value)]} from every event file in `directory`."""
  found = {}
  for event_file in paths.glob(paths.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      for value in event.summary.value:
        found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
  return found


@pytest.fixture(params=["local", "gs"])
def model_dir(request, tmp_path):
  if request.param == "local":
    return str(tmp_path / "run")
  bucket = request.getfixturevalue("gcs")
  return f"{bucket.url}/run"


def test_events_follow_t5x_layout_and_records_append(model_dir):
  writer = metrics_writer.MetricsWriter(model_dir)
  writer.write(1, "train", {"loss": 2.5, "accuracy": 0.25}, split="train")
  writer.write(1, "eval", {"accuracy": 0.5, "note": "text stays out of TensorBoard"},
               split="validation", task="copy")
  writer.close()
  # A resumed run opens a second writer on the same directory: records are appended.
  writer = metrics_writer.MetricsWriter(model_dir)
  writer.write(2, "train", {"loss": 1.5}, split="train")
  writer.write(2, "infer", {"em": 100.0}, split="validation", task="squad")
  writer.close()

  assert _scalars(paths.join(model_dir, "train")) == {
      "loss": [(1, 2.5), (2, 1.5)], "accuracy": [(1, 0.25)]}
  assert _scalars(paths.join(model_dir, "training_eval", "copy")) == {"accuracy": [(1, 0.5)]}
  assert _scalars(paths.join(model_dir, "inference_eval", "squad")) == {"em": [(2, 100.0)]}
  records = [json.loads(line) for line in paths.iter_lines(paths.join(model_dir, "metrics.jsonl"))]
  assert [(r["step"], r["kind"], r["task"]) for r in records] == [
      (1, "train", None), (1, "eval", "copy"), (2, "train", None), (2, "infer", "squad")]
  assert records[1]["note"] == "text stays out of TensorBoard"


def test_gs_model_dir_lands_in_the_bucket(gcs):
  writer = metrics_writer.MetricsWriter(f"{gcs.url}/run")
  writer.write(3, "eval", {"accuracy": 0.75}, split="validation", task="copy")
  writer.close()
  names = gcs.objects("run/")
  assert "run/metrics.jsonl" in names
  assert any(n.startswith("run/training_eval/copy/events.out.tfevents.") for n in names), names


def test_text_goes_to_the_train_run(tmp_path):
  writer = metrics_writer.MetricsWriter(str(tmp_path))
  writer.write_text("config", "a = 1\nb = 2")
  writer.close()
  texts = [(value.tag, tf.make_ndarray(value.tensor).item().decode(), value.metadata.plugin_data.plugin_name)
           for event_file in paths.glob(str(tmp_path / "train" / "events.out.tfevents.*"))
           for event in tf.compat.v1.train.summary_iterator(event_file)
           for value in event.summary.value]
  assert texts == [("config", "a = 1  \nb = 2", "text")]


def test_resume_truncates_records_past_the_restored_step_and_warns_once(tmp_path, caplog):
  """A run killed after step 5 whose last checkpoint is step 3: records 4 and 5 (and a torn last
  line) go, so the repeated steps are recorded once."""
  model_dir = str(tmp_path / "run")
  writer = metrics_writer.MetricsWriter(model_dir)
  for step in range(1, 6):
    writer.write(step, "train", {"loss": float(step)}, split="train")
  writer.write(4, "eval", {"accuracy": 0.5}, split="validation", task="t")
  writer.close()
  log = tmp_path / "run" / "metrics.jsonl"
  with open(log, "a") as f:
    f.write('{"step": 6, "kind": "tr')  # torn by SIGKILL
  resumed = metrics_writer.MetricsWriter(model_dir)
  with caplog.at_level("WARNING"):
    assert resumed.truncate_after(3) == 4
    assert resumed.truncate_after(3) == 0  # nothing more: no second warning
  warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
  assert len(warnings) == 1 and "step 3" in warnings[0].getMessage()
  resumed.write(4, "train", {"loss": 4.0}, split="train")
  resumed.close()
  steps = [json.loads(l)["step"] for l in log.read_text().splitlines()]
  assert steps == [1, 2, 3, 4]
