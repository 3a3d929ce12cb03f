"""The input pipeline: worker processes keep the stream, the global batch does not depend on the
number of processes, device prefetching keeps the saved position exact and measures input waits.

Golden digests were computed with the pipeline as it was before worker processes and process
layouts existed (commit f3c4406), so "the same stream as before" is checked, not assumed.
"""
import hashlib
import threading
import time

import gin
import jax
import numpy as np
import pytest
import seqio

import synthetic_pretraining.tasks  # noqa: F401  (registers the paper's tasks)
import toy_tasks
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.data import prefetch
from synthetic_pretraining.synthetic import workers

pytestmark = pytest.mark.unit

LENGTHS = {"inputs": 64, "targets": 64}
# sha256 (first 16 hex digits) of the first batches of pipeline.build_dataset at f3c4406.
GOLDEN = {("reverse", None, False, 4): "23a4af44d811f18a",
          ("reverse", 20, False, 6): "f586e721028183be",
          ("reverse", 24, False, 8): "76ea48a00486b59e",
          ("lime", None, False, 3): "2ec00064559a0831",
          ("set", None, True, 3): "495794c36a5a2f80"}


def _bind(train_size=None, workers_count=0):
  gin.bind_parameter("split_sizes.validation", 50)
  gin.bind_parameter("split_sizes.train", train_size)
  gin.bind_parameter("generation_workers.count", workers_count)


def _dataset(task, *, process=0, processes=1, batch_size=8, pack=False, split="train"):
  cfg = pipeline.DatasetConfig(mixture_or_task_name=task, task_feature_lengths=LENGTHS,
                           batch_size=batch_size, seed=7, pack=pack, split=split)
  return pipeline.build_dataset(cfg, seed=1, shard_info=seqio.ShardInfo(process, processes),
                            num_epochs=None if split == "train" else 1,
                            drop_remainder=split == "train")


def _batches(ds, n):
  return [b for _, b in zip(range(n), ds.as_numpy_iterator())]


def _digest(batches):
  h = hashlib.sha256()
  for b in batches:
    for k in sorted(b):
      h.update(k.encode())
      h.update(np.ascontiguousarray(b[k]).tobytes())
  return h.hexdigest()[:16]


def _equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("task,train_size,pack,n", sorted(GOLDEN, key=str))
def test_one_process_stream_is_the_stream_before_these_changes(task, train_size, pack, n):
  _bind(train_size)
  assert _digest(_batches(_dataset(task, pack=pack), n)) == GOLDEN[(task, train_size, pack, n)]


@pytest.mark.e2e  # over 15 s: not in make test-fast
def test_worker_processes_give_the_same_stream_and_resume_exactly(tmp_path):
  _bind(workers_count=0)
  alone = _batches(_dataset("reverse"), 8)
  assert _digest(alone[:4]) == GOLDEN[("reverse", None, False, 4)]
  gin.clear_config()
  _bind(workers_count=2)
  try:
    assert workers.generation_workers() == 2
    iterator = pipeline.CheckpointableIterator(_dataset("reverse"))
    first = [next(iterator) for _ in range(4)]
    iterator.save(str(tmp_path / "it" / "ckpt"))
    rest = [next(iterator) for _ in range(4)]
    _equal(first + rest, alone)
    resumed = pipeline.CheckpointableIterator(_dataset("reverse"))
    resumed.restore(str(tmp_path / "it" / "ckpt"))
    _equal([next(resumed) for _ in range(4)], alone[4:])
  finally:
    workers.shutdown()


def test_generation_workers_knob():
  gin.bind_parameter("generation_workers.count", 0)
  assert workers.generation_workers() == 0
  gin.clear_config()
  assert workers.generation_workers() >= 0  # auto: cores, or in-process on small machines
  with pytest.raises(ValueError, match="generation_workers"):
    workers.generation_workers(count=-1)


@pytest.mark.parametrize("task,train_size,pack,layout", [
    ("reverse", None, False, "rows"),
    ("reverse", 24, False, "rows"),      # a finite split of whole global batches: rows
    ("reverse", 20, False, "global"),    # epochs would cut global batches: whole stream
    ("set", None, True, "global"),       # packing joins examples
    ("lime", None, False, "global"),     # a mixture samples its tasks
])
def test_two_processes_read_the_rows_of_the_one_process_global_batch(task, train_size, pack,
                                                                     layout):
  _bind(train_size)
  cfg = pipeline.DatasetConfig(mixture_or_task_name=task, task_feature_lengths=LENGTHS,
                           batch_size=8, split="train", pack=pack)
  assert pipeline.process_layout(seqio.get_mixture_or_task(task), cfg) == layout
  steps = 5
  whole = _batches(_dataset(task, pack=pack), steps)
  halves = [_batches(_dataset(task, process=p, processes=2, pack=pack), steps) for p in (0, 1)]
  for step in range(steps):
    assert next(iter(halves[0][step].values())).shape[0] == 4
    union = {k: np.concatenate([halves[0][step][k], halves[1][step][k]]) for k in whole[step]}
    _equal([union], [whole[step]])


