"""Training: the compiled steps (`Trainer`) and the loop (`train`), t5x's binaries' spine.

The loop takes a batch, runs one pure step (`state, sums = trainer.train_step(state, batch)`),
then runs whichever periodic actions are due: log, training eval, inference eval, checkpoint
(each at its period, all of them at the last step). Signals only ask the loop to stop between
two steps (`interrupts`), so what is saved is always a finished step with its own data position.

Determinism: parameters come from `seed`, dropout at step s from fold_in(dropout key, s), data
from the seeded SeqIO pipeline whose iterator position is saved with every checkpoint; so a run
resumed from its checkpoint continues exactly as an uninterrupted one.
"""
import dataclasses
import logging
import time
from typing import Callable, Dict, Optional

import gin
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from synthetic_pretraining import checkpoint_resolver
from synthetic_pretraining import checkpoints
from synthetic_pretraining import data
from synthetic_pretraining import inference
from synthetic_pretraining import interrupts
from synthetic_pretraining import metrics_writer
from synthetic_pretraining import model_info
from synthetic_pretraining import models
from synthetic_pretraining import optimizers
from synthetic_pretraining import partitioning
from synthetic_pretraining import prefetch
from synthetic_pretraining import run_record
from synthetic_pretraining import paths
from synthetic_pretraining import preflight
from synthetic_pretraining import run_lock
from synthetic_pretraining import train_loop

NO_STEP = np.iinfo(np.int32).max
# Parameters left out by INITIAL_CHECKPOINT_LOAD = 'all_but_embedding' (the paper's research mode).
EMBEDDING_PARAMS = ("token_embedder/embedding", "decoder/logits_dense/kernel")


@dataclasses.dataclass(frozen=True)
class TrainState:
  """One training step's state: the step count, parameters and optimizer state."""
  step: int
  params: dict
  opt_state: object


class Trainer:
  """Holds the model, mesh, optimizer and compiled steps for one run.

  `optimizer=None` gives an evaluation-only trainer (no optimizer state, no train step).
  """

  def __init__(self, model: models.EncoderDecoderModel, partitioner: partitioning.PjitPartitioner,
               optimizer, seed: int):
    jax.config.update("jax_threefry_partitionable", True)
    self.model = model
    self.partitioner = partitioner
    self.optimizer = optimizer
    self.seed = seed
    init_key, self.dropout_key = jax.random.split(jax.random.key(seed))
    self._init_key = init_key
    self.param_shardings = partitioner.param_shardings(model.logical_axes())
    self.abstract_params = partitioning.abstract_params(model, partitioner, init_key)
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

  def params_from_checkpoint(self, path: str, load: str = "all"):
    """Parameters of `path`; with load='all_but_embedding' the embedding stays random."""
    if load not in ("all", "all_but_embedding"):
      raise ValueError(f"INITIAL_CHECKPOINT_LOAD must be 'all' or 'all_but_embedding', got {load!r}.")
    skip = EMBEDDING_PARAMS if load == "all_but_embedding" else ()
    params, _ = checkpoint_resolver.read_params(path, self.abstract_params, skip=skip)
    return self._with_fresh_embeddings(params) if skip else params

  def _with_fresh_embeddings(self, params):
    """`params` with every parameter it lacks (None) taken from the random initialisation."""
    flat = traverse_util.flatten_dict(params, sep="/")
    if all(v is not None for v in flat.values()):
      return params
    fresh = traverse_util.flatten_dict(self.random_params(), sep="/")
    merged = {k: (fresh[k] if v is None else v) for k, v in flat.items()}
    return traverse_util.unflatten_dict(merged, sep="/")

  # ---------------------------------------------------------------- compiled steps
  def _batch_shardings(self, batch):
    return {k: self.partitioner.batch_sharding(v.ndim) for k, v in batch.items()}

  def jit_train_step(self, batch):
    """The jitted train step for batches shaped like `batch` (also AOT-compiled by precompile)."""
    model, optimizer, dropout_key, part = self.model, self.optimizer, self.dropout_key, self.partitioner

    def train_step(params, opt_state, batch, step):
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
                      replicated),
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
          state.params, state.opt_state, batch, step).compile()
      self.compilation_seconds = time.perf_counter() - started
    params, opt_state, sums = self._train_step(state.params, state.opt_state, batch, step)
    return TrainState(state.step + 1, params, opt_state), sums

  def eval_sums(self, params, batch) -> Dict[str, jax.Array]:
    if self._eval_step is None:
      self._eval_step = self._compile_eval(batch)
    return self._eval_step(params, batch)


