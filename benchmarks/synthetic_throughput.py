"""Synthetic data throughput: examples/s per core for every task family.

Two figures per task, in the offline default vocabulary (seqio.ByteVocabulary) unless
--vocabulary says otherwise:

* generate: examples per CPU-second of the pure Python generation (seeding, sampling, target,
  train/validation rejection), best of --repeats runs;
* pipeline: examples per CPU-second of this process through the SeqIO task as the trainer reads
  it (tf.data, EOS, span corruption for the nesting language), after a warm-up batch.

Reference: a TPU v3-8 pre-training T5-small with batch 128 at ~5 steps/s consumes ~640
examples/s; the goal for the simple tasks is >= 20,000 examples/s per core.

  python benchmarks/synthetic_throughput.py [--tasks set,lime] [--examples 3000]
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
from synthetic_pretraining.synthetic import lime, simple_tasks  # pylint: disable=wrong-import-position

TPU_V3_8_EXAMPLES_PER_S = 128 * 5
GOAL_SIMPLE = 20_000
FAMILIES = ([("simple", name) for name in simple_tasks.TASKS]
            + [("lime", mode) for mode in lime.MODES]
            + [("nonsense_summary", "nonsense_summary"), ("nesting_language", "nesting_language")])


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
  lengths = {"inputs": 512, "targets": 114} if name == "nesting_language" else None
  ds = task.get_dataset(sequence_length=lengths, split="train", shuffle=True, seed=0,
                        trim_output_features=False, num_epochs=None)
  it = iter(ds)
  for _ in range(256):  # warm-up: graph tracing, validation split, first blocks
    next(it)
  start = time.process_time()
  for _ in range(examples):
    next(it)
  return examples / (time.process_time() - start)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="", help="comma-separated task ids or families")
  parser.add_argument("--examples", type=int, default=3000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--vocabulary", default="byte", help="'byte', or 't5' (needs gs:// access)")
  args = parser.parse_args(argv)
  gin.bind_parameter("default_vocabulary.name", args.vocabulary)
  wanted = set(filter(None, args.tasks.split(",")))
  rows = [(f, n) for f, n in FAMILIES if not wanted or f in wanted or n in wanted]
  print(f"{'family':17s} {'task':17s} {'generate/s':>11s} {'pipeline/s':>11s} {'x TPU v3-8':>10s}")
  low = []
  for family, name in rows:
    source = seqio.get_mixture_or_task(name).source
    gen = generate_rate(source, args.examples if family != "nonsense_summary" else
                        args.examples // 4, args.repeats)
    pipe = pipeline_rate(name, args.examples if family != "nonsense_summary" else
                         args.examples // 4)
    print(f"{family:17s} {name:17s} {gen:11,.0f} {pipe:11,.0f} {pipe / TPU_V3_8_EXAMPLES_PER_S:10.0f}",
          flush=True)
    if family == "simple" and gen < GOAL_SIMPLE:
      low.append(name)
  print(f"Per CPU-second of one process. TPU v3-8, T5-small, batch 128 at ~5 steps/s: "
        f"{TPU_V3_8_EXAMPLES_PER_S} examples/s. Goal for the simple tasks: {GOAL_SIMPLE:,}/s "
        f"generated per core" + (f"; below it here: {', '.join(low)}." if low else "; all met."))
  return 0


if __name__ == "__main__":
  sys.exit(main())
