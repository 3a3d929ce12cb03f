"""Our jitted train step beside t5x's own, in one process, on the same machine.

Same model (t5x's `examples/t5/network.py` vs ours, T5 1.0 small by default: float32, dropout
0.1), same parameters (ours, loaded into t5x's train state), same batch and lengths, the same
dropout rng per step (fold_in(dropout key, step), as t5x's trainer derives it), the same loss
(t5x's cross-entropy with z-loss 1e-4, summed) and Adafactor with the same settings (decay rate
0.8, factored second moments, update clipping 1.0, parameter scaling, constant learning rate
1e-3): t5x's `adafactor.Adafactor` under `trainer.train_with_lr` against ours (optax's) under
`Trainer.train_step`. Before timing, the two losses of the first step are asserted equal
(bit for bit), and the largest difference between the parameters after one step of each is
printed. Then rounds alternate (ours, t5x; t5x, ours; ...), a few steps each, and the medians,
tokens/s, MFU against a measured fp32 matmul peak and the ratio t5x/ours are printed.

Needs t5x importable (it is not on the package index): `bash scripts/setup_t5x.sh DIR` builds
one beside the project and prints the PYTHONPATH to export (docs/t5x.md). Freed host memory is
kept for both steps (host_memory.py; our training binary does it with
SYNTHETIC_PRETRAINING_RETAIN_HOST_MEMORY=1); --no_retain_host_memory leaves glibc's default.

  PYTHONPATH=DIR/src:DIR/stubs:DIR/extra python benchmarks/t5x_side_by_side.py \
      [--model small] [--rounds 3] [--steps 2]

Measured on the project's idle 2-core machine (T5 1.0 small, batch 8, 512/128, --rounds 3
--steps 2): freed memory kept, ours 7.029 s/step (MFU 57.8% of the 216.4 GFLOP/s peak read in the
run), t5x 9.247 s, t5x/ours 1.32x (rounds 1.33x, 1.18x, 1.32x); glibc's default, 1.40x (9.547 s
against 13.404 s). First-step losses equal (11271.1611328125). More in
docs/scale.md, "CPU train-step efficiency".
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_pretraining.training import host_memory  # pylint: disable=wrong-import-position

if __name__ == "__main__" and "--no_retain_host_memory" not in sys.argv:
  host_memory.retain_freed_memory(force=True)  # before jax's threads exist

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

import train_throughput  # pylint: disable=wrong-import-position
from synthetic_pretraining.model import flops as flops_lib  # pylint: disable=wrong-import-position
from synthetic_pretraining.training import compiled_steps  # pylint: disable=wrong-import-position


def _import_t5x():
  try:
    # pylint: disable=import-outside-toplevel
    import seqio
    from t5x import adafactor, models, train_state, trainer
    from t5x.examples.t5 import network
  except ImportError as e:
    sys.exit(f"t5x is not importable ({e}). Build it beside the project with "
             "`bash scripts/setup_t5x.sh DIR` and export the PYTHONPATH it prints (docs/t5x.md).")
  return seqio, adafactor, models, train_state, trainer, network


def build_t5x(cfg, params, dropout_key):
  """t5x's model, a train state holding copies of `params`, and its jitted train step."""
  seqio, adafactor, t5x_models, train_state_lib, t5x_trainer, t5x_network = _import_t5x()
  module = t5x_network.Transformer(t5x_network.T5Config(
      vocab_size=cfg.vocab_size, dtype=jnp.float32, emb_dim=cfg.emb_dim, num_heads=cfg.num_heads,
      num_encoder_layers=cfg.num_encoder_layers, num_decoder_layers=cfg.num_decoder_layers,
      head_dim=cfg.head_dim, mlp_dim=cfg.mlp_dim, mlp_activations=tuple(cfg.activations),
      dropout_rate=cfg.dropout_rate, logits_via_embedding=cfg.logits_via_embedding))
  vocabulary = seqio.PassThroughVocabulary(size=cfg.vocab_size)
  optimizer = adafactor.Adafactor(decay_rate=0.8, step_offset=0,
                                  logical_factor_rules=adafactor.standard_logical_factor_rules())
  model = t5x_models.EncoderDecoderModel(module, vocabulary, vocabulary, optimizer, z_loss=1e-4)
  shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
  axes = jax.eval_shape(lambda: model.get_initial_variables(jax.random.key(0), shapes))["params_axes"]
  theirs = jax.tree.map(jnp.copy, params)
  state = train_state_lib.FlaxOptimTrainState.create(
      optimizer, {"params": theirs, "params_axes": jax.tree.map(lambda x: x, axes)})

  def step_fn(state, batch):
    # t5x's Trainer: dropout rng fold_in(base rng, step), learning rate from the step.
    return t5x_trainer.train_with_lr(
        state, batch, learning_rate=jnp.float32(train_throughput.LEARNING_RATE),
        dropout_rng=jax.random.fold_in(dropout_key, state.step), model=model,
        num_microbatches=None)

  return model, state, jax.jit(step_fn, donate_argnums=(0,))


