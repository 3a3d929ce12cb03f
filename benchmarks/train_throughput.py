"""Train-step throughput and model FLOPs utilisation (MFU) on this machine, now and as before.

For each model: seconds per jitted train step (Adafactor, float32, dropout 0.1 drawn from the
step's dropout rng: asserted), tokens/s, model FLOPs per step (analytic: 2 FLOPs per
multiply-add for every matmul, forward + backward = 3x forward) and MFU against a float32 matmul
peak measured in the same run (the best of the parent's and every child's measurement: on a
shared machine the peak, like the step, is only what the others leave). Tokens are input +
target positions. Every variant runs in its
own process (what it changes is set before jax starts), in alternating rounds, and the table
gives each variant's median over all its timed steps and its ratio to the first variant
(training/host_memory.py has the modes):

  glibc   glibc's default malloc, which hands XLA:CPU's per-step temporaries back to the kernel,
          so each step page-faults them in again (SYNTHETIC_PRETRAINING_HOST_MEMORY=glibc);
  pooled  freed host memory kept, resident set capped at 1.2x its settled peak (the training
          binary's default);
  retain  freed host memory kept without a cap (SYNTHETIC_PRETRAINING_HOST_MEMORY=retain).

Also printed per variant: system CPU-seconds and page faults per step, the resident memory after
the last step and the process's peak, and how often the cap handed memory back.

  python benchmarks/train_throughput.py [--models cpu,small] [--steps 3] [--rounds 2]

Measured on the project's idle 2-core machine, T5 1.0 small, batch 8, lengths 512/128,
--steps 3 --rounds 2, side by side in one run (2026-12-07, Intel Xeon with AVX-512; fp32 matmul
peak 336.9 GFLOP/s as this benchmark reads it): pooled 5.315 s per step (median; 963 tokens/s,
49.1% MFU, 18 page faults a step, peak resident 5.18 GB), retain 5.295 s (49.3%, 5.33 GB),
glibc 7.023 s (37.2%, 1.31 million page faults and 3.2 system CPU-seconds a step, peak 5.44 GB):
the default is 1.32x glibc's step at 0.95x its resident peak. On the AMD EPYC machine of
2026-12-03 (peak 211.4 GFLOP/s), before `pooled` existed: glibc 9.810 s (42.4% MFU), retain
6.846 s (60.7%), 6.1 GB resident in both.
docs/scale.md, "CPU train-step efficiency", has the profile of the step and the comparison with
t5x's.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from synthetic_pretraining.training import host_memory  # pylint: disable=wrong-import-position

VARIANTS = host_memory.MODES  # each variant is a host memory mode
if __name__ == "__main__" and "--child" in sys.argv:
  for _arg in sys.argv:  # before jax's threads exist
    if _arg.startswith("--host_memory="):
      host_memory.configure(_arg.split("=", 1)[1])

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from synthetic_pretraining.model import models  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import flops as flops_lib  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import network  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import optimizers  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import partitioning  # pylint: disable=wrong-import-position
from synthetic_pretraining.training import compiled_steps  # pylint: disable=wrong-import-position

MODELS = {
    # name: (config, batch, input length, target length)
    "cpu": (network.T5Config(vocab_size=384, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=512,
                             num_encoder_layers=2, num_decoder_layers=2), 32, 128, 128),
    "small": (network.T5Config(), 8, 512, 128),
}
LEARNING_RATE = 1e-3


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
  """Best float32 FLOP/s of a square matmul on the default device."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * n**3 / best


def synthetic_batch(cfg: network.T5Config, batch_size: int, n_in: int, n_out: int):
  """A full batch of random tokens (no padding), as the data pipeline would feed it."""
  rng = np.random.default_rng(0)
  targets = rng.integers(3, cfg.vocab_size - 100, (batch_size, n_out)).astype(np.int32)
  return {
      "encoder_input_tokens": rng.integers(3, cfg.vocab_size - 100, (batch_size, n_in)).astype(np.int32),
      "decoder_target_tokens": targets,
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_loss_weights": np.ones_like(targets, np.float32),
  }


def build_trainer(cfg: network.T5Config):
  """Our trainer on one device: T5 with t5x's loss (z-loss 1e-4), Adafactor at a constant rate."""
  if cfg.dropout_rate != 0.1:
    raise ValueError(f"The benchmark models train with dropout 0.1, got {cfg.dropout_rate}.")
  part = partitioning.PjitPartitioner(devices=jax.devices()[:1])
  opt = optimizers.adafactor(learning_rate=optimizers.create_learning_rate_scheduler(
      factors="constant", base_learning_rate=LEARNING_RATE))
  return compiled_steps.Trainer(models.EncoderDecoderModel(cfg, z_loss=1e-4), part, opt, seed=0)


def _process_counters():
  import resource  # pylint: disable=import-outside-toplevel
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_stime, usage.ru_minflt + usage.ru_majflt


