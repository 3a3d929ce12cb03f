"""Data files on gs:// (the emulator): export_data, file tasks and their globs, the downstream
tasks' DATA_DIR, stats.json, and the report over run directories in a bucket."""
import os

import gin
import pytest
import seqio
from records import fake_run

import tasks  # noqa: F401  (registers the synthetic and downstream tasks)
from synthetic_pretraining import export_data
from synthetic_pretraining import paths
from synthetic_pretraining import report
from synthetic_pretraining.stats_init import artifact
from synthetic_pretraining.synthetic import file_source
from synthetic_pretraining.synthetic import registry

pytestmark = [pytest.mark.e2e, pytest.mark.gcs]


def test_export_to_gs_writes_the_same_file_as_to_disk(gcs, tmp_path):
  argv = ["--task=set", "--num_examples=40", "--seed=2"]
  assert export_data.main(argv + [f"--output={tmp_path / 'set.txt'}"]) == 0
  assert export_data.main(argv + [f"--output={gcs.url}/data/set/train_0.txt"]) == 0
  assert gcs.objects() == ["data/set/train_0.txt"]
  assert paths.read_text(f"{gcs.url}/data/set/train_0.txt") == (tmp_path / "set.txt").read_text()


def test_an_interrupted_export_to_gs_leaves_the_old_object(gcs, monkeypatch):
  output = f"{gcs.url}/data/set.txt"
  paths.write_atomic(output, "previous contents\n")
  calls = []

  def failing_format_line(example, features):
    calls.append(example)
    if len(calls) == 5:
      raise KeyboardInterrupt
    return file_source.format_ids(example["inputs"])

  monkeypatch.setattr(export_data.file_source, "format_line", failing_format_line)
  with pytest.raises(KeyboardInterrupt):
    export_data.export("set", "train", 20, output, progress=False)
  assert gcs.objects() == ["data/set.txt"]
  assert paths.read_text(output) == "previous contents\n"


def test_file_task_reads_a_gs_glob(gcs):
  for shard in range(2):
    assert export_data.main(["--task=set", "--num_examples=6", f"--seed={shard}",
                             f"--output={gcs.url}/data/set/train_{shard}.txt"]) == 0
  paths.write_atomic(f"{gcs.url}/data/set/notes.md", "not a shard")
  task = registry.register_file_task("set_from_gs", {"train": f"{gcs.url}/data/set/train_*.txt"},
                                     replace=True)
  try:
    assert task.source.list_shards("train") == [f"{gcs.url}/data/set/train_0.txt",
                                                f"{gcs.url}/data/set/train_1.txt"]
    read = list(task.source.get_dataset("train", shuffle=False).as_numpy_iterator())
  finally:
    seqio.TaskRegistry.remove("set_from_gs")
  lines = [file_source.format_line({k: v.tolist() for k, v in example.items()},
                                   ("inputs", "targets")) for example in read]
  expected = [line for shard in range(2)
              for line in paths.iter_lines(f"{gcs.url}/data/set/train_{shard}.txt")]
  assert lines == expected and len(lines) == 12


def test_downstream_task_reads_data_dir_on_gs(gcs):
  paths.write_atomic(f"{gcs.url}/data/finetuning_data/mtop/train.txt",
                     "play a song\t[IN:PLAY_MUSIC ]\nstop\t[IN:STOP ]\n")
  gin.bind_parameter("natural.data_dir.path", f"{gcs.url}/data")
  vocab = seqio.get_mixture_or_task("mtop").output_features["inputs"].vocabulary
  dataset = seqio.get_mixture_or_task("mtop").get_dataset(None, split="train", shuffle=False)
  got = [(vocab.decode(x["inputs"][:-1].tolist()), vocab.decode(x["targets"][:-1].tolist()))
         for x in dataset.as_numpy_iterator()]
  # A fixed permutation (evaluation subsets span the file): compare as sets.
  assert sorted(got) == [("play a song", "[IN:PLAY_MUSIC ]"), ("stop", "[IN:STOP ]")]
  with pytest.raises(FileNotFoundError, match=f"{gcs.url}/data/finetuning_data/mtop/test.txt"):
    seqio.get_mixture_or_task("mtop").source.list_shards("test")


def test_stats_json_round_trips_on_gs(gcs):
  plan = artifact.Plan(scheme="per_param_grouping___init_scale", source=f"{gcs.url}/pretrain",
                       groups=(artifact.GroupPlan(
                           name="encoder/kernel", members=("encoder/layers_0/mlp/wi/kernel",),
                           shapes=((8, 16),), count=128, mean=0.1 / 3, std=0.02, draw="normal(mean,std)"),))
  artifact.write(plan, f"{gcs.url}/init/stats.json")
  assert gcs.objects() == ["init/stats.json"]
  assert artifact.read(f"{gcs.url}/init/stats.json") == plan
  with pytest.raises(FileNotFoundError, match="does not exist"):
    artifact.read(f"{gcs.url}/init/missing.json")


def _upload(local_dir, remote_dir):
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  for name in os.listdir(local_dir):
    paths.write_atomic(paths.join(remote_dir, name),
                       paths.read_bytes(os.path.join(local_dir, name)))
  return remote_dir


def test_runs_and_output_on_gs(tmp_path, gcs, capsys):
  # Run directories (with their run.json records) and --output_dir all in a bucket (the emulator).
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  runs = [_upload(fake_run(tmp_path, name, "mtop", {5: em}, {5: 0.5}, label=name),
                  f"{gcs.url}/runs/{name}")
          for name, em in (("random", 10.0), ("natural", 30.0), ("lime", 20.0))]
  assert report.main(runs + [f"--output_dir={gcs.url}/report"]) == 0
  assert "lime" in capsys.readouterr().out
  assert gcs.objects("report/") == ["report/report.csv", "report/report.md", "report/report.png"]
  assert paths.read_bytes(f"{gcs.url}/report/report.png").startswith(b"\x89PNG")
  assert "lime" in paths.read_text(f"{gcs.url}/report/report.md")


# Trivial-rule floors, run names and learning curves ----------------------------------------------
