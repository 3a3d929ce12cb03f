r"""Writes a synthetic task's examples in the authors' file format.

Usage:

  python -m synthetic_pretraining.export_data --task=set --split=train --num_examples=1000 \
    --output=set.txt [--seed=0] [--module=tasks] \
    [--gin_file=gin/runs/cpu_demo.gin] [--gin.NAME=VALUE ...]

  python -m synthetic_pretraining.export_data --task=lime --split=validation \
    --num_examples=3000 --output=lime_valid.txt

One example per line: `[input ids]<TAB>[target ids]` (simple tasks, LIME), `[ids]` (the nesting
language, before span corruption), `document<TAB>summary` (nonsense summary). A mixture such as
`lime` interleaves its tasks in proportion to their rates (lime: induct, deduct, abduct in turn).

* Inputs are unique within a file: a repeated input is skipped and the next index drawn.
* A train file never holds a validation input (the source rejects such draws), so a train file
  and a validation file of the same task are disjoint.
* `--seed` chooses the train stream; the validation split is fixed whatever the seed. Line k of a
  train file is the k-th distinct input of example indices 0, 1, 2, ...: the same command always
  writes the same file.
* The ids are those of the configured vocabulary (the gin macro VOCABULARY, else
  `vocabularies.named_vocabulary()`: `--gin.vocabularies.named_vocabulary.name="'t5'"` gives the
  authors' ids); gin knobs such as `--gin.length_range.max_length=40` or
  `--gin.split_sizes.validation=2000` apply as in training.
* OUTPUT may be local or gs://. It is written to a temporary file (next to OUTPUT, or a local
  scratch file for gs://) and renamed or uploaded when complete, so OUTPUT is either the whole
  file or untouched.

`synthetic.register_file_task` (or `synthetic.AuthorsFileSource`) reads such files back as a SeqIO
task. Bad input (an unknown task, a bad split, a task that cannot give that many distinct inputs)
ends with a one-line `error: ...` on stderr and exit status 1.
"""
import sys
from typing import Iterator, List, Mapping, Sequence

import gin
import tqdm

from synthetic_pretraining import cli
from synthetic_pretraining.training import accelerators
from synthetic_pretraining import errors
from synthetic_pretraining.data import pipeline
from synthetic_pretraining import gin_utils
from synthetic_pretraining import paths
from synthetic_pretraining.synthetic import file_source
from synthetic_pretraining.synthetic.sources import SyntheticSource
from synthetic_pretraining.training import preflight

SPLITS = ("train", "validation")
MAX_DRAWS_PER_EXAMPLE = 100  # a task whose inputs repeat this much cannot fill the file


def synthetic_sources(name: str, module: str = pipeline.TASKS_MODULE):
  """The generated sources of a task, or of each task of a mixture (e.g. lime), and their rates.

  Raises:
    pipeline.UnknownTaskError: no such task or mixture (with close names).
    errors.UsageError: a task that is not generated on the fly (e.g. a downstream task).
  """
  task_or_mixture = pipeline.get_mixture_or_task(name, module)
  tasks = getattr(task_or_mixture, "tasks", None)
  if tasks is None:
    tasks, rates = [task_or_mixture], [1.0]
  else:
    rates = [task_or_mixture.get_rate(t) for t in tasks]
  for task in tasks:
    if not isinstance(task.source, SyntheticSource):
      raise errors.UsageError(f"Task {task.name!r} is not generated on the fly (its source is "
                       f"{type(task.source).__name__}); export_data writes synthetic tasks only.")
  features = {t.source.features for t in tasks}
  if len(features) > 1:
    raise errors.UsageError(f"The tasks of {name!r} have different features {sorted(features)}; "
                     "export them one task at a time.")
  return [t.source for t in tasks], rates


def _turns(rates: Sequence[float]) -> Iterator[int]:
  """Which source goes next: smooth weighted round-robin, so every prefix follows the rates."""
  total = float(sum(rates))
  credit = [0.0] * len(rates)
  while True:
    credit = [c + r for c, r in zip(credit, rates)]
    best = max(range(len(rates)), key=credit.__getitem__)
    credit[best] -= total
    yield best