def _max_difference(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="small", choices=sorted(train_throughput.MODELS))
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=2, help="timed steps per round and side")
  parser.add_argument("--no_retain_host_memory", action="store_true")
  args = parser.parse_args()
  _import_t5x()
  cfg, batch_size, n_in, n_out = train_throughput.MODELS[args.model]
  peak = train_throughput.matmul_peak()
  ours = train_throughput.build_trainer(cfg)
  params = ours.random_params()
  t5x_model, t5x_state, t5x_step = build_t5x(cfg, params, ours.dropout_key)
  assert (jax.tree.structure(jax.tree.map(lambda x: 0, dict(t5x_state.params)))
          == jax.tree.structure(jax.tree.map(lambda x: 0, params))), "parameter trees differ"
  state = compiled_steps.TrainState(0, params, ours.init_opt_state(params))
  batch = train_throughput.synthetic_batch(cfg, batch_size, n_in, n_out)

  # The first step's loss, same parameters and dropout rng: equal bit for bit.
  rng0 = jax.random.fold_in(ours.dropout_key, 0)
  our_loss = float(jax.jit(ours.model.loss_and_metrics)(state.params, batch, rng0)[0])
  t5x_loss = float(jax.jit(t5x_model.loss_fn)(t5x_state.params, batch, rng0)[0])
  no_dropout = float(jax.jit(ours.model.loss_and_metrics)(state.params, batch)[0])
  print(f"first-step loss: ours {our_loss!r}, t5x {t5x_loss!r} (without dropout {no_dropout!r})")
  assert our_loss == t5x_loss, "the two steps do not compute the same loss"
  assert our_loss != no_dropout, "dropout is off"

  def run_ours(n):
    nonlocal state
    times = []
    for _ in range(n):
      start = time.perf_counter()
      state, sums = ours.train_step(state, batch)
      jax.block_until_ready((state.params, state.opt_state, sums))
      times.append(time.perf_counter() - start)
    return times

  def run_t5x(n):
    nonlocal t5x_state
    times = []
    for _ in range(n):
      start = time.perf_counter()
      t5x_state, metrics = t5x_step(t5x_state, batch)
      jax.block_until_ready((t5x_state, metrics))
      times.append(time.perf_counter() - start)
    return times

  run_ours(1)  # compile
  run_t5x(1)
  print(f"parameters after one step, largest difference ours - t5x: "
        f"{_max_difference(state.params, dict(t5x_state.params)):.3g}")
  run_ours(1)  # t5x's second call compiles again (its state's types settle after one step)
  run_t5x(1)
  flops = flops_lib.train_step_flops(cfg, batch_size, n_in, n_out)
  tokens = batch_size * (n_in + n_out)
  times = {"ours": [], "t5x": []}
  sides = {"ours": run_ours, "t5x": run_t5x}
  for r in range(args.rounds):
    order = ("ours", "t5x") if r % 2 == 0 else ("t5x", "ours")
    round_medians = {}
    for side in order:
      t = sides[side](args.steps)
      times[side] += t
      round_medians[side] = float(np.median(t))
    print(f"round {r + 1}: ours {round_medians['ours']:.3f} s, t5x {round_medians['t5x']:.3f} s, "
          f"t5x/ours {round_medians['t5x'] / round_medians['ours']:.2f}x", flush=True)
  peak = max(peak, train_throughput.matmul_peak())  # the better of before and after the rounds
  print(f"{args.model}: batch {batch_size}, lengths {n_in}/{n_out}, dropout {cfg.dropout_rate}, "
        f"{flops / 1e9:,.1f} GFLOP/step; measured fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
  for side in ("ours", "t5x"):
    median = float(np.median(times[side]))
    print(f"  {side:>4}: step {median:.3f} s (best {min(times[side]):.3f} s), "
          f"{tokens / median:,.0f} tokens/s, MFU {flops / median / peak:.1%}")
  print(f"  t5x/ours: {np.median(times['t5x']) / np.median(times['ours']):.2f}x")


if __name__ == "__main__":
  main()
