"""The compiled steps of one run (`Trainer`): random initial parameters, train step, eval step.

TensorFlow-free and checkpoint-free by design: it imports the model, optimizer and partitioning
only, so the train step runs and is benchmarked on a machine with jax, flax and optax alone
(benchmarks/train_throughput.py). Data, checkpoints and the loop live in their own modules.

Determinism: parameters come from `seed`, dropout at step s from fold_in(dropout key, s).

One compilation per configuration: the dropout key is an argument of the jitted train step, not
a constant folded into it, so runs that differ only in their seed lower to the same HLO and share
one compiled step (in a process, and across processes through JAX's persistent compilation
cache, `enable_compilation_cache`). The numbers are those of the key as a constant: the same
threefry bits either way (tests/test_compilation.py).
"""
import collections
import dataclasses
import os
import time
from typing import Dict

import jax
import jax.numpy as jnp
from jax.experimental.compilation_cache import compilation_cache as jax_compilation_cache
import numpy as np

from synthetic_pretraining.model import models
from synthetic_pretraining.model import partitioning

# The step of a NaN/inf loss when there was none (the sums keep the smallest step).
NO_STEP = np.iinfo(np.int32).max

# Opt-in persistent compilation cache: a folder (local or gs://) where JAX keeps compiled
# executables across processes, so a second run of the same configuration (any seed) skips
# compiling. Set it in the environment, or call `enable_compilation_cache` (gin:
# `compiled_steps.enable_compilation_cache.cache_dir`).
COMPILATION_CACHE_ENV = "SYNTHETIC_PRETRAINING_COMPILATION_CACHE"


def enable_compilation_cache(cache_dir=None, min_compile_seconds: float = 1.0):
  """Turns on JAX's persistent compilation cache in `cache_dir` (opt-in; off by default).

  Sets `jax_compilation_cache_dir`, and `jax_persistent_cache_min_compile_time_secs` so that
  only compilations slower than `min_compile_seconds` are written. With `cache_dir=None`, the
  folder is taken from the environment variable SYNTHETIC_PRETRAINING_COMPILATION_CACHE (or
  JAX's own JAX_COMPILATION_CACHE_DIR, which JAX reads itself); with neither, nothing changes.
  Returns the folder in use, or None.
  """
  cache_dir = cache_dir or os.environ.get(COMPILATION_CACHE_ENV)
  if not cache_dir:
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or None
  jax.config.update("jax_compilation_cache_dir", str(cache_dir))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  # JAX opens its cache at the first compilation and keeps that folder: reopen it here, in case
  # something compiled before (otherwise the new folder is silently not used).
  jax_compilation_cache.reset_cache()
  return str(cache_dir)


@dataclasses.dataclass(frozen=True)
class TrainState:
  """One training step's state: the step count, parameters and optimizer state."""
  step: int
  params: dict
  opt_state: object


def add_sums(total, sums):
  """Adds metric sums of several steps or batches (the NaN marker keeps its minimum)."""
  if total is None:
    return sums
  return {k: (jnp.minimum if k == "nonfinite_step" else jnp.add)(total[k], v)
          for k, v in sums.items()}


class InFlight:
  """Lets at most `limit` dispatched steps run ahead of the host: adding the newest result waits
  for the oldest beyond that.

  Why: XLA:CPU runs each device's part of a program on a shared thread pool, and with more than
  about 24 programs with collectives queued on 8 devices (a loop dispatching faster than a busy
  machine runs them) the threads that have joined a collective's rendezvous wait for devices
  whose turn never comes: after 40 s the process aborts ("Termination timeout for `all reduce
  ...`"). Two steps ahead keeps an accelerator's queue full all the same.
  """

  def __init__(self, limit: int = 2):
    self.limit, self._pending = limit, collections.deque()

  def add(self, result) -> None:
    self._pending.append(result)
    while len(self._pending) > self.limit:
      jax.block_until_ready(self._pending.popleft())


def num_params(params) -> int:
  """The number of values in a parameter tree (abstract or concrete)."""
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


