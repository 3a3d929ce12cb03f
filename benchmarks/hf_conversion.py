"""Conversion time and peak memory of T5 1.0 small (60M parameters) to and from transformers.

  PYTHONPATH=. python benchmarks/hf_conversion.py [--workdir=/tmp/hf_bench]

Prints one JSON line per measurement:
  read:   a transformers directory (config.json + model.safetensors, made here by transformers
          from a random T5 1.0 small) -> our parameters, sharded into the mesh (resolver.read_params)
  write:  our params-only checkpoint -> a transformers directory (export_hf.export)
  parity: max |logit difference| between transformers' model and ours on one batch (float32)
Each conversion runs in a fresh process, so its peak RSS (`ru_maxrss`) is its own; `rss_after_imports`
is the same process's RSS before converting (jax, flax, tensorflow imported), and
`peak_minus_imports` what the conversion itself added. Needs torch and transformers (the `test`
extras) only to make the source model and for the parity line.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_GIN = "gin/models/t5_1_0/small.gin"
BINDINGS = ["network.T5Config.dtype = 'float32'", "vocabularies.named_vocabulary.name = 'cpu_sp'"]


def _rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _model():
  import gin  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.model import models  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  gin_utils.parse([MODEL_GIN], BINDINGS)
  return models.EncoderDecoderModel()


def phase_read(hf_dir: str) -> dict:
  """Times reading the transformers directory into sharded parameters (this process)."""
  import jax  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import resolver  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.model import partitioning  # pylint: disable=import-outside-toplevel
  model = _model()
  abstract = partitioning.abstract_params(model, partitioning.PjitPartitioner())
  before = _current_rss_mib()
  start = time.perf_counter()
  params, _ = resolver.read_params(hf_dir, abstract)
  jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  count = sum(int(x.size) for x in jax.tree.leaves(params))
  return {"what": "read transformers -> ours", "seconds": round(seconds, 2),
          "params": count, "rss_after_imports_mib": round(before, 1),
          "peak_rss_mib": round(_rss_mib(), 1),
          "peak_minus_imports_mib": round(_rss_mib() - before, 1)}


def phase_write(checkpoint: str, out: str) -> dict:
  """Times export_hf.export of our checkpoint (this process)."""
  from synthetic_pretraining import export_hf  # pylint: disable=import-outside-toplevel
  _model()  # imports and gin as the export does, outside the timing
  before = _current_rss_mib()
  start = time.perf_counter()
  export_hf.export(checkpoint, out, [MODEL_GIN], BINDINGS)
  seconds = time.perf_counter() - start
  size = os.path.getsize(os.path.join(out, "model.safetensors"))
  return {"what": "write ours -> transformers (export_hf)", "seconds": round(seconds, 2),
          "safetensors_mib": round(size / 2**20, 1), "rss_after_imports_mib": round(before, 1),
          "peak_rss_mib": round(_rss_mib(), 1),
          "peak_minus_imports_mib": round(_rss_mib() - before, 1)}


def phase_parity(hf_dir: str) -> dict:
  """Max |logit difference| of transformers' model and ours (read from hf_dir) on one batch."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import resolver  # pylint: disable=import-outside-toplevel
  model = _model()
  params = traverse_util.unflatten_dict(resolver.resolve(hf_dir).source.read_numpy(), sep="/")
  hf = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir).eval()
  rng = np.random.RandomState(0)
  inputs = rng.randint(2, 32000, size=(4, 64)).astype(np.int32)
  decoder_inputs = rng.randint(2, 32000, size=(4, 32)).astype(np.int32)
  decoder_inputs[:, 0] = 0
  ours = np.asarray(model.module.apply({"params": params}, inputs, decoder_inputs,
                                       deterministic=True))
  with torch.no_grad():
    theirs = hf(input_ids=torch.tensor(inputs, dtype=torch.long),
                decoder_input_ids=torch.tensor(decoder_inputs, dtype=torch.long)).logits.numpy()
  return {"what": "parity T5 1.0 small (float32, batch 4x64 -> 32)",
          "max_abs_logit_difference": float(np.abs(ours - theirs).max()),
          "max_abs_logit": float(np.abs(theirs).max())}


def _run_phase(*args) -> dict:
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run([sys.executable, os.path.abspath(__file__), "--phase", *args], cwd=ROOT,
                       env=env, capture_output=True, text=True, check=False)
  if out.returncode != 0:
    raise SystemExit(f"phase {args[0]} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  """Makes the source model, then measures each direction in its own process."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="/tmp/hf_conversion_bench")
  parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.phase:
    name, *rest = args.phase
    result = {"read": phase_read, "write": phase_write, "parity": phase_parity}[name](*rest)
    print(json.dumps(result))
    return
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.rmtree(args.workdir, ignore_errors=True)
  os.makedirs(args.workdir)
  hf_dir = os.path.join(args.workdir, "t5-small-random")
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  # transformers' T5Config defaults are T5 1.0 small (t5-small's config).
  transformers.T5ForConditionalGeneration(transformers.T5Config()).save_pretrained(hf_dir)
  print(json.dumps(_run_phase("read", hf_dir)), flush=True)
  # Our checkpoint of the same weights, for the other direction.
  os.chdir(ROOT)
  sys.path.insert(0, ROOT)
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import resolver  # pylint: disable=import-outside-toplevel
  ours = os.path.join(args.workdir, "ours")
  orbax_format.save_params(ours, traverse_util.unflatten_dict(
      resolver.resolve(hf_dir).source.read_numpy(), sep="/"))
  print(json.dumps(_run_phase("write", ours, os.path.join(args.workdir, "exported"))), flush=True)
  print(json.dumps(_run_phase("parity", hf_dir)), flush=True)


if __name__ == "__main__":
  main()
