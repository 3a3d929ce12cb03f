"""One-accelerator check: train-step tokens/s and MFU, decode tokens/s and compile times.

Written for one H100/H200 (any one JAX device works): about 5 minutes there, at most `--budget_s`
(default 360 s) of measuring before it skips what is left: the case under way when the budget
runs out (a compile and ten steps, under 2 minutes) still ends well inside 8 minutes.
It needs only jax, flax, optax, numpy and gin-config (our TensorFlow-free core: model/ and
training/compiled_steps.py), no install of this package and no data: batches are random tokens.

  python benchmarks/device_check.py                    # the check; writes device_check.json
  python benchmarks/device_check.py --smoke            # same code path, tiny, on the CPU:
                                                       # seconds a case (compiling), 1-3 min all
  python benchmarks/device_check.py --out=x.json --peak_tflops=989.4 --budget_s=360
  python benchmarks/device_check.py --wheels=DIR   # gin-config from DIR/gin_config-*.whl

Cases (in order, so a time-out loses the least important):
  train  T5 1.1 base, bf16 activations, 'einsum' and 'cudnn' attention, dropout 0 (T5 1.1's)
  train  T5 1.1 small, the same two
  train  T5 1.0 small in float32 with dropout 0.1 and 'einsum', as the paper ran it
  decode T5 1.1 small bf16, greedy and beam 4 ('cudnn', then 'einsum'), 114 steps, no EOS
All train cases: batch 128, lengths 512 (inputs) / 114 (targets), Adafactor, one device.
Tokens are input + target positions; FLOPs are the analytic matmul count of
benchmarks/train_throughput.py (forward x 3; attention counted in full, causal or not); MFU is
against the chip's dense bf16 peak (named in the output; --peak_tflops overrides it). 'cudnn'
needs a GPU: on other backends it runs as 'xla' (so --smoke covers the fused path on the CPU),
and the output says so. A case that fails is reported with its one-line error; the rest go on.

What the numbers are checked against: docs/scale.md, "One accelerator: the device check".
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def use_carried_wheels(argv) -> None:
  """Puts pure-Python wheels (gin-config) from --wheels=DIR on the path if they are not installed.

  A GPU machine may have jax, flax, optax and numpy but not gin-config and no network; a carried
  `gin_config-*.whl` is importable straight from the zip file.
  """
  folders = [a.split("=", 1)[1] for a in argv if a.startswith("--wheels=")]
  for folder in folders + [os.environ.get("DEVICE_CHECK_WHEELS", "")]:
    if folder and os.path.isdir(folder):
      sys.path.extend(os.path.join(folder, f) for f in sorted(os.listdir(folder))
                      if f.endswith("-py3-none-any.whl"))


try:
  import gin  # noqa: F401  pylint: disable=unused-import
except ImportError:
  use_carried_wheels(sys.argv)

from synthetic_pretraining.model import models  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import flops as flops_lib  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import network  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import optimizers  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import partitioning  # pylint: disable=wrong-import-position
from synthetic_pretraining.training import compiled_steps  # pylint: disable=wrong-import-position

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; the first
# match of a substring of `device_kind` wins.
BF16_PEAK_TFLOPS = [
    ("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4),
    ("GH200", 989.4), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0),
    ("TPU v6", 918.0), ("TPU v5p", 459.0), ("TPU v5 lite", 197.0), ("TPU v5e", 197.0),
    ("TPU v4", 275.0),
]

T5_1_1 = dict(vocab_size=32128, activations=("gelu", "linear"), logits_via_embedding=False,
              dropout_rate=0.0, dtype="bfloat16")
MODELS = {
    "t5_1_1_base": network.T5Config(emb_dim=768, num_heads=12, head_dim=64, mlp_dim=2048,
                                    num_encoder_layers=12, num_decoder_layers=12, **T5_1_1),
    "t5_1_1_small": network.T5Config(emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024,
                                     num_encoder_layers=8, num_decoder_layers=8, **T5_1_1),
    "t5_1_0_small": network.T5Config(dropout_rate=0.1, dtype="float32"),  # the paper's model
}
# --smoke: the same cases at tiny size (head_dim 16: what cuDNN would accept).
TINY = dict(emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64, num_encoder_layers=1,
            num_decoder_layers=1, vocab_size=256)
TRAIN_CASES = [("t5_1_1_base", "einsum"), ("t5_1_1_base", "cudnn"),
               ("t5_1_1_small", "einsum"), ("t5_1_1_small", "cudnn"),
               ("t5_1_0_small", "einsum")]
DECODE_CASES = [("t5_1_1_small", "cudnn", 1), ("t5_1_1_small", "cudnn", 4),
                ("t5_1_1_small", "einsum", 1), ("t5_1_1_small", "einsum", 4)]


@dataclasses.dataclass
class Sizes:
  """Batch and lengths of one check."""
  batch: int = 128
  inputs: int = 512
  targets: int = 114
  decode_batch: int = 128
  steps: int = 10


SMOKE_SIZES = Sizes(batch=4, inputs=32, targets=8, decode_batch=2, steps=2)


def peak_flops(device, override_tflops=None):
  """(dense bf16 peak FLOP/s, where it came from) for `device`."""
  if override_tflops:
    return override_tflops * 1e12, f"--peak_tflops={override_tflops}"
  for name, tflops in BF16_PEAK_TFLOPS:
    if name.lower() in device.device_kind.lower():
      return tflops * 1e12, f"{name} dense bf16 peak, {tflops} TFLOP/s (data sheet)"
  # No table entry (the CPU): the best of a measured bf16 matmul.
  n = 1024
  a = jnp.ones((n, n), jnp.bfloat16)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * n**3 / best, f"measured bf16 {n}x{n} matmul on {device.device_kind}"


def effective_attention(attention: str) -> str:
  """'cudnn' needs a GPU; elsewhere the fused path runs as 'xla'."""
  if attention == "cudnn" and jax.default_backend() != "gpu":
    return "xla"
  return attention


def config_for(name: str, attention: str, smoke: bool) -> network.T5Config:
  """The case's T5Config (tiny under --smoke), with `attention` as its implementation."""
  cfg = MODELS[name]
  if smoke:
    cfg = dataclasses.replace(cfg, **TINY)
  return dataclasses.replace(cfg, attention_implementation=effective_attention(attention))