def examples(sources: List[SyntheticSource], split: str, seed: int,
             rates: Sequence[float] = None) -> Iterator[Mapping]:
  """Examples of `split` in index order, the sources of a mixture interleaved by their rates."""
  rates = rates or [1.0] * len(sources)
  next_index = [0] * len(sources)
  for i in _turns(rates):
    source, index = sources[i], next_index[i]
    next_index[i] += 1
    if split == "validation":
      pool = source.validation_examples()
      if index < len(pool):
        yield pool[index]
      elif all(n > len(s.validation_examples()) for n, s in zip(next_index, sources)):
        return  # every validation split is exhausted
    else:
      yield source.example(split, index, seed)


def export(name: str, split: str, num_examples: int, output: str, seed: int = 0,
           module: str = pipeline.TASKS_MODULE, progress: bool = True) -> int:
  """Writes `num_examples` examples with distinct inputs to `output`; returns the number written.

  Raises:
    errors.UsageError (pipeline.UnknownTaskError included): bad arguments, or too few distinct inputs.
    RuntimeError: the generator failed (e.g. a length range the task cannot fit).
  """
  if split not in SPLITS:
    raise errors.UsageError(f"--split must be 'train' or 'validation', got {split!r}.")
  if num_examples < 1:
    raise errors.UsageError(f"--num_examples must be at least 1, got {num_examples}.")
  sources, rates = synthetic_sources(name, module)
  features, key = sources[0].features, sources[0].membership_key
  seen, written, draws = set(), 0, 0
  # KeyboardInterrupt included, an error leaves OUTPUT untouched and no temporary file behind.
  with paths.atomic_writer(output, "w") as f, tqdm.tqdm(
      total=num_examples, unit="ex", disable=not progress, desc=f"{name}/{split}") as bar:
    for example in examples(sources, split, seed, rates):
      draws += 1
      if draws > MAX_DRAWS_PER_EXAMPLE * num_examples:
        break
      k = key(example)
      if k in seen:
        continue
      seen.add(k)
      f.write(file_source.format_line(example, features) + "\n")
      written += 1
      bar.update(1)
      if written == num_examples:
        break
    if written < num_examples:
      hint = (" (raise --gin.split_sizes.validation)" if split == "validation" else
              " (its input space is too small)")
      raise errors.UsageError(f"Task {name!r} gave only {written} distinct inputs for split {split!r}, "
                       f"not {num_examples}{hint}.")
  return written


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input, `cli.run`)."""
  accelerators.hide_gpus_from_tensorflow()  # before JAX allocates (TensorFlow: data only)
  return cli.run(_main, argv)


def _main(argv) -> int:
  gin_files, bindings, rest = gin_utils.split_gin_args(argv)
  p = cli.ArgumentParser(prog="python -m synthetic_pretraining.export_data",
                         description=__doc__.split("\n")[0])
  p.add_argument("--task", required=True, help="a synthetic task or mixture id, e.g. set, lime")
  # No argparse `choices`: a bad split gets the same one-line error as every other bad input.
  p.add_argument("--split", default="train", help="'train' or 'validation'")
  p.add_argument("--num_examples", type=int, required=True)
  p.add_argument("--output", required=True, help="the file to write")
  p.add_argument("--seed", type=int, default=0, help="the train stream's seed")
  p.add_argument("--module", default=pipeline.TASKS_MODULE, help="the module registering the task")
  args = p.parse_args(rest)
  if gin_files or bindings:
    gin.clear_config()  # a fresh configuration per call, also when called in-process
    gin_utils.parse(gin_files, bindings)
  output_dir = args.output.rsplit("/", 1)[0] if "/" in args.output else "."
  preflight.check_writable(output_dir, "--output")  # before any example is generated
  try:
    written = export(args.task, args.split, args.num_examples, args.output, args.seed,
                     args.module, progress=sys.stderr.isatty())
  except ImportError as e:
    raise errors.UsageError(f"cannot import --module={args.module}: {e}") from e
  except (ValueError, RuntimeError) as e:
    # The generators check their gin settings (lengths, sizes) as they draw: in this binary,
    # which only runs generators on the user's settings, that is bad input.
    if isinstance(e, errors.UsageError):
      raise
    raise errors.UsageError(errors.one_line(e)) from e
  print(f"Wrote {written} examples of {args.task}/{args.split} to {args.output}.")
  return 0


if __name__ == "__main__":
  sys.exit(main())  # --verbose: the traceback of a refused run