def _add(total, sums):
  """Adds metric sums of several steps or batches (the NaN marker keeps its minimum)."""
  if total is None:
    return sums
  return {k: (jnp.minimum if k == "nonfinite_step" else jnp.add)(total[k], v)
          for k, v in sums.items()}


def _batches_in_step(iterator, element_spec, local_batch: int, max_batches: Optional[int]):
  """Local batches, full size, the same number on every process.

  Each process reads its own shard, and shards of a split rarely have equal sizes; a process that
  ran out would leave the others blocked in the step's collectives. So every step the processes
  agree whether any still has data, and one that has none feeds an all-zero batch: zero loss
  weights, so it adds nothing to any metric.
  """
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  several = jax.process_count() > 1
  count = 0
  while max_batches is None or count < max_batches:
    batch = next(iterator, None)
    if several:
      if not multihost_utils.process_allgather(np.int32(batch is not None)).any():
        return
      if batch is None:
        batch = {k: np.zeros((0,) + tuple(spec.shape[1:]), spec.dtype.as_numpy_dtype)
                 for k, spec in element_spec.items()}
    elif batch is None:
      return
    yield data.pad_batch(batch, local_batch)
    count += 1


def evaluate(trainer: Trainer, params, cfg: data.DatasetConfig, *, seed: int,
             max_batches: Optional[int]) -> Dict[str, float]:
  """Teacher-forced metrics over the eval split (or its first `max_batches` batches)."""
  counter = data.TruncationCounter(cfg.task_feature_lengths)
  ds = data.build_dataset(cfg, seed=seed, shard_info=data.shard_info(), num_epochs=1,
                          counter=counter, drop_remainder=False)
  local_batch = cfg.batch_size // jax.process_count()
  total = None
  for batch in _batches_in_step(data.CheckpointableIterator(ds), ds.element_spec, local_batch,
                                max_batches):
    batch = data.to_global_batch(batch, trainer.partitioner)
    total = _add(total, trainer.eval_sums(params, batch))
  if total is None:
    raise ValueError(f"The {cfg.split!r} split of {cfg.mixture_or_task_name!r} is empty.")
  data.log_truncation(counter, cfg.split, set())
  return models.summarize_metrics(jax.device_get(total))


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or inf (t5x's TerminateOnNan); nothing after it was saved."""


@gin.configurable
@dataclasses.dataclass
class CheckpointConfig:
  """When MODEL_DIR checkpoints are written (t5x's `utils.CheckpointConfig`).

  Attributes:
    period: steps between checkpoints (CHECKPOINT_PERIOD); the last step is always saved.
    keep: how many to keep, oldest removed first (KEEP_CHECKPOINTS; None: all).
    async_save: write arrays in the background while training goes on.
    restore_fallback: on resuming, a damaged newest checkpoint is named in one line and set
      aside, and the run resumes from the newest intact one (RESTORE_FALLBACK); False: it stops
      with that line.
  """
  period: int = 1000
  keep: Optional[int] = None
  async_save: bool = True
  restore_fallback: bool = True


@gin.configurable
@dataclasses.dataclass
class EvalConfig:
  """Teacher-forced and inference eval during training.

  Attributes:
    period: steps between evaluations (EVAL_PERIOD); the last step is always evaluated.
    steps: batches per teacher-forced eval (EVAL_STEPS; None: the whole split).
  """
  period: int = 1000
  steps: Optional[int] = 20


@gin.configurable
@dataclasses.dataclass
class InitConfig:
  """Where a new run's parameters come from (a resumed run ignores this).

  Attributes:
    checkpoint_path: start from these parameters with a fresh optimizer
      (INITIAL_CHECKPOINT_PATH; any path the checkpoint resolver knows); None: random.
    checkpoint_load: 'all' or 'all_but_embedding' (INITIAL_CHECKPOINT_LOAD).
    param_initializer: optional `fn(params, *, partitioner, seed) -> params` applied after
      (statistics-only initialisation, custom values).
  """
  checkpoint_path: Optional[str] = None
  checkpoint_load: str = "all"
  param_initializer: Optional[Callable] = None


@gin.configurable
def train(*, model: models.EncoderDecoderModel = gin.REQUIRED,
          train_dataset_cfg: data.DatasetConfig = gin.REQUIRED,
          eval_dataset_cfg: Optional[data.DatasetConfig] = None,
          infer_eval_cfg: Optional[inference.InferenceConfig] = None,
          partitioner: Optional[partitioning.PjitPartitioner] = None,
          model_dir: str = gin.REQUIRED, total_steps: int = gin.REQUIRED, seed: int = 42,
          log_period: int = 100, eval_cfg: Optional[EvalConfig] = None,
          checkpoint_cfg: Optional[CheckpointConfig] = None,
          init_cfg: Optional[InitConfig] = None) -> Dict[str, float]:
  """Trains `model` until `total_steps` and returns the last train and eval metrics.

  Args (gin, t5x macros in brackets):
    model: the model (MODEL). train_dataset_cfg / eval_dataset_cfg: data (MIXTURE_OR_TASK_NAME,
      TASK_FEATURE_LENGTHS, BATCH_SIZE); no teacher-forced eval when eval_dataset_cfg is None.
    infer_eval_cfg: decode and score a split at every eval (inference eval), or None.
    partitioner: mesh and sharding rules (`PjitPartitioner.num_partitions`).
    model_dir: checkpoints, config.gin, model-info.txt, TensorBoard events, metrics.jsonl
      (MODEL_DIR, local or gs://). A directory holding checkpoints is resumed from the latest.
    total_steps: train until this step (TRAIN_STEPS). seed: initialisation, dropout, data order
      (SEED or t5x's RANDOM_SEED). log_period: steps between train records (LOG_PERIOD).
    eval_cfg, checkpoint_cfg, init_cfg: see `EvalConfig`, `CheckpointConfig`, `InitConfig`.

  Raises:
    interrupts.TrainingInterrupted: after SIGINT/SIGTERM, once the last finished step is saved.
    NonFiniteLossError: the loss became NaN or inf (that step is not saved).
  """
  partitioner = partitioner or partitioning.PjitPartitioner()
  model_dir, init_cfg = paths.as_str(model_dir), init_cfg or InitConfig()
  resuming = bool(checkpoints.checkpoint_steps(model_dir))
  preflight.check_run(  # bad input ends here, before anything is created
      partitioner=partitioner, datasets=(train_dataset_cfg, eval_dataset_cfg),
      output_dirs=[(model_dir, "MODEL_DIR")],
      abstract_params=partitioning.abstract_params(model, partitioner, jax.random.key(seed)),
      initial_checkpoint=None if resuming else init_cfg.checkpoint_path)
  run_lock.acquire(model_dir)  # one writer per MODEL_DIR (process 0); freed when the binary ends
  run = _Run(model, train_dataset_cfg, eval_dataset_cfg, infer_eval_cfg, partitioner, model_dir,
             total_steps, seed, eval_cfg or EvalConfig(), checkpoint_cfg or CheckpointConfig(),
             init_cfg)
  actions = [train_loop.PeriodicAction("log", log_period, run.log)]
  if eval_dataset_cfg is not None:
    actions.append(train_loop.PeriodicAction("training_eval", run.eval_cfg.period, run.train_eval))
  if infer_eval_cfg is not None:
    actions.append(train_loop.PeriodicAction("inference_eval", run.eval_cfg.period, run.infer_eval))
  actions.append(train_loop.PeriodicAction("checkpoint", run.checkpoint_cfg.period, run.checkpoint))
  try:
    with interrupts.stop_requests() as stops:
      while run.state.step < total_steps:
        signal_name = stops.should_stop(run.state.step)
        if signal_name is not None:
          run.stop(signal_name)
        run.step()
        at_end = run.state.step == total_steps
        for action in actions:
          if action.due(run.state.step, at_end):
            action.run()
  finally:
    run.close()
  return run.last


class _Run:
  """The state and the actions of one `train` call (the loop itself is in `train`)."""

  def __init__(self, model, train_cfg: data.DatasetConfig, eval_dataset_cfg, infer_eval_cfg,
               partitioner, model_dir: str, total_steps: int, seed: int, eval_cfg: EvalConfig,
               checkpoint_cfg: CheckpointConfig, init_cfg: InitConfig):
    self.model, self.train_cfg, self.model_dir, self.seed = model, train_cfg, model_dir, seed
    self.eval_dataset_cfg, self.infer_eval_cfg = eval_dataset_cfg, infer_eval_cfg
    self.eval_cfg, self.checkpoint_cfg = eval_cfg, checkpoint_cfg
    optimizer, self.schedule = optimizers.create_optimizer_and_schedule()
    self.trainer = Trainer(model, partitioner, optimizer, seed)
    self.ckpts = checkpoints.TrainingCheckpoints(model_dir, keep=checkpoint_cfg.keep,
                                                 async_save=checkpoint_cfg.async_save,
                                                 restore_fallback=checkpoint_cfg.restore_fallback)
    self.writer = metrics_writer.MetricsWriter(model_dir)
    self.meta = {"model": dataclasses.asdict(model.config), "seed": seed}
    self.counter = data.TruncationCounter(train_cfg.task_feature_lengths)
    # Batches go to the devices in a background thread; the saved position stays the step's.
    self.iterator = prefetch.DevicePrefetcher(
        data.CheckpointableIterator(data.build_dataset(
            train_cfg, seed=seed, shard_info=data.shard_info(), num_epochs=None,
            counter=self.counter)),
        lambda batch: data.to_global_batch(batch, partitioner))
    self.state = _initial_state(self.trainer, self.ckpts, model_dir, self.iterator, init_cfg)
    _write_config(model_dir)
    if jax.process_index() == 0:
      run_record.write(model_dir, train_dataset_cfg=train_cfg, seed=seed, total_steps=total_steps,
                       initial_checkpoint_path=init_cfg.checkpoint_path,
                       initial_checkpoint_load=init_cfg.checkpoint_load,
                       param_initializer=init_cfg.param_initializer)
    model_info.write(model_dir, self.trainer.abstract_params, model.logical_axes())
    self.writer.write_text("config", gin.config_str())
    if self.state.step >= total_steps:
      logging.info("MODEL_DIR %s is already at step %d >= TRAIN_STEPS=%d; nothing to do.",
                   model_dir, self.state.step, total_steps)
    self.inference = None
    self.window = train_loop.MetricWindow(_add, self.state.step)
    self.progress = train_loop.Progress(total_steps, self.state.step)
    self.last: Dict[str, float] = {}
    self.saved_step: Optional[int] = self.ckpts.latest_step()
    self.checkpoint_seconds: Optional[float] = None
    self._warned: set = set()
    self._compilation_logged = False

  def step(self) -> None:
    batch = next(self.iterator)
    compiled_before = self.trainer.compilation_seconds
    self.state, sums = self.trainer.train_step(self.state, batch)
    self.window.add(sums)
    if self.trainer.compilation_seconds != compiled_before:
      self.window.pause(self.trainer.compilation_seconds)
    self.progress.step()

  def _timed(self, fn):
    """Runs `fn` with its time left out of the training throughput; returns its seconds."""
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    self.window.pause(seconds)
    return seconds

  # ------------------------------------------------------------------- actions
  def log(self) -> None:
    step = self.state.step
    if self.window.sums is None:
      return
    sums, steps, seconds = self.window.fetch(step)
    self._check_finite(sums)
    values = models.summarize_metrics(sums)
    values["learning_rate"] = float(self.schedule(max(step - 1, 0)))
    values.update(train_loop.timing_metrics(steps, seconds, self.train_cfg.batch_size,
                                            self.train_cfg.task_feature_lengths))
    values.update(self.iterator.metrics(seconds))  # timing/input_wait_fraction
    if self.trainer.compilation_seconds and not self._compilation_logged:
      values["timing/compilation_seconds"] = self.trainer.compilation_seconds
      self._compilation_logged = True
    if self.checkpoint_seconds is not None:
      values["timing/checkpoint_seconds"] = self.checkpoint_seconds
      self.checkpoint_seconds = None
    values.update({f"truncation/{k}": v for k, v in data.log_truncation(
        self.counter, self.train_cfg.split, self._warned).items()})
    self.writer.write(step, "train", values, split=self.train_cfg.split,
                      task=self.train_cfg.mixture_or_task_name)
    self.last.update(values)
    self.progress.record(step, values)
    self.window.reset(step)

  def train_eval(self) -> None:
    def run():
      cfg = self.eval_dataset_cfg
      metrics = evaluate(self.trainer, self.state.params, cfg, seed=self.seed,
                         max_batches=self.eval_cfg.steps)
      self.last.update({f"eval/{k}": v for k, v in metrics.items()})
      self.writer.write(self.state.step, "eval", metrics, split=cfg.split,
                        task=cfg.mixture_or_task_name)
      logging.info("eval at step %d: loss/token %.4f  accuracy %.4f", self.state.step,
                   metrics["loss_per_nonpadding_target_token"], metrics["accuracy"])
    self._timed(run)

  def infer_eval(self) -> None:
    def run():
      if self.inference is None:  # examples read and decoding compiled once per run
        self.inference = inference.InferenceEvaluator(
            self.model, self.trainer.partitioner, self.infer_eval_cfg, self.trainer.param_shardings)
      results = self.inference.evaluate(self.state.params)
      inference.write_results(self.writer, self.model_dir, self.state.step, self.infer_eval_cfg,
                              results)
      for task_name, (metrics, _) in results.items():
        self.last.update({f"infer/{task_name}/{k}": v for k, v in metrics.items()})
    self._timed(run)

  def checkpoint(self) -> None:
    if self.saved_step == self.state.step:
      return
    if self.window.sums is not None:  # never write a checkpoint of NaN parameters
      self._check_finite({"nonfinite_step": jax.device_get(self.window.sums["nonfinite_step"])})
    state = self.state
    self.checkpoint_seconds = self._timed(lambda: self.ckpts.save(
        state.step, state.params, state.opt_state, self.meta, iterator=self.iterator))
    self.saved_step = state.step

  def _check_finite(self, sums) -> None:
    bad = int(sums["nonfinite_step"])
    if bad != NO_STEP:
      self.ckpts.wait()
      last = (checkpoints.step_dir(self.model_dir, self.saved_step) if self.saved_step is not None
              else "none (no checkpoint was written)")
      raise NonFiniteLossError(
          f"The training loss became NaN or inf at step {bad + 1}; stopped without saving it. "
          f"Last good checkpoint: {last}. Lower the learning rate or check the data.")

  def stop(self, signal_name: str) -> None:
    """Saves the last finished step (and logs its metrics), then raises TrainingInterrupted."""
    self.log()
    self.checkpoint()
    self.ckpts.wait()
    raise interrupts.TrainingInterrupted(
        signal_name, self.state.step, checkpoints.step_dir(self.model_dir, self.state.step))

  def close(self) -> None:
    self.iterator.close()
    self.progress.close()
    self.ckpts.close()
    self.writer.close()


def _initial_state(trainer: Trainer, ckpts, model_dir, iterator, init_cfg: InitConfig) -> TrainState:
  """Resumes from MODEL_DIR's newest intact checkpoint, else builds the initial parameters."""
  latest = ckpts.latest_intact_step()
  if latest is not None:
    logging.info("Resuming from %s", checkpoints.step_dir(model_dir, latest))
    params, opt_state = ckpts.restore(latest, trainer.abstract_params, trainer.abstract_opt_state,
                                      iterator=iterator)
    return TrainState(latest, params, opt_state)
  if init_cfg.checkpoint_path:
    logging.info("Initial parameters from %s (%s)", init_cfg.checkpoint_path,
                 init_cfg.checkpoint_load)
    params = trainer.params_from_checkpoint(init_cfg.checkpoint_path, init_cfg.checkpoint_load)
  else:
    params = trainer.random_params()
  if init_cfg.param_initializer is not None:
    params = init_cfg.param_initializer(params, partitioner=trainer.partitioner, seed=trainer.seed)
  return TrainState(0, params, trainer.init_opt_state(params))


def _write_config(model_dir: str) -> None:
  if jax.process_index() == 0:
    paths.write_atomic(paths.join(model_dir, "config.gin"), gin.config_str())


def num_params(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


@gin.configurable
def evaluate_checkpoint(*, model: models.EncoderDecoderModel = gin.REQUIRED,
                        checkpoint_path: str = gin.REQUIRED,
                        dataset_cfg: data.DatasetConfig = gin.REQUIRED,
                        output_dir: str = gin.REQUIRED,
                        partitioner: Optional[partitioning.PjitPartitioner] = None,
                        eval_steps: Optional[int] = None, seed: int = 42) -> Dict[str, float]:
  """Teacher-forced metrics of one checkpoint on a split, written to `output_dir` (eval.gin)."""
  partitioner = partitioner or partitioning.PjitPartitioner()
  trainer = Trainer(model, partitioner, optimizer=None, seed=seed)
  preflight.check_run(partitioner=partitioner, datasets=(dataset_cfg,),
                      output_dirs=[(output_dir, "EVAL_OUTPUT_DIR")], initial_checkpoint=checkpoint_path,
                      abstract_params=trainer.abstract_params, checkpoint_flag="CHECKPOINT_PATH")
  params, step = checkpoint_resolver.read_params(checkpoint_path, trainer.abstract_params)
  metrics = evaluate(trainer, params, dataset_cfg, seed=seed, max_batches=eval_steps)
  writer = metrics_writer.MetricsWriter(output_dir)
  writer.write(step, "eval", metrics, split=dataset_cfg.split, task=dataset_cfg.mixture_or_task_name)
  writer.close()
  _write_config(output_dir)
  logging.info("%s at step %d on %s/%s: %s", checkpoint_path, step, dataset_cfg.mixture_or_task_name,
               dataset_cfg.split, metrics)
  return metrics