def random_batch(cfg, batch: int, n_in: int, n_out: int):
  """Full rows of random tokens (no padding, no packing)."""
  rng = np.random.default_rng(0)
  targets = rng.integers(3, cfg.vocab_size - 1, (batch, n_out)).astype(np.int32)
  return {"encoder_input_tokens": rng.integers(3, cfg.vocab_size - 1, (batch, n_in)).astype(np.int32),
          "decoder_target_tokens": targets,
          "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
          "decoder_loss_weights": np.ones_like(targets, np.float32)}


def train_case(name, attention, sizes: Sizes, peak: float, smoke: bool) -> dict:
  """Compiles and times our train step (Adafactor, one device) for one model and attention."""
  cfg = config_for(name, attention, smoke)
  part = partitioning.PjitPartitioner(devices=jax.devices()[:1])
  opt = optimizers.adafactor(learning_rate=optimizers.create_learning_rate_scheduler(
      factors="constant", base_learning_rate=1e-3))
  trainer = compiled_steps.Trainer(models.EncoderDecoderModel(cfg, z_loss=1e-4), part, opt, 0)
  params = trainer.random_params()
  state = compiled_steps.TrainState(0, params, trainer.init_opt_state(params))
  batch = jax.device_put(random_batch(cfg, sizes.batch, sizes.inputs, sizes.targets),
                         part.batch_sharding(2))
  state, sums = trainer.train_step(state, batch)  # compiles (timed by the trainer)
  loss = float(sums["step_loss"])
  state, sums = trainer.train_step(state, batch)
  jax.block_until_ready(sums)
  start = time.perf_counter()
  for _ in range(sizes.steps):
    state, sums = trainer.train_step(state, batch)
  jax.block_until_ready((state.params, sums))
  step_s = (time.perf_counter() - start) / sizes.steps
  flops = flops_lib.train_step_flops(cfg, sizes.batch, sizes.inputs, sizes.targets)
  return {"kind": "train", "model": name, "dtype": cfg.dtype, "attention": attention,
          "ran_as": cfg.attention_implementation, "dropout": cfg.dropout_rate,
          "batch": sizes.batch, "lengths": [sizes.inputs, sizes.targets],
          "compile_s": round(trainer.compilation_seconds, 2), "step_s": step_s,
          "tokens_per_s": sizes.batch * (sizes.inputs + sizes.targets) / step_s,
          "tflops_per_s": flops / step_s / 1e12, "mfu": flops / step_s / peak,
          "first_loss": loss, "loss_finite": bool(np.isfinite(loss))}


def decode_case(name, attention, beams, sizes: Sizes, smoke: bool) -> dict:
  """Compiles and times greedy (beams=1) or beam search of `sizes.targets` steps (no EOS)."""
  cfg = config_for(name, attention, smoke)
  model = models.EncoderDecoderModel(cfg)
  params = jax.jit(model.init_params)(jax.random.key(0))
  tokens = random_batch(cfg, sizes.decode_batch, sizes.inputs, 1)["encoder_input_tokens"]
  fn = jax.jit(lambda p, t: model.predict_batch(p, {"encoder_input_tokens": t},
                                                max_decode_length=sizes.targets,
                                                num_decodes=beams, eos_id=-1))
  start = time.perf_counter()
  compiled = fn.lower(params, tokens).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(params, tokens))
  best = float("inf")
  for _ in range(2):
    start = time.perf_counter()
    jax.block_until_ready(compiled(params, tokens))
    best = min(best, time.perf_counter() - start)
  return {"kind": "decode", "model": name, "dtype": cfg.dtype, "attention": attention,
          "ran_as": cfg.attention_implementation, "beams": beams, "batch": sizes.decode_batch,
          "lengths": [sizes.inputs, sizes.targets], "compile_s": round(compile_s, 2),
          "seconds": best, "tokens_per_s": sizes.decode_batch * sizes.targets / best}


