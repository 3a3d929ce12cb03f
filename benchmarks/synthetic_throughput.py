"""Synthetic data throughput: examples/s per core, and per host with worker processes.

Three tables, in the offline default vocabulary (seqio.ByteVocabulary) unless --vocabulary says
otherwise:

* generate: examples per CPU-second of the pure Python generation (seeding, sampling, target,
  train/validation rejection), best of --repeats runs, for every task family;
* pipeline: examples per CPU-second of this process through the SeqIO task as the trainer reads
  it (tf.data, EOS, span corruption for the nesting language), after a warm-up batch;
* workers (--workers, default 0,2,all cores): wall-clock examples/s of this host through
  `pipeline.build_dataset` (batches as the trainer gets them) with `generation_workers.count` = each
  value (0 = in this process, today's pipeline), and the ratio to the in-process figure measured in
  the same run. For the nesting language the examples are span-corrupted chunks of 568 tokens.

Reference: a TPU v3-8 pre-training T5-small with batch 128 at ~5 steps/s consumes ~640
examples/s; the goal for the simple tasks is >= 20,000 examples/s per core.

  python benchmarks/synthetic_throughput.py [--tasks set,lime] [--examples 3000]
  python benchmarks/synthetic_throughput.py --only_workers --workers=0,2,4 --tasks=nesting_language
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gin  # pylint: disable=wrong-import-position
import seqio  # pylint: disable=wrong-import-position

import synthetic_pretraining.tasks  # pylint: disable=wrong-import-position,unused-import
from synthetic_pretraining.data import pipeline  # pylint: disable=wrong-import-position
from synthetic_pretraining.synthetic import lime, simple_tasks, workers  # pylint: disable=wrong-import-position

TPU_V3_8_EXAMPLES_PER_S = 128 * 5
GOAL_SIMPLE = 20_000
GOAL_WORKER_RATIO = 4.0  # nesting language with 4 workers vs in-process (issue: 4x per host)
FAMILIES = ([("simple", name) for name in simple_tasks.TASKS]
            + [("lime", mode) for mode in lime.MODES]
            + [("nonsense_summary", "nonsense_summary"), ("nesting_language", "nesting_language")])


def _lengths(name):
  return {"inputs": 512, "targets": 114} if name == "nesting_language" else None


def generate_rate(source, examples: int, repeats: int) -> float:
  """Best examples per CPU-second of the source's own generation loop."""
  state = source.state()
  source.validation_examples()
  rng = source._rng(state)  # pylint: disable=protected-access
  best = 0.0
  for rep in range(repeats):
    start = time.process_time()
    for i in range(examples):
      source._train_example(state, rng, 0, rep * examples + i)  # pylint: disable=protected-access
    best = max(best, examples / (time.process_time() - start))
  return best


def pipeline_rate(name: str, examples: int) -> float:
  """Examples per CPU-second of this process through the SeqIO task (tf.data)."""
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(sequence_length=_lengths(name), split="train", shuffle=True, seed=0,
                        trim_output_features=False, num_epochs=None)
  it = iter(ds)
  for _ in range(256):  # warm-up: graph tracing, validation split, first blocks
    next(it)
  start = time.process_time()
  for _ in range(examples):
    next(it)
  return examples / (time.process_time() - start)


def host_rate(name: str, count: int, batches: int, batch_size: int) -> float:
  """Wall-clock examples/s of this host through pipeline.build_dataset with `count` workers."""
  with gin.unlock_config():
    gin.bind_parameter("generation_workers.count", count)
  lengths = _lengths(name) or {"inputs": 512, "targets": 512}
  cfg = pipeline.DatasetConfig(mixture_or_task_name=name, task_feature_lengths=lengths,
                           batch_size=batch_size, seed=0)
  ds = pipeline.build_dataset(cfg, seed=0, shard_info=seqio.ShardInfo(0, 1), num_epochs=None)
  it = ds.as_numpy_iterator()
  for _ in range(3):  # warm-up: workers start, graphs trace, the validation split is drawn
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  rate = batches * batch_size / (time.perf_counter() - start)
  workers.shutdown()
  return rate


def _cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def worker_table(names, counts, batches: int, batch_size: int) -> None:
  print(f"\nPer host, wall clock, {_cores()} cores available "
        f"(batches of {batch_size}, {batches} after warm-up):")
  print(f"{'task':17s} {'workers':>7s} {'examples/s':>11s} {'x in-process':>12s}")
  for name in names:
    base = None
    for count in counts:
      rate = host_rate(name, count, batches, batch_size)
      base = rate if count <= 1 and base is None else base
      ratio = f"{rate / base:12.2f}" if base else f"{'-':>12s}"
      print(f"{name:17s} {count:7d} {rate:11,.0f} {ratio}", flush=True)
  print(f"0 workers is today's in-process pipeline. Goal: nesting_language >= "
        f"{GOAL_WORKER_RATIO:.0f}x with 4 workers where 4 cores exist.")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="", help="comma-separated task ids or families")
  parser.add_argument("--examples", type=int, default=3000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--vocabulary", default="byte", help="'byte', or 't5' (needs gs:// access)")
  parser.add_argument("--workers", default="",
                      help="comma-separated worker counts for the per-host table (default "
                           "0,2,<cores>); 'none' skips it")
  parser.add_argument("--worker_tasks", default="nesting_language,set",
                      help="tasks of the per-host table")
  parser.add_argument("--batches", type=int, default=20)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--only_workers", action="store_true", help="only the per-host table")
  args = parser.parse_args(argv)
  gin.bind_parameter("named_vocabulary.name", args.vocabulary)
  wanted = set(filter(None, args.tasks.split(",")))
  if not args.only_workers:
    rows = [(f, n) for f, n in FAMILIES if not wanted or f in wanted or n in wanted]
    print(f"{'family':17s} {'task':17s} {'generate/s':>11s} {'pipeline/s':>11s} "
          f"{'x TPU v3-8':>10s}")
    low = []
    for family, name in rows:
      source = seqio.get_mixture_or_task(name).source
      n = args.examples if family != "nonsense_summary" else args.examples // 4
      gen = generate_rate(source, n, args.repeats)
      pipe = pipeline_rate(name, n)
      print(f"{family:17s} {name:17s} {gen:11,.0f} {pipe:11,.0f} "
            f"{pipe / TPU_V3_8_EXAMPLES_PER_S:10.0f}", flush=True)
      if family == "simple" and gen < GOAL_SIMPLE:
        low.append(name)
    print(f"Per CPU-second of one process. TPU v3-8, T5-small, batch 128 at ~5 steps/s: "
          f"{TPU_V3_8_EXAMPLES_PER_S} examples/s. Goal for the simple tasks: {GOAL_SIMPLE:,}/s "
          f"generated per core" + (f"; below it here: {', '.join(low)}." if low else "; all met."))
  if args.workers != "none":
    counts = ([int(c) for c in args.workers.split(",")] if args.workers
              else sorted({0, 2, _cores()}))
    worker_table(args.worker_tasks.split(","), counts, args.batches, args.batch_size)
  return 0


if __name__ == "__main__":
  sys.exit(main())
