"""Prints a checkpoint's step and each parameter's path, shape, dtype, mean and std.

  python -m synthetic_pretraining.inspect_checkpoint runs/set/checkpoint_1000
  python -m synthetic_pretraining.inspect_checkpoint runs/set --json   # latest checkpoint

PATH is one of our checkpoints (a `checkpoint_<step>` directory, a MODEL_DIR, or a params-only
checkpoint) or a t5x checkpoint. Statistics are computed one parameter at a time, in float64.
"""
import json
import logging
import sys
from typing import Dict, Iterator, Tuple

import numpy as np

from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining import cli
from synthetic_pretraining.training import accelerators


def load(path: str) -> Tuple[int, Iterator[Tuple[str, np.ndarray]]]:
  """(step, iterator of (path, array)) of any checkpoint the resolver knows (ours or t5x's)."""
  found = resolver.resolve(path)
  source = found.source
  # Host numpy arrays: checkpoints inspected here are ones a host can hold; statistics are still
  # taken parameter by parameter.
  with resolver.reading(found.step_dir, found.kind):
    return source.step, iter(sorted(source.read_numpy().items()))


def describe(path: str) -> Dict:
  """{'step': int, 'params': [{'path', 'shape', 'dtype', 'mean', 'std'}, ...]}."""
  step, params = load(path)
  rows = []
  for name, value in params:
    as64 = value.astype(np.float64)
    rows.append({"path": name, "shape": list(value.shape), "dtype": str(value.dtype),
                 "mean": float(as64.mean()) if value.size else float("nan"),
                 "std": float(as64.std()) if value.size else float("nan")})
  return {"step": step, "params": rows}


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input, `cli.run`)."""
  accelerators.hide_gpus_from_tensorflow()  # before JAX allocates (TensorFlow: data only)
  return cli.run(_main, argv)


def _main(argv) -> int:
  parser = cli.ArgumentParser(prog="python -m synthetic_pretraining.inspect_checkpoint",
                             description=__doc__.split("\n")[0])
  parser.add_argument("path", help="checkpoint directory, MODEL_DIR or t5x checkpoint")
  parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
  args = parser.parse_args(argv)
  logging.getLogger("absl").setLevel(logging.ERROR)
  info = describe(args.path)  # user errors: one line through cli.run
  if args.json:
    json.dump(info, sys.stdout)
    print()
    return 0
  print(f"step {info['step']}  ({len(info['params'])} parameters, "
        f"{sum(int(np.prod(p['shape'])) for p in info['params']):,} values)")
  width = max((len(p["path"]) for p in info["params"]), default=10)
  for p in info["params"]:
    print(f"{p['path']:<{width}}  {str(tuple(p['shape'])):>16}  {p['dtype']:<8}  "
          f"mean {p['mean']:+.6e}  std {p['std']:.6e}")
  return 0


if __name__ == "__main__":
  try:
    sys.exit(main())  # --verbose: the traceback of a refused run
  except BrokenPipeError:  # `inspect_checkpoint DIR | head`: the reader has what it wanted
    sys.stderr.close()
    sys.exit(0)
