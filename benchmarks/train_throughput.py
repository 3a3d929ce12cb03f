"""Train-step throughput and model FLOPs utilisation (MFU) on this machine.

For each model: tokens/s of the jitted train step (Adafactor, float32), model FLOPs per step
(analytic: 2 FLOPs per multiply-add for every matmul, forward + backward = 3x forward), and MFU
against a float32 matmul peak measured in the same run. Tokens are input + target positions.

  python benchmarks/train_throughput.py [--models cpu,small] [--steps 3]
"""
import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from synthetic_pretraining import models  # pylint: disable=wrong-import-position
from synthetic_pretraining import network  # pylint: disable=wrong-import-position
from synthetic_pretraining import optimizers  # pylint: disable=wrong-import-position
from synthetic_pretraining import partitioning  # pylint: disable=wrong-import-position
from synthetic_pretraining import trainer as trainer_lib  # pylint: disable=wrong-import-position

MODELS = {
    # name: (config, batch, input length, target length)
    "cpu": (network.T5Config(vocab_size=384, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=512,
                             num_encoder_layers=2, num_decoder_layers=2), 32, 128, 128),
    "small": (network.T5Config(), 8, 512, 128),
}


def forward_flops(cfg: network.T5Config, batch: int, n_in: int, n_out: int) -> float:
  """Matmul FLOPs of one forward pass (embedding lookups and elementwise ops excluded)."""
  d, hd = cfg.emb_dim, cfg.num_heads * cfg.head_dim
  mlp = cfg.mlp_dim * len(cfg.activations)
  enc_layer = n_in * (4 * d * hd + d * mlp + cfg.mlp_dim * d) + 2 * n_in * n_in * hd
  dec_layer = (n_out * (4 * d * hd + 2 * d * hd + d * mlp + cfg.mlp_dim * d) + 2 * n_in * d * hd
               + 2 * n_out * n_out * hd + 2 * n_out * n_in * hd)
  logits = n_out * d * cfg.vocab_size
  return 2.0 * batch * (cfg.num_encoder_layers * enc_layer + cfg.num_decoder_layers * dec_layer + logits)


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


def step_time(cfg, batch_size, n_in, n_out, steps):
  part = partitioning.PjitPartitioner(devices=jax.devices()[:1])
  opt = optimizers.adafactor(learning_rate=optimizers.create_learning_rate_scheduler(
      factors="constant", base_learning_rate=1e-3))
  tr = trainer_lib.Trainer(models.EncoderDecoderModel(cfg), part, opt, seed=0)
  params = tr.random_params()
  state = trainer_lib.TrainState(0, params, tr.init_opt_state(params))
  rng = np.random.default_rng(0)
  targets = rng.integers(3, cfg.vocab_size - 100, (batch_size, n_out)).astype(np.int32)
  batch = {
      "encoder_input_tokens": rng.integers(3, cfg.vocab_size - 100, (batch_size, n_in)).astype(np.int32),
      "decoder_target_tokens": targets,
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_loss_weights": np.ones_like(targets, np.float32),
  }
  state, sums = tr.train_step(state, batch)  # compile
  jax.block_until_ready(sums)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, sums = tr.train_step(state, batch)
    jax.block_until_ready((state.params, sums))
    times.append(time.perf_counter() - start)
  return min(times), float(np.median(times))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="cpu,small")
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  peak = matmul_peak()
  print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}  "
        f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
  for name in args.models.split(","):
    cfg, batch, n_in, n_out = MODELS[name]
    best, median = step_time(cfg, batch, n_in, n_out, args.steps)
    flops = 3 * forward_flops(cfg, batch, n_in, n_out)
    tokens = batch * (n_in + n_out)
    print(f"{name:>6}: batch {batch}, lengths {n_in}/{n_out}: step {median:.3f} s (best {best:.3f} s), "
          f"{tokens / median:,.0f} tokens/s, {flops / 1e9:,.1f} GFLOP/step, "
          f"{flops / median / 1e9:.1f} GFLOP/s = MFU {flops / median / peak:.1%} of measured peak")


if __name__ == "__main__":
  main()
