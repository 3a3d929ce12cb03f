r"""Ahead-of-time compilation for a TPU slice on any machine: does this config fit, and how well?

  python -m synthetic_pretraining.precompile --topology=v4-128 \
    --gin_file=gin/models/t5_1_1/xxl.gin --gin_file=gin/runs/pretrain.gin \
    --gin.partitioning.PjitPartitioner.num_partitions=8 --output=/tmp/xxl_v4_128

libtpu (`pip install '.[tpu]'`) describes the slice's devices without a TPU being present
(`jax.experimental.topologies`); the run's own train step (`Trainer.jit_train_step`) and decode
step (`inference.jit_predict_step`) are lowered with abstract parameters, optimizer state and
batch sharded over that slice's mesh, and compiled by XLA's TPU compiler. The table gives
per-device bytes (parameters, optimizer state, arguments, outputs, temporaries, total against the
chip's HBM), FLOPs and compile time. `--topology=cpu` compiles the same path for this machine's
devices instead (how the tests exercise it without libtpu).

Exit status: 0 when every step fits, 3 (with one line on stderr) when one does not, 1 on bad input.
"""
import argparse
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
from typing import Dict, Optional, Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as np

from synthetic_pretraining import cli
from synthetic_pretraining.training import accelerators
from synthetic_pretraining import errors
from synthetic_pretraining import gin_utils
from synthetic_pretraining.training import inference
from synthetic_pretraining.model import models
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths
from synthetic_pretraining import startup
from synthetic_pretraining.training import preflight
from synthetic_pretraining.training import compiled_steps

GIB = 1024 ** 3
EXIT_DOES_NOT_FIT = 3


@dataclasses.dataclass(frozen=True)
class Chip:
  """A TPU generation as libtpu describes it: HBM per JAX device and how devices map to chips."""
  hbm_bytes: int
  megacore: bool  # one JAX device per chip spanning both TensorCores (v4, v5p)
  cores_in_name: bool  # slice names count TensorCores (v3-8 = 4 chips) rather than chips


# Public per-chip HBM (Cloud TPU system architecture pages); v3 exposes each of a chip's two
# cores (16 GiB each) as a device.
CHIPS = {
    "v3": Chip(16 * GIB, megacore=False, cores_in_name=True),
    "v4": Chip(32 * GIB, megacore=True, cores_in_name=True),
    "v5p": Chip(95 * GIB, megacore=True, cores_in_name=True),
    "v5e": Chip(16 * GIB, megacore=False, cores_in_name=False),
    "v6e": Chip(32 * GIB, megacore=False, cores_in_name=False),
}
_TWO_D = {4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
_THREE_D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
            256: "4x8x8", 512: "8x8x8"}
# Slice name (as Cloud TPU names accelerator types) -> libtpu topology name.
SLICES = {
    **{f"v3-{2 * n}": f"v3:{t}" for n, t in _TWO_D.items() if 4 <= n <= 256},
    **{f"v4-{2 * n}": f"v4:{t}" for n, t in _THREE_D.items()},
    **{f"v5p-{2 * n}": f"v5p:{t}" for n, t in _THREE_D.items()},
    **{f"v5e-{n}": f"v5e:{t}" for n, t in _TWO_D.items()},
    **{f"v6e-{n}": f"v6e:{t}" for n, t in _TWO_D.items()},
}
_TOPOLOGY_NAME = re.compile(r"^(v3|v4|v5e|v5p|v6e):\d+(x\d+){1,2}$")


class PrecompileError(errors.UsageError):
  """A topology name or the environment is not usable for AOT compilation."""


def host_memory_bytes() -> Optional[int]:
  """This host's physical memory in bytes (sysconf, else macOS's sysctl), or None where the OS
  does not say."""
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (AttributeError, ValueError, OSError):
    pass
  try:
    out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return int(out.strip())
  except (OSError, ValueError, subprocess.SubprocessError):
    return None


