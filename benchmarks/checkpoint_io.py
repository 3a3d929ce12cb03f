"""Checkpoint save and restore time: local disk vs gs:// on the local GCS emulator.

  python benchmarks/checkpoint_io.py [--model=gin/models/t5_1_0/small.gin]

T5 1.0 small's parameters and Adafactor state (the trainer's optimizer) on 8 fake CPU devices
(XLA_FLAGS is set here, before jax is imported), saved with the trainer's own
`orbax_format.TrainingCheckpoints` (one orbax checkpoint: params, opt_state, meta) and restored
into their shardings, once to a temporary local directory and once to a bucket on the
fake-gcs-server emulator of tests/gcs_emulator.py (needs the `test` extra). One run of each;
save time includes waiting for the asynchronous write to commit, restore time includes blocking
on the arrays. The emulator is on this machine (in memory), so the gs:// numbers measure the
client path (tensorstore and tf.io.gfile over HTTP), not a real bucket's network.

Measured once on the 2 shared CPU cores (heavily loaded by other jobs; local disk ran first, so
its save also paid one-time set-up): 231.5 MiB; local save 15.49 s, restore 5.29 s; emulator save
7.57 s, restore 7.92 s; ratio gs:// / local: save 0.49x, restore 1.50x.
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(model_gin: str):
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  os.environ["JAX_PLATFORMS"] = "cpu"
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
  import jax  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import gin_utils
  from synthetic_pretraining.model import models
  from synthetic_pretraining.model import optimizers
  from synthetic_pretraining.model import partitioning
  from synthetic_pretraining.training import compiled_steps  # pylint: disable=import-outside-toplevel
  gin_utils.parse([model_gin], [])
  model = models.EncoderDecoderModel()
  tr = compiled_steps.Trainer(model, partitioning.PjitPartitioner(), optimizers.create_optimizer(), seed=0)
  params = tr.random_params()
  opt_state = tr.init_opt_state(params)
  jax.block_until_ready((params, opt_state))
  return jax, tr, params, opt_state


def _time_round_trip(jax, tr, params, opt_state, model_dir: str):
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  ckpts = orbax_format.TrainingCheckpoints(model_dir)
  start = time.perf_counter()
  ckpts.save(1, params, opt_state, {"benchmark": True})
  ckpts.close()
  save = time.perf_counter() - start
  ckpts = orbax_format.TrainingCheckpoints(model_dir)
  start = time.perf_counter()
  restored = ckpts.restore(1, tr.abstract_params, tr.abstract_opt_state)
  jax.block_until_ready(restored)
  restore = time.perf_counter() - start
  ckpts.close()
  for a, b in zip(jax.tree.leaves(restored[0])[:3], jax.tree.leaves(params)[:3]):
    assert (jax.device_get(a) == jax.device_get(b)).all(), "restored parameters differ"
  return save, restore


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", default=os.path.join(ROOT, "gin/models/t5_1_0/small.gin"))
  args = p.parse_args()
  jax, tr, params, opt_state = _setup(args.model)
  import gcs_emulator  # pylint: disable=import-outside-toplevel
  size = sum(x.nbytes for x in jax.tree.leaves((params, opt_state)))
  count = sum(x.size for x in jax.tree.leaves(params))
  print(f"{os.path.basename(args.model)}: {count:,} parameters; params + optimizer state "
        f"{size / 2**20:.1f} MiB (float32), {jax.device_count()} devices")
  server = gcs_emulator.GcsEmulator().start()
  try:
    os.environ.update(server.environment())
    bucket = gcs_emulator.Bucket.create(server)
    with tempfile.TemporaryDirectory() as local:
      results = {"local disk": _time_round_trip(jax, tr, params, opt_state, f"{local}/run"),
                 "gs:// emulator": _time_round_trip(jax, tr, params, opt_state,
                                                    f"{bucket.url}/run")}
  finally:
    server.stop()
  print(f"{'target':<16} {'save s':>8} {'restore s':>10} {'save MiB/s':>11} {'restore MiB/s':>14}")
  for name, (save, restore) in results.items():
    print(f"{name:<16} {save:>8.2f} {restore:>10.2f} {size / 2**20 / save:>11.1f} "
          f"{size / 2**20 / restore:>14.1f}")
  (local_save, local_restore), (gs_save, gs_restore) = results.values()
  print(f"ratio gs:// / local: save {gs_save / local_save:.2f}x, "
        f"restore {gs_restore / local_restore:.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
