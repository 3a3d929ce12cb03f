"""Statistics-only initialisation vs a plain random initialisation: time and peak host memory.

  python benchmarks/stats_init.py [--model=gin/models/t5_1_0/large.gin] [--scheme=...]

On 8 (fake) CPU devices with a 4x2 mesh. A source checkpoint of the same model is written first
(not timed). Then, each in a fresh process:

* random: the trainer's random initialisation, drawn into the parameter shardings;
* transform: what `python -m synthetic_pretraining.stats_init` does: group statistics of the
  source read sharded in chunks, random values for the parameters left out, draws for the rest.

Peak memory is the growth of the process's peak RSS after start-up (imports, devices), against
the parameters as they end up resident: with fake devices all in one process, a parameter
replicated over the mesh's data axis is held once per data-parallel replica (4x on 4x2 unless
--fsdp shards it over the data axis too). Goals: time <= 1.5x random, peak <= 1.3x the resident
parameters. XLA:CPU's threefry needs about 4x an array's size in temporaries while drawing it
(measured: 448 MiB peak for one 94 MiB normal draw on one device), which bounds both.
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


def _peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(model_gin: str, fsdp: bool = False):
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  sys.path.insert(0, ROOT)
  import jax  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils, models, partitioning  # pylint: disable=import-outside-toplevel
  import synthetic_pretraining.stats_init  # pylint: disable=import-outside-toplevel,unused-import
  jax.config.update("jax_threefry_partitionable", True)
  gin_utils.parse([model_gin], [])
  model = models.EncoderDecoderModel()
  partitioner = partitioning.PjitPartitioner(num_partitions=2, fsdp=fsdp)
  shardings = partitioner.param_shardings(model.logical_axes())
  jax.devices()
  return jax, model, shardings


def phase(name: str, model_gin: str, source: str, scheme: str, fsdp: bool) -> dict:
  """Runs one phase in this process; returns its measurements."""
  jax, model, shardings = _setup(model_gin, fsdp)
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import checkpoints  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.stats_init import sampling, transform  # pylint: disable=import-outside-toplevel
  baseline = _peak_mib()
  start = time.perf_counter()
  if name == "write_source":
    params = jax.jit(model.init_params, out_shardings=shardings)(jax.random.key(1))
    checkpoints.save_params(source, params, {"step": 0})
  elif name == "random":
    params = jax.jit(model.init_params, out_shardings=shardings)(jax.random.key(0))
    jax.block_until_ready(params)
  else:
    flat_shardings = traverse_util.flatten_dict(shardings, sep="/")
    shapes = traverse_util.flatten_dict(jax.eval_shape(model.init_params, jax.random.key(0)), sep="/")
    abstract = {p: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=flat_shardings[p])
                for p, s in shapes.items()}
    plan = transform.build_plan(scheme, source, abstract)
    kept = sorted(p for p in abstract if p not in plan.members())
    params = jax.jit(lambda key: {p: v for p, v in traverse_util.flatten_dict(
        model.init_params(key), sep="/").items() if p in kept},
                     out_shardings={p: flat_shardings[p] for p in kept})(jax.random.key(0))
    params.update(sampling.draw_members(plan, abstract, 0))
    jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  num_values = sum(int(v.size) for v in jax.tree.leaves(params))
  resident = sum(s.data.nbytes for v in jax.tree.leaves(params) for s in v.addressable_shards)
  return {"seconds": seconds, "peak_growth_mib": _peak_mib() - baseline,
          "params_mib": num_values * 4 / 2**20, "resident_mib": resident / 2**20,
          "num_values": num_values}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="gin/models/t5_1_0/large.gin")
  parser.add_argument("--scheme", default="per_param_grouping___init_scale")
  parser.add_argument("--fsdp", action="store_true", help="shard parameters over 'data' too")
  parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--source", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.phase:
    print(json.dumps(phase(args.phase, args.model, args.source, args.scheme, args.fsdp)))
    return
  with tempfile.TemporaryDirectory() as tmp:
    source = os.path.join(tmp, "source")
    results = {}
    for name in ("write_source", "random", "transform"):
      out = subprocess.run([sys.executable, __file__, f"--phase={name}", f"--model={args.model}",
                            f"--source={source}", f"--scheme={args.scheme}",
                            *(["--fsdp"] if args.fsdp else [])],
                           capture_output=True, text=True, check=True)
      results[name] = json.loads(out.stdout.strip().splitlines()[-1])
  random, stats = results["random"], results["transform"]
  resident = random["resident_mib"]
  print(f"model {args.model}: {random['num_values']:,} parameters ({random['params_mib']:,.0f} MiB "
        f"float32, {resident:,.0f} MiB resident on the 8 devices), 4x2 mesh"
        f"{' with FSDP' if args.fsdp else ''}, scheme {args.scheme}")
  print(f"{'':12}{'seconds':>10}{'peak MiB':>12}{'x resident':>12}")
  for name, r in (("random", random), ("transform", stats)):
    print(f"{name:12}{r['seconds']:>10.1f}{r['peak_growth_mib']:>12,.0f}"
          f"{r['peak_growth_mib'] / resident:>12.2f}")
  print(f"time ratio transform/random: {stats['seconds'] / random['seconds']:.2f} (goal <= 1.5); "
        f"peak transform / resident parameters: {stats['peak_growth_mib'] / resident:.2f} "
        "(goal <= 1.3)")


if __name__ == "__main__":
  main()