def topology_devices(topology: str):
  """(devices, HBM bytes per device or None) for a slice name, a libtpu topology name or 'cpu'."""
  if topology == "cpu":
    # The CPU "devices" share this host's memory: each gets its share of it.
    devices = jax.devices("cpu")
    return devices, host_memory_bytes() // len(devices) if host_memory_bytes() else None
  name = SLICES.get(topology, topology)
  if not _TOPOLOGY_NAME.match(name):
    raise PrecompileError(f"--topology={topology!r} is not a known slice (e.g. v4-128) or libtpu "
                          "topology (e.g. v4:4x4x4); see --help for the list.")
  chip = CHIPS[name.split(":")[0]]
  # No TPU is opened, so other processes compiling at the same time (tests, the table script)
  # need not wait for libtpu's single-process lock.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    import libtpu  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise PrecompileError(f"--topology={topology} needs libtpu to describe the slice: "
                          "pip install 'synthetic_pretraining[tpu]' (or --topology=cpu).") from e
  kwargs = {"chip_config_name": "megacore"} if chip.megacore else {}
  try:
    desc = topologies.get_topology_desc(topology_name=name, platform="tpu", **kwargs)
  except Exception as e:  # libtpu raises a bare RuntimeError/XlaRuntimeError
    raise PrecompileError(f"libtpu cannot describe --topology={topology} ({name}): "
                          f"{str(e).splitlines()[0]}") from e
  return list(desc.devices), chip.hbm_bytes


@gin.configurable
def precompile_inputs(model: models.EncoderDecoderModel = gin.REQUIRED,
                      batch_size: int = gin.REQUIRED,
                      task_feature_lengths: Dict[str, int] = gin.REQUIRED, pack: bool = False):
  """What precompile needs from the run's gin files (bound to MODEL, BATCH_SIZE, ... by main)."""
  return model, batch_size, task_feature_lengths, pack


# Bound after the user's gin files so that the run's macros decide the model and the batch.
_INPUT_BINDINGS = ("precompile_inputs.model = %MODEL", "precompile_inputs.batch_size = %BATCH_SIZE",
                   "precompile_inputs.task_feature_lengths = %TASK_FEATURE_LENGTHS")


def abstract_batch(batch_size: int, lengths: Dict[str, int], pack: bool, partitioner,
                   decoder_only: bool = False):
  """ShapeDtypeStructs of a batch as seqio's feature converter makes it: encoder-decoder, or
  with `decoder_only` a prefix LM's (one row of inputs + targets; `encoder_input_tokens`, the
  prefix that decoding reads, comes along)."""
  if decoder_only:
    row = lengths["inputs"] + lengths["targets"]
    features = {"decoder_input_tokens": row, "decoder_target_tokens": row,
                "decoder_loss_weights": row, "decoder_causal_attention": row}
    if pack:
      features.update({"decoder_segment_ids": row, "decoder_positions": row})
    features["encoder_input_tokens"] = lengths["inputs"]
    return {name: jax.ShapeDtypeStruct((batch_size, length), jnp.int32,
                                       sharding=partitioner.batch_sharding(2))
            for name, length in features.items()}
  features = {"encoder_input_tokens": lengths["inputs"], "decoder_input_tokens": lengths["targets"],
              "decoder_target_tokens": lengths["targets"], "decoder_loss_weights": lengths["targets"]}
  if pack:
    features.update({"encoder_segment_ids": lengths["inputs"], "encoder_positions": lengths["inputs"],
                     "decoder_segment_ids": lengths["targets"],
                     "decoder_positions": lengths["targets"]})
  return {name: jax.ShapeDtypeStruct((batch_size, length), jnp.int32,
                                     sharding=partitioner.batch_sharding(2))
          for name, length in features.items()}


def per_device_bytes(abstract_tree) -> int:
  """Bytes of the largest shard per device of a tree of sharded ShapeDtypeStructs."""
  total = 0
  for leaf in jax.tree.leaves(abstract_tree):
    shard = leaf.sharding.shard_shape(leaf.shape)
    total += int(np.prod(shard)) * jnp.dtype(leaf.dtype).itemsize
  return total


_OUT_OF_MEMORY = re.compile(r"RESOURCE_EXHAUSTED: .*?memory required for [^(]*\(([\d.]+)([KMGT])\)")
_UNITS = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


@dataclasses.dataclass
class StepReport:
  """Per-device memory (bytes) and cost of one compiled step.

  When the TPU compiler runs out of HBM it reports only the temporaries it needed: arguments,
  outputs, aliasing and code are then None, and total is parameters + optimizer state +
  temporaries (a lower bound).
  """
  step: str
  params: int
  optimizer_state: int
  arguments: Optional[int]
  outputs: Optional[int]
  aliased: Optional[int]
  temporaries: int
  generated_code: Optional[int]
  total: int
  hbm: Optional[int]
  flops: Optional[float]
  compile_seconds: float

  @property
  def fits(self) -> Optional[bool]:
    """Whether `total` is within `hbm`; None when the memory to check against is unknown."""
    return None if self.hbm is None else self.total <= self.hbm