def table(results) -> str:
  """The results as a markdown table."""
  rows = ["| case | model | dtype | attention | compile s | step/decode s | tokens/s | MFU |",
          "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
  for r in results:
    case = r["kind"] if r["kind"] == "train" else ("greedy" if r.get("beams") == 1
                                                    else f"beam {r.get('beams')}")
    attention = r["attention"] + ("" if r.get("ran_as", r["attention"]) == r["attention"]
                                  else f" (as {r['ran_as']})")
    if "error" in r or "skipped" in r:
      rows.append(f"| {case} | {r['model']} | | {attention} | | | {r.get('error') or r['skipped']} | |")
      continue
    seconds = r.get("step_s", r.get("seconds"))
    mfu = f"{r['mfu']:.1%}" if "mfu" in r else ""
    rows.append(f"| {case} | {r['model']} | {r['dtype']} | {attention} | {r['compile_s']:.1f} | "
                f"{seconds:.3f} | {r['tokens_per_s']:,.0f} | {mfu} |")
  return "\n".join(rows)


def run(smoke: bool = False, budget_s: float = 360.0, peak_tflops=None, cases=None) -> dict:
  """Runs every case (or those named in `cases`, 'train:model:attention' / 'decode:...')."""
  started = time.perf_counter()
  sizes = SMOKE_SIZES if smoke else Sizes()
  device = jax.devices()[0]
  peak, peak_source = peak_flops(device, peak_tflops)
  todo = ([("train", m, a, None) for m, a in TRAIN_CASES]
          + [("decode", m, a, b) for m, a, b in DECODE_CASES])
  if cases:
    todo = [c for c in todo if ":".join(map(str, c[:3])) in cases
            or ":".join(map(str, c)) in cases]
  results = []
  for kind, name, attention, beams in todo:
    label = {"kind": kind, "model": name, "attention": attention, "beams": beams}
    if time.perf_counter() - started > budget_s:
      results.append(dict(label, skipped=f"skipped: past the {budget_s:.0f} s budget"))
      continue
    try:
      if kind == "train":
        results.append(train_case(name, attention, sizes, peak, smoke))
      else:
        results.append(decode_case(name, attention, beams, sizes, smoke))
    except Exception as e:  # pylint: disable=broad-except  (report it, measure the rest)
      results.append(dict(label, error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"))
    print(f"  {kind} {name} {attention}{'' if beams is None else f' beams={beams}'}: "
          f"{json.dumps(results[-1], default=str)[:300]}", flush=True)
  import flax  # pylint: disable=import-outside-toplevel
  return {
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "smoke": smoke, "device_kind": device.device_kind, "platform": device.platform,
      "devices": jax.device_count(), "peak_flops": peak, "peak": peak_source,
      "jax": jax.__version__, "flax": flax.__version__, "python": platform.python_version(),
      "sizes": dataclasses.asdict(sizes), "seconds": round(time.perf_counter() - started, 1),
      "results": results,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU, seconds")
  parser.add_argument("--out", default="device_check.json", help="the JSON written")
  parser.add_argument("--budget_s", type=float, default=360.0,
                      help="skip the cases left after this many seconds")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="dense bf16 peak of the chip, if its name is not in the table")
  parser.add_argument("--wheels", default=None,
                      help="a folder of pure-Python wheels (gin-config) to use if not installed")
  parser.add_argument("--cases", default=None,
                      help="comma-separated subset, e.g. train:t5_1_1_base:cudnn,decode:t5_1_1_small:einsum:4")
  args = parser.parse_args(argv)
  report = run(args.smoke, args.budget_s, args.peak_tflops,
               args.cases.split(",") if args.cases else None)
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  print(f"\n{report['device_kind']} ({report['platform']}), jax {report['jax']}, flax "
        f"{report['flax']}, {report['date']}; MFU against: {report['peak']}")
  print(f"train: batch {report['sizes']['batch']}, lengths {report['sizes']['inputs']}/"
        f"{report['sizes']['targets']}; decode: batch {report['sizes']['decode_batch']}, "
        f"{report['sizes']['targets']} steps; {report['seconds']} s in all; JSON: {args.out}")
  print(table(report["results"]))
  failed = [r for r in report["results"] if "error" in r]
  return 1 if failed and args.smoke else 0


if __name__ == "__main__":
  sys.exit(main())
