"""One process of a multi-process test: `python tests/mp_worker.py MODE` (see multiprocess.py).

MODE 'steps': connects as the binaries do, then runs steps that each end in a cross-process
collective (as a train step does), printing `step <n>`; with `--preemption` it asks
`interrupts.StopRequests.should_stop(step)` after every step and prints `stopped at <n>` when told to stop.
"""
import argparse
import sys
import time

import numpy as np

from synthetic_pretraining import cli
from synthetic_pretraining.training import distributed
from synthetic_pretraining.training import interrupts


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("mode", choices=["steps"])
  parser.add_argument("--steps", type=int, default=100000)
  parser.add_argument("--preemption", action="store_true")
  args = parser.parse_args(argv)
  distributed.initialize_from_environment()
  import jax  # pylint: disable=import-outside-toplevel
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  stops = interrupts.StopRequests()
  if args.preemption:
    stops.install()
  for step in range(1, args.steps + 1):
    total = multihost_utils.process_allgather(np.int32(step)).sum()
    assert total == step * jax.process_count()
    print(f"step {step}", flush=True)
    signal_name = stops.should_stop(step) if args.preemption else None
    if signal_name is not None:
      print(f"stopped at {step}", flush=True)
      return interrupts.EXIT_CODES[signal_name]
    time.sleep(0.05)
  return 0


if __name__ == "__main__":
  sys.exit(cli.run(main))