def _report(step: str, lowered, params_bytes: int, opt_bytes: int, hbm: Optional[int]) -> StepReport:
  start = time.time()
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    # XLA's TPU compiler refuses a program whose buffers exceed HBM; it states what it needed.
    needed = _OUT_OF_MEMORY.search(str(e))
    if needed is None:
      raise
    temp = int(float(needed.group(1)) * _UNITS[needed.group(2)])
    return StepReport(step, params_bytes, opt_bytes, None, None, None, temp, None,
                      params_bytes + opt_bytes + temp, hbm, None, time.time() - start)
  seconds = time.time() - start
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  args, outs = mem.argument_size_in_bytes, mem.output_size_in_bytes
  alias, temp, code = mem.alias_size_in_bytes, mem.temp_size_in_bytes, mem.generated_code_size_in_bytes
  # Donated arguments share their buffers with the outputs they alias.
  total = args + outs - alias + temp + code
  return StepReport(step, params_bytes, opt_bytes, args, outs, alias, temp, code, total, hbm,
                    float((cost or {}).get("flops", -1.0)), seconds)


def precompile(topology: str, *, hbm_bytes: Optional[int] = None, decode: bool = True,
               seed: int = 0) -> dict:
  """Compiles the configured run's train (and decode) step for `topology`; returns the table.

  gin must already be parsed with `precompile_inputs` bound (see `main`).
  """
  devices, chip_hbm = topology_devices(topology)
  hbm = hbm_bytes if hbm_bytes is not None else chip_hbm
  model, batch_size, lengths, pack = precompile_inputs()
  partitioner = partitioning.PjitPartitioner(devices=devices)
  if batch_size % partitioner.data_parallelism:
    raise PrecompileError(f"BATCH_SIZE={batch_size} is not divisible by the data-parallel size "
                          f"{partitioner.data_parallelism} of {topology} with num_partitions="
                          f"{partitioner.num_partitions}.")
  trainer = compiled_steps.Trainer(model, partitioner,
                               optimizers.create_optimizer_and_schedule()[0], seed)
  decoder_only = isinstance(model, models.DecoderOnlyModel)
  batch = abstract_batch(batch_size, lengths, pack, partitioner, decoder_only)
  prefix = batch.pop("encoder_input_tokens") if decoder_only else batch["encoder_input_tokens"]
  params_bytes = per_device_bytes(trainer.abstract_params)
  opt_bytes = per_device_bytes(trainer.abstract_opt_state)
  step = jax.ShapeDtypeStruct((), jnp.int32, sharding=partitioner.replicated())
  key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=partitioner.replicated())
  lowered = trainer.jit_train_step(batch).lower(trainer.abstract_params, trainer.abstract_opt_state,
                                                batch, step, key)
  reports = [_report("train", lowered, params_bytes, opt_bytes, hbm)]
  if decode:
    predict = inference.jit_predict_step(model, trainer.param_shardings,
                                         partitioner.batch_sharding(2), lengths["targets"])
    lowered = predict.lower(trainer.abstract_params, prefix)
    reports.append(_report("decode", lowered, params_bytes, 0, hbm))
  cfg = model.config
  return {
      "topology": topology,
      "devices": len(devices),
      "device_kind": devices[0].device_kind,
      "mesh": dict(partitioner.mesh.shape),
      "fsdp": partitioner.fsdp,
      "batch_size": batch_size,
      "task_feature_lengths": dict(lengths),
      "remat_policy": cfg.remat_policy,
      "scan_layers": cfg.scan_layers,
      "num_params": compiled_steps.num_params(trainer.abstract_params),
      "steps": [dataclasses.asdict(r) | {"fits": r.fits} for r in reports],
  }


def format_table(result: dict) -> str:
  """The result as a fixed-width text table (MiB per device)."""
  head = (f"{result['topology']}: {result['devices']} x {result['device_kind']}, mesh "
          f"{result['mesh']}, fsdp={result['fsdp']}, remat={result['remat_policy']}, "
          f"scan={result['scan_layers']}, batch {result['batch_size']}, lengths "
          f"{result['task_feature_lengths']}, {result['num_params'] / 1e6:.1f}M parameters")
  columns = ("step", "params", "optimizer_state", "arguments", "outputs", "temporaries", "total",
             "hbm", "fits", "flops", "compile_seconds")
  lines = [head, "per device (MiB): " + "  ".join(columns)]
  for s in result["steps"]:
    cells = [s["step"]]
    for key in columns[1:8]:
      value = s[key]
      cells.append("-" if value is None else str(value) if isinstance(value, bool)
                   else f"{value / 2**20:.1f}")
    fits = "unknown" if s["fits"] is None else "yes" if s["fits"] else "NO"
    cells += [fits, "-" if s["flops"] is None else f"{s['flops']:.3e}",
              f"{s['compile_seconds']:.1f}s"]
    lines.append("  ".join(cells))
  return "\n".join(lines)