def _resident_gb() -> float:
  try:
    with open("/proc/self/statm", encoding="ascii") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
  except OSError:
    return float("nan")


def step_times(cfg, batch_size, n_in, n_out, steps):
  """Seconds, system CPU-seconds and page faults of each of `steps` train steps after compiling."""
  tr = build_trainer(cfg)
  params = tr.random_params()
  state = compiled_steps.TrainState(0, params, tr.init_opt_state(params))
  batch = synthetic_batch(cfg, batch_size, n_in, n_out)
  # Dropout is on: the step's loss depends on its dropout rng (fold_in(dropout key, step)).
  model = tr.model
  with_dropout = jax.jit(model.loss_and_metrics)(state.params, batch, tr.dropout_key)[0]
  without = jax.jit(model.loss_and_metrics)(state.params, batch)[0]
  assert float(with_dropout) != float(without), "dropout is off in the benchmark step"
  for _ in range(2):  # compile; then the heap reaches its size (host_memory.py)
    state, sums = tr.train_step(state, batch)
    host_memory.after_step()  # as the training loop does
    jax.block_until_ready(sums)
  times, system, faults = [], [], []
  for _ in range(steps):
    sys0, faults0 = _process_counters()
    start = time.perf_counter()
    state, sums = tr.train_step(state, batch)
    host_memory.after_step()
    jax.block_until_ready((state.params, state.opt_state, sums))
    times.append(time.perf_counter() - start)
    sys1, faults1 = _process_counters()
    system.append(sys1 - sys0)
    faults.append(faults1 - faults0)
  peak = host_memory._status_bytes("VmHWM")  # pylint: disable=protected-access
  return {"times": times, "system": system, "faults": faults, "rss_gb": _resident_gb(),
          "peak_gb": peak / 1e9 if peak else float("nan"), "trims": host_memory.trims,
          "mode": host_memory.mode()}


def _child(args):
  cfg, batch, n_in, n_out = MODELS[args.models]
  result = step_times(cfg, batch, n_in, n_out, args.steps)
  result["peak"] = matmul_peak()
  print("RESULT " + json.dumps(result), flush=True)


def _run_variant(name, model, steps):
  cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--models={model}",
         f"--steps={steps}", f"--host_memory={name}"]
  env = {k: v for k, v in os.environ.items()  # the child decides by its flag alone
         if k not in (host_memory.ENV_VAR, host_memory.LEGACY_ENV_VAR)}
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
  lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
  if out.returncode or not lines:
    raise RuntimeError(f"variant {name!r} of {model!r} failed:\n{out.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="cpu,small")
  parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
  parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the variants")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--host_memory", choices=VARIANTS, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return _child(args)
  variants = args.variants.split(",")
  peak = matmul_peak()
  print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}, {os.cpu_count()} CPUs  "
        f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
  for model in args.models.split(","):
    cfg, batch, n_in, n_out = MODELS[model]
    flops = flops_lib.train_step_flops(cfg, batch, n_in, n_out)
    tokens = batch * (n_in + n_out)
    results = {name: {"times": [], "system": [], "faults": [], "rss_gb": [], "peak_gb": [],
                      "trims": []} for name in variants}
    for round_index in range(args.rounds):
      for name in (variants if round_index % 2 == 0 else variants[::-1]):
        r = _run_variant(name, model, args.steps)
        for key in ("times", "system", "faults"):
          results[name][key] += r[key]
        if r["mode"] != name:
          raise RuntimeError(f"variant {name!r} ran with host memory mode {r['mode']!r}")
        for key in ("rss_gb", "peak_gb", "trims"):
          results[name][key].append(r[key])
        peak = max(peak, r["peak"])
        print(f"  round {round_index + 1} {model}/{name}: "
              + " ".join(f"{t:.3f}" for t in r["times"]) + " s", flush=True)
    base = float(np.median(results[variants[0]]["times"]))
    print(f"{model}: batch {batch}, lengths {n_in}/{n_out}, dropout {cfg.dropout_rate}, "
          f"{flops / 1e9:,.1f} GFLOP/step; best fp32 matmul peak of the run {peak / 1e9:.1f} GFLOP/s")
    for name in variants:
      r = results[name]
      median = float(np.median(r["times"]))
      print(f"  {name:>7}: step {median:.3f} s (best {min(r['times']):.3f} s), "
            f"{tokens / median:,.0f} tokens/s, {flops / median / 1e9:.1f} GFLOP/s = "
            f"MFU {flops / median / peak:.1%}; system {np.median(r['system']):.2f} s/step, "
            f"{np.median(r['faults']):,.0f} page faults/step, resident {max(r['rss_gb']):.2f} GB "
            f"(peak {max(r['peak_gb']):.2f} GB, {sum(r['trims'])} trims); "
            f"{base / median:.2f}x {variants[0]}")


if __name__ == "__main__":
  main()
