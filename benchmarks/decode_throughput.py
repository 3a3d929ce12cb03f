"""Decoding throughput: decoded tokens/s of greedy search and beam search (4 beams).

Random-initialised models decode a fixed number of steps (EOS is never chosen, so every sequence
runs to max length): tokens/s = batch * max_length / seconds, beams not counted separately.

  python benchmarks/decode_throughput.py [--models cpu,small]
"""
import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from synthetic_pretraining.model import models  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import network  # pylint: disable=wrong-import-position

MODELS = {
    # name: (config, batch, input length, decode length)
    "cpu": (network.T5Config(vocab_size=384, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=512,
                             num_encoder_layers=2, num_decoder_layers=2), 32, 128, 64),
    "small": (network.T5Config(), 8, 512, 64),
}


def decode_seconds(model, params, tokens, max_length, num_decodes, repeats=2):
  # eos_id=-1 never matches, so every sequence decodes max_length tokens.
  fn = jax.jit(lambda p, t: model.predict_batch(p, {"encoder_input_tokens": t},
                                                max_decode_length=max_length,
                                                num_decodes=num_decodes, eos_id=-1))
  jax.block_until_ready(fn(params, tokens))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(params, tokens))
    best = min(best, time.perf_counter() - start)
  return best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="cpu,small")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind}")
  for name in args.models.split(","):
    cfg, batch, n_in, max_length = MODELS[name]
    model = models.EncoderDecoderModel(cfg)
    params = model.init_params(jax.random.key(0))
    tokens = np.random.default_rng(0).integers(3, cfg.vocab_size - 100, (batch, n_in)).astype(np.int32)
    for label, beams in (("greedy", 1), ("beam 4", 4)):
      seconds = decode_seconds(model, params, tokens, max_length, beams)
      print(f"{name:>6} {label:>7}: batch {batch}, input {n_in}, {max_length} steps: "
            f"{seconds:.2f} s, {batch * max_length / seconds:,.0f} decoded tokens/s")


if __name__ == "__main__":
  main()