def _output_dir(output: Optional[str]) -> Optional[str]:
  if output:
    return output
  try:
    value = gin.query_parameter("%MODEL_DIR")
  except ValueError:
    return None
  return value if isinstance(value, str) else None


def _epilog() -> str:
  by_generation = {}
  for name in SLICES:
    by_generation.setdefault(name.split("-")[0], []).append(name.split("-")[1])
  lines = [f"  {g}-{{{','.join(sizes)}}}" for g, sizes in by_generation.items()]
  return ("supported --topology values: 'cpu', slice names\n" + "\n".join(lines) +
          "\nor libtpu topology names such as v4:4x4x4, v5e:16x16 (v3/v4/v5e/v5p/v6e).")


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Parses flags and gin, compiles, prints and writes the table; returns the exit status (1 with
  a one-line error for bad input, `cli.run`)."""
  accelerators.hide_gpus_from_tensorflow()  # before JAX allocates (TensorFlow: data only)
  return cli.run(_main, argv)


def _main(argv: Sequence[str]) -> int:
  startup.configure_logging(logging.WARNING)
  gin_files, bindings, rest = gin_utils.split_gin_args(argv)
  parser = cli.ArgumentParser(
      prog="python -m synthetic_pretraining.precompile", description=__doc__.split("\n\n")[0],
      epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--topology", required=True, help="slice or topology name (see below)")
  parser.add_argument("--output", help="directory for precompile_<topology>.{txt,json} "
                      "(default: MODEL_DIR when the gin files set it)")
  parser.add_argument("--hbm_gib", type=float, help="memory per device to check against "
                      "(default: the chip's HBM; for cpu this host's memory divided among its "
                      "devices)")
  parser.add_argument("--no_decode", action="store_true", help="compile only the train step")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace precompile_<topology>.{txt,json} of an earlier run")
  args = parser.parse_args(rest)
  if not gin_files:
    parser.error("give the run's gin files, e.g. --gin_file=gin/models/t5_1_0/small.gin "
                 "--gin_file=gin/runs/pretrain.gin")
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  train.import_optional_modules()
  gin.clear_config()
  # Macros only the training loop reads (MODEL_DIR, TRAIN_STEPS, the task) may stay unset.
  given = {b.split("=", 1)[0].strip() for b in bindings}
  unset = [f"{m} = None" for m in gin_utils.required_macros(gin_files) if m not in given]
  gin_utils.parse(gin_files, list(bindings) + unset + list(_INPUT_BINDINGS))
  hbm = None if args.hbm_gib is None else int(args.hbm_gib * GIB)
  out_dir = _output_dir(args.output)
  stem = None
  if out_dir:  # checked before compiling: a refused run writes nothing and wastes no time
    preflight.check_writable(out_dir, "--output")
    stem = paths.join(out_dir, f"precompile_{args.topology.replace(':', '_')}")
    existing = [stem + s for s in (".txt", ".json") if paths.exists(stem + s)]
    if existing and not args.overwrite:
      raise errors.UsageError(f"{existing[0]} exists (an earlier precompile); pass --overwrite to "
                              "replace it, or another --output.")
  result = precompile(args.topology, hbm_bytes=hbm, decode=not args.no_decode)
  table = format_table(result)
  print(table)
  if stem:
    paths.makedirs(out_dir)
    paths.write_atomic(stem + ".txt", table + "\n")
    paths.write_atomic(stem + ".json", json.dumps(result, indent=1) + "\n")
  too_big = [s for s in result["steps"] if s["fits"] is False]
  if too_big:
    s = too_big[0]
    print(f"error: the {s['step']} step needs {s['total'] / GIB:.2f} GiB per device on "
          f"{args.topology}, more than its {s['hbm'] / GIB:.2f} GiB (try remat, scan, fsdp or "
          "more model partitions)", file=sys.stderr)
    return EXIT_DOES_NOT_FIT
  return 0


if __name__ == "__main__":
  sys.exit(main())