class Trainer:
  """Holds the model, mesh, optimizer and compiled steps for one run.

  `optimizer=None` gives an evaluation-only trainer (no optimizer state, no train step).
  """

  def __init__(self, model: models.EncoderDecoderModel, partitioner: partitioning.PjitPartitioner,
               optimizer, seed: int):
    jax.config.update("jax_threefry_partitionable", True)
    enable_compilation_cache()  # only where SYNTHETIC_PRETRAINING_COMPILATION_CACHE is set
    self.model = model
    self.partitioner = partitioner
    self.optimizer = optimizer
    self.seed = seed
    init_key, self.dropout_key = jax.random.split(jax.random.key(seed))
    self._init_key = init_key
    self.param_shardings = partitioner.param_shardings(model.logical_axes())
    self.abstract_params = partitioning.abstract_params(model, partitioner)
    self._train_step = None
    self._eval_step = None
    self.compilation_seconds = 0.0
    if optimizer is None:
      return
    opt_shapes = jax.eval_shape(optimizer.init, self.abstract_params)
    self.opt_shardings = partitioning.optimizer_state_shardings(
        opt_shapes, self.abstract_params, self.param_shardings, partitioner.replicated())
    self.abstract_opt_state = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), opt_shapes,
        self.opt_shardings)

  # ---------------------------------------------------------------- initial state
  def random_params(self):
    """Random initialisation drawn straight into the parameter shardings."""
    return jax.jit(self.model.init_params, out_shardings=self.param_shardings)(self._init_key)

  def init_opt_state(self, params):
    return jax.jit(self.optimizer.init, out_shardings=self.opt_shardings)(params)

  # ---------------------------------------------------------------- compiled steps
  def _batch_shardings(self, batch):
    return {k: self.partitioner.batch_sharding(v.ndim) for k, v in batch.items()}

  def jit_train_step(self, batch):
    """The jitted train step for batches shaped like `batch` (also AOT-compiled by precompile).

    Its arguments are (params, opt_state, batch, step, dropout_key): the seed enters only
    through `dropout_key`, so every seed shares one compiled step.
    """
    model, optimizer, part = self.model, self.optimizer, self.partitioner

    def train_step(params, opt_state, batch, step, dropout_key):
      rng = jax.random.fold_in(dropout_key, step)
      with part.activation_context():
        (_, sums), grads = jax.value_and_grad(model.loss_and_metrics, has_aux=True)(
            params, batch, rng)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      params = jax.tree.map(lambda p, u: p + u, params, updates)
      # The step whose loss was NaN or inf (else a sentinel); windows keep the smallest.
      sums = dict(sums, nonfinite_step=jnp.where(jnp.isfinite(sums["step_loss"]), NO_STEP, step))
      return params, opt_state, sums

    replicated = part.replicated()
    return jax.jit(
        train_step,
        in_shardings=(self.param_shardings, self.opt_shardings, self._batch_shardings(batch),
                      replicated, replicated),
        out_shardings=(self.param_shardings, self.opt_shardings, replicated),
        donate_argnums=(0, 1))

  def _compile_eval(self, batch):
    model, part = self.model, self.partitioner

    def eval_step(params, batch):
      with part.activation_context():
        return model.loss_and_metrics(params, batch)[1]

    return jax.jit(eval_step, in_shardings=(self.param_shardings, self._batch_shardings(batch)),
                   out_shardings=part.replicated())

  def train_step(self, state: TrainState, batch):
    """(next state, metric sums) after one optimizer step on `batch`.

    `state`'s arrays are donated to the step (their memory is reused): keep using the returned
    state, not the argument.
    """
    # Train and eval batches may carry different features (packing), so each has its own step.
    step = jnp.asarray(state.step, jnp.int32)
    if self._train_step is None:
      started = time.perf_counter()
      self._train_step = self.jit_train_step(batch).lower(
          state.params, state.opt_state, batch, step, self.dropout_key).compile()
      self.compilation_seconds = time.perf_counter() - started
    params, opt_state, sums = self._train_step(state.params, state.opt_state, batch, step,
                                               self.dropout_key)
    return TrainState(state.step + 1, params, opt_state), sums

  def eval_sums(self, params, batch) -> Dict[str, jax.Array]:
    if self._eval_step is None:
      self._eval_step = self._compile_eval(batch)
    return self._eval_step(params, batch)