def test_validation_rows_cover_the_split_once_across_processes():
  _bind()
  whole = np.concatenate([b["decoder_target_tokens"] for b in
                          _dataset("reverse", split="validation").as_numpy_iterator()])
  parts = [[b["decoder_target_tokens"] for b in
            _dataset("reverse", process=p, processes=2, split="validation").as_numpy_iterator()]
           for p in (0, 1)]
  assert len(whole) == 50
  # Global batch s is rows s*8..s*8+7; process p holds rows p*4..p*4+3 of each.
  rebuilt = np.concatenate([np.concatenate([parts[p][s] for p in (0, 1) if s < len(parts[p])])
                            for s in range(len(parts[0]))])
  np.testing.assert_array_equal(rebuilt, whole)


def test_file_tasks_keep_per_process_shards():
  toy_tasks.register()
  cfg = pipeline.DatasetConfig(mixture_or_task_name=toy_tasks.TOY_TASK, task_feature_lengths=LENGTHS,
                           batch_size=8)
  assert pipeline.process_layout(seqio.get_mixture_or_task(toy_tasks.TOY_TASK), cfg) == "shards"


class _ListIterator:
  """A host iterator over numbered batches with save/restore, and an optional delay per batch."""

  def __init__(self, delay=0.0):
    self.position, self.delay = 0, delay

  def __iter__(self):
    return self

  def __next__(self):
    time.sleep(self.delay)
    self.position += 1
    return {"x": np.full((2, 3), self.position, np.int32)}

  def save(self, prefix):
    with open(prefix + ".pos", "w") as f:
      f.write(str(self.position))

  def restore(self, prefix):
    with open(prefix + ".pos") as f:
      self.position = int(f.read())


def _values(prefetcher, n):
  return [int(np.asarray(next(prefetcher)["x"])[0, 0]) for _ in range(n)]


def test_prefetcher_hands_out_device_batches_in_order_and_saves_its_position_exactly(tmp_path):
  to_device = lambda batch: jax.device_put(dict(batch))
  fetcher = prefetch.DevicePrefetcher(_ListIterator(), to_device, buffer_size=3)
  assert _values(fetcher, 4) == [1, 2, 3, 4]
  assert isinstance(next(fetcher)["x"], jax.Array)
  deadline = time.time() + 30
  while fetcher._iterator.position < 8 and time.time() < deadline:  # pylint: disable=protected-access
    time.sleep(0.01)
  assert fetcher._iterator.position > 5, "the thread reads ahead"  # pylint: disable=protected-access
  prefix = str(tmp_path / "iterator")
  fetcher.save(prefix)  # after 5 batches handed out, with more read ahead
  fetcher.close()
  resumed = prefetch.DevicePrefetcher(_ListIterator(), to_device)
  resumed.restore(prefix)
  assert _values(resumed, 6) == [6, 7, 8, 9, 10, 11]
  # Saved again right after a restore, before the thread has taken the restored batches.
  again = prefetch.DevicePrefetcher(_ListIterator(), to_device)
  again.restore(prefix)
  again.save(prefix + "2")
  third = prefetch.DevicePrefetcher(_ListIterator(), to_device)
  third.restore(prefix + "2")
  assert _values(third, 3) == [6, 7, 8]
  for f in (resumed, third):
    f.close()


def test_prefetcher_ends_and_passes_errors_on():
  fetcher = prefetch.DevicePrefetcher(iter([{"x": np.ones(1)}]), lambda b: b)
  next(fetcher)
  with pytest.raises(StopIteration):
    next(fetcher)

  def broken():
    yield {"x": np.ones(1)}
    raise ValueError("bad line 3")
  fetcher = prefetch.DevicePrefetcher(broken(), lambda b: b)
  next(fetcher)
  with pytest.raises(ValueError, match="bad line 3"):
    next(fetcher)


def test_input_wait_fraction_tells_input_bound_from_step_bound():
  # Delays well above scheduling noise on a busy machine.
  slow_input = prefetch.DevicePrefetcher(_ListIterator(delay=0.4), lambda b: b)
  slow_input.metrics()
  _values(slow_input, 4)
  bound = slow_input.metrics()
  assert bound["timing/input_wait_fraction"] > 0.5, bound
  assert bound["timing/input_wait_seconds"] > 0.8, bound
  slow_input.close()

  fast_input = prefetch.DevicePrefetcher(_ListIterator(), lambda b: b)
  next(fast_input)
  fast_input.metrics()
  for _ in range(4):
    time.sleep(0.4)  # the "step"
    next(fast_input)
  free = fast_input.metrics()
  assert free["timing/input_wait_fraction"] < 0.3, free
  fast_input.close()
  assert not [t for t in threading.enumerate() if t.name == "device-prefetch"]
