"""Statistics-only initialisation vs a plain random initialisation: time and peak host memory.

  python benchmarks/stats_init.py [--model=gin/models/t5_1_0/large.gin] [--fsdp]
      [--scheme=per_param_grouping___init_scale] [--num_partitions=2]

On 8 fake CPU devices (XLA_FLAGS is set here, before jax is imported) with a 4x2 ('data',
'model') mesh. A source checkpoint of random parameters of the same model is written to a
temporary directory first (not timed). Then, each in a fresh process so that peak RSS is its own:

* random: the trainer's random initialisation, `jit(init_params)` into the parameter shardings;
* transform: what `python -m synthetic_pretraining.stats_init` does: `build_plan` (group
  statistics of the source, read in chunks), random values for the parameters the scheme leaves
  out, and `draw_members` for the rest, all into the parameter shardings.

Memory is the growth of the process's peak RSS over its RSS after start-up (imports, devices,
gin). It is compared with one float32 copy of the parameters and with what the 8 fake devices
hold at the end ("resident"): without --fsdp, t5x's rules replicate every parameter over the
4-way 'data' axis, so the resident parameters are 4 copies; with --fsdp they are one copy, the
case the goal (<= 1.3x one copy) is about. Goals: transform time <= 1.5x random. The transform's
rows are cumulative (statistics, then the random part, then the draws), with the RSS growth at
that moment ("now").

Measured on 2 CPU cores: T5 1.0 large with --fsdp, transform 18.4 s vs random 44.4 s (0.41x),
peak 1.14x one copy (random 2.42x); T5 1.0 base without FSDP, 0.53x the time, 1.14x resident.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL_TIME, GOAL_MEMORY = 1.5, 1.3


def _rss_mib() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(model_gin: str, num_partitions: int, fsdp: bool):
  """Imports jax on 8 fake CPU devices; returns (jax, model, parameter shardings)."""
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ["JAX_PLATFORMS"] = "cpu"
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  sys.path.insert(0, ROOT)
  import jax  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils
  from synthetic_pretraining.model import models
  from synthetic_pretraining.model import partitioning  # pylint: disable=import-outside-toplevel
  import synthetic_pretraining.stats_init  # pylint: disable=import-outside-toplevel,unused-import
  jax.config.update("jax_threefry_partitionable", True)
  gin_utils.parse([model_gin], [])
  model = models.EncoderDecoderModel()
  partitioner = partitioning.PjitPartitioner(num_partitions=num_partitions, fsdp=fsdp)
  return jax, model, partitioner.param_shardings(model.logical_axes())


def phase(name: str, args) -> dict:
  """Runs one phase in this process; returns its measurements."""
  jax, model, shardings = _setup(args.model, args.num_partitions, args.fsdp)
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.stats_init import sampling, transform  # pylint: disable=import-outside-toplevel
  start_rss = _rss_mib()
  marks = {}

  def mark(label):
    marks[label] = {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib() - start_rss,
                    "rss_mib": _rss_mib() - start_rss}

  start = time.perf_counter()
  if name == "write_source":
    params = jax.jit(model.init_params, out_shardings=shardings)(jax.random.key(1))
    orbax_format.save_params(args.source, params, {"step": 0})
  elif name == "random":
    params = jax.jit(model.init_params, out_shardings=shardings)(jax.random.key(0))
    jax.block_until_ready(params)
  else:
    flat_shardings = traverse_util.flatten_dict(shardings, sep="/")
    shapes = traverse_util.flatten_dict(model.param_shapes(),
                                        sep="/")
    abstract = {p: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=flat_shardings[p])
                for p, s in shapes.items()}
    plan = transform.build_plan(args.scheme, args.source, abstract)
    mark("statistics")
    kept = sorted(p for p in abstract if p not in plan.members())
    params = jax.jit(lambda key: {p: v for p, v in traverse_util.flatten_dict(
        model.init_params(key), sep="/").items() if p in kept},
                     out_shardings={p: flat_shardings[p] for p in kept})(jax.random.key(0))
    jax.block_until_ready(params)
    mark("random_part")
    params.update(sampling.draw_members(plan, abstract, 0))
    jax.block_until_ready(params)
    mark("draws")
  seconds = time.perf_counter() - start
  leaves = jax.tree.leaves(params)
  num_values = sum(int(v.size) for v in leaves)
  resident = sum(s.data.nbytes for v in leaves for s in v.addressable_shards)
  return {"seconds": seconds, "peak_mib": _peak_mib() - start_rss, "marks": marks,
          "params_mib": num_values * 4 / 2**20, "resident_mib": resident / 2**20,
          "num_values": num_values}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="gin/models/t5_1_0/large.gin",
                      help="model gin file (e.g. gin/models/t5_1_0/base.gin for a quicker run)")
  parser.add_argument("--scheme", default="per_param_grouping___init_scale")
  parser.add_argument("--num_partitions", type=int, default=2, help="size of the 'model' axis")
  parser.add_argument("--fsdp", action="store_true", help="shard parameters over 'data' too")
  parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--source", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.phase:
    print(json.dumps(phase(args.phase, args)))
    return
  passthrough = [f"--model={args.model}", f"--scheme={args.scheme}",
                 f"--num_partitions={args.num_partitions}", *(["--fsdp"] if args.fsdp else [])]
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    source = os.path.join(tmp, "source")
    for name in ("write_source", "random", "transform"):
      out = subprocess.run([sys.executable, __file__, f"--phase={name}", f"--source={source}",
                            *passthrough], capture_output=True, text=True, check=False)
      if out.returncode:
        sys.exit(f"phase {name} failed:\n{out.stderr[-3000:]}")
      results[name] = json.loads(out.stdout.strip().splitlines()[-1])
  random, stats = results["random"], results["transform"]
  one_copy, resident = random["params_mib"], random["resident_mib"]
  print(f"model {args.model}: {random['num_values']:,} parameters ({one_copy:,.0f} MiB float32; "
        f"{resident:,.0f} MiB resident on 8 CPU devices, {8 // args.num_partitions}x"
        f"{args.num_partitions} mesh{', FSDP' if args.fsdp else ''}); scheme {args.scheme}")
  # Phase rows are cumulative from the start of the transform; "now" is the RSS growth then.
  print(f"{'':14}{'seconds':>9}{'peak MiB':>10}{'x 1 copy':>10}{'x resident':>12}"
        f"{'now MiB':>10}")
  rows = [("random", random)] + [(f"  {k}", v) for k, v in stats["marks"].items()]
  rows.insert(1, ("transform", stats))
  for name, r in rows:
    peak = r["peak_mib"]
    now = f"{r['rss_mib']:>10,.0f}" if "rss_mib" in r else ""
    print(f"{name:14}{r['seconds']:>9.1f}{peak:>10,.0f}{peak / one_copy:>10.2f}"
          f"{peak / resident:>12.2f}{now}")
  time_ratio = stats["seconds"] / random["seconds"]
  print(f"time transform / random: {time_ratio:.2f} (goal <= {GOAL_TIME}); peak transform / "
        f"random: {stats['peak_mib'] / random['peak_mib']:.2f}; peak transform / one copy: "
        f"{stats['peak_mib'] / one_copy:.2f}, / resident: {stats['peak_mib'] / resident:.2f} "
        f"(goal <= {GOAL_MEMORY})")


if __name__ == "__main__":
  main()
