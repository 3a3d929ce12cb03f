r"""Writes a synthetic task's examples in the authors' file format.

  python -m synthetic_pretraining.export_data --task=set --split=train --num_examples=1000 \
    --output=set.txt [--seed=0] [--gin_file=gin/runs/cpu_demo.gin] [--gin.NAME=VALUE ...]

One example per line: `[input ids]<TAB>[target ids]` (simple tasks, LIME), `[ids]` (the nesting
language, before span corruption), `document<TAB>summary` (nonsense summary). Inputs are unique
within a file (a repeated input is skipped and the next index drawn), and train files never hold
a validation input, so a train file and a validation file are disjoint. The ids are those of the
gin-configured vocabulary (`--gin.vocabularies.default_vocabulary.name="'t5'"` gives the authors'
ids). The file is written to OUTPUT.partial and renamed when complete. `register_file_task` (or
`AuthorsFileSource`) reads such files back as a SeqIO task.
"""
import argparse
import os
import sys
from typing import Iterator, List, Mapping

import gin
import tqdm

from synthetic_pretraining import data
from synthetic_pretraining import gin_utils
from synthetic_pretraining.synthetic import file_source
from synthetic_pretraining.synthetic.sources import SyntheticSource

MAX_DRAWS_PER_EXAMPLE = 100  # a task whose inputs repeat this much cannot fill the file


def synthetic_sources(name: str, module: str = "tasks") -> List[SyntheticSource]:
  """The generated sources of a task, or of each task of a mixture (e.g. lime)."""
  task_or_mixture = data.get_mixture_or_task(name, module)
  tasks = getattr(task_or_mixture, "tasks", [task_or_mixture])
  sources = [t.source for t in tasks]
  for task, source in zip(tasks, sources):
    if not isinstance(source, SyntheticSource):
      raise ValueError(f"Task {task.name!r} is not generated on the fly (its source is "
                       f"{type(source).__name__}); only synthetic tasks can be exported.")
  return sources


def examples(sources: List[SyntheticSource], split: str, seed: int) -> Iterator[Mapping]:
  """Examples of `split`, taking the tasks of a mixture in turn (equal rates, as lime's)."""
  if split == "validation":
    pools = [s.validation_examples() for s in sources]
    for i in range(max(len(p) for p in pools)):
      for pool in pools:
        if i < len(pool):
          yield pool[i]
    return
  index = 0
  while True:
    for source in sources:
      yield source.example(split, index, seed)
    index += 1


def export(name: str, split: str, num_examples: int, output: str, seed: int = 0,
           module: str = "tasks", progress: bool = True) -> int:
  """Writes `num_examples` distinct-input examples to `output`; returns the number written."""
  if split not in ("train", "validation"):
    raise ValueError(f"--split must be 'train' or 'validation', got {split!r}.")
  if num_examples < 1:
    raise ValueError(f"--num_examples must be at least 1, got {num_examples}.")
  sources = synthetic_sources(name, module)
  features = sources[0].features
  seen, written, draws = set(), 0, 0
  partial = output + ".partial"
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(partial, "w") as f, tqdm.tqdm(total=num_examples, unit="ex", disable=not progress,
                                          desc=f"{name}/{split}") as bar:
    for example in examples(sources, split, seed):
      draws += 1
      if draws > MAX_DRAWS_PER_EXAMPLE * num_examples:
        break
      key = sources[0].membership_key(example)
      if key in seen:
        continue
      seen.add(key)
      f.write(file_source.format_line(example, features) + "\n")
      written += 1
      bar.update(1)
      if written == num_examples:
        break
  if written < num_examples:
    os.remove(partial)
    hint = (" (raise split_sizes.validation)" if split == "validation" else
            " (its input space is too small)")
    raise ValueError(f"Task {name!r} gave only {written} distinct inputs for split {split!r}, "
                     f"not {num_examples}{hint}.")
  os.replace(partial, output)
  return written


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input)."""
  gin_files, bindings, rest = gin_utils.split_gin_args(sys.argv[1:] if argv is None else argv)
  p = argparse.ArgumentParser(prog="python -m synthetic_pretraining.export_data",
                              description=__doc__.split("\n")[0])
  p.add_argument("--task", required=True, help="a synthetic task or mixture id, e.g. set, lime")
  p.add_argument("--split", default="train", choices=("train", "validation"))
  p.add_argument("--num_examples", type=int, required=True)
  p.add_argument("--output", required=True, help="the file to write")
  p.add_argument("--seed", type=int, default=0, help="the train stream's seed")
  p.add_argument("--module", default="tasks", help="the module registering the task")
  args = p.parse_args(rest)
  try:
    if gin_files or bindings:
      gin.clear_config()  # a fresh configuration per call, also when called in-process
      gin_utils.parse(gin_files, bindings)
    written = export(args.task, args.split, args.num_examples, args.output, args.seed,
                     args.module, progress=sys.stderr.isatty())
  except (ValueError, gin_utils.GinConfigError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"Wrote {written} examples of {args.task}/{args.split} to {args.output}.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
