"""The training loop: sharded init or restore, jitted train/eval steps, eval, checkpoints, logs.

Determinism: parameters come from `seed`, dropout at step s from fold_in(dropout key, s), data
from the seeded SeqIO pipeline whose iterator position is saved with every checkpoint; so a run
resumed from its checkpoint continues exactly as an uninterrupted one.
"""
import dataclasses
import logging
import os
import sys
import time
from typing import Callable, Dict, Optional

import gin
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from synthetic_pretraining import checkpoints
from synthetic_pretraining import data
from synthetic_pretraining import inference
from synthetic_pretraining import metrics_writer
from synthetic_pretraining import models
from synthetic_pretraining import optimizers
from synthetic_pretraining import partitioning

# Parameters left out by INITIAL_CHECKPOINT_LOAD = 'all_but_embedding' (the paper's research mode).
EMBEDDING_PARAMS = ("token_embedder/embedding", "decoder/logits_dense/kernel")


@dataclasses.dataclass
class TrainState:
  step: int
  params: dict
  opt_state: object


class Trainer:
  """Holds the model, mesh, optimizer and compiled steps for one run."""

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
    self.abstract_params = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        jax.eval_shape(model.init_params, init_key), self.param_shardings)
    opt_shapes = jax.eval_shape(optimizer.init, self.abstract_params)
    self.opt_shardings = partitioning.optimizer_state_shardings(
        opt_shapes, self.abstract_params, self.param_shardings, partitioner.replicated())
    self.abstract_opt_state = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), opt_shapes,
        self.opt_shardings)
    self._train_step = None
    self._eval_step = None

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
    t5x = _t5x_params(path, self.abstract_params, load)
    if t5x is not None:
      return t5x if load == "all" else self._with_fresh_embeddings(t5x)
    step_dir = path if checkpoints.is_checkpoint_dir(path) else checkpoints.latest_checkpoint_step_dir(path)
    if step_dir is None:
      raise FileNotFoundError(f"INITIAL_CHECKPOINT_PATH={path!r} holds no checkpoint (expected a "
                              "checkpoint_<step> directory or a directory containing them).")
    if load == "all":
      return checkpoints.restore_params(step_dir, self.abstract_params)
    restored = checkpoints.restore_params(step_dir, self.abstract_params,
                                          only=lambda name: name not in EMBEDDING_PARAMS)
    return self._with_fresh_embeddings(restored)

  def _with_fresh_embeddings(self, params):
    """`params` with every parameter it lacks (None) taken from the random initialisation."""
    fresh = traverse_util.flatten_dict(self.random_params(), sep="/")
    merged = {k: (fresh[k] if v is None else v)
              for k, v in traverse_util.flatten_dict(params, sep="/").items()}
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

  def train_step(self, state: TrainState, batch) -> Dict[str, jax.Array]:
    # Train and eval batches may carry different features (packing), so each has its own step.
    if self._train_step is None:
      self._train_step = self.jit_train_step(batch)
    state.params, state.opt_state, sums = self._train_step(
        state.params, state.opt_state, batch, jnp.asarray(state.step, jnp.int32))
    state.step += 1
    return sums

  def eval_sums(self, params, batch) -> Dict[str, jax.Array]:
    if self._eval_step is None:
      self._eval_step = self._compile_eval(batch)
    return self._eval_step(params, batch)


def _add(total, sums):
  return sums if total is None else jax.tree.map(jnp.add, total, sums)


def _progress(total_steps: int, start: int):
  """A tqdm bar on a terminal; None (periodic log lines instead) otherwise."""
  if not sys.stderr.isatty() or jax.process_index() != 0:
    return None
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total_steps, initial=start, unit="step", dynamic_ncols=True)


def evaluate(trainer: Trainer, params, cfg: data.DatasetConfig, *, seed: int,
             max_batches: Optional[int]) -> Dict[str, float]:
  """Teacher-forced metrics over the eval split (or its first `max_batches` batches)."""
  counter = data.TruncationCounter(cfg.task_feature_lengths)
  ds = data.build_dataset(cfg, seed=seed, shard_info=data.shard_info(), num_epochs=1,
                          counter=counter, drop_remainder=False)
  local_batch = cfg.batch_size // jax.process_count()
  total = None
  for i, batch in enumerate(data.CheckpointableIterator(ds)):
    if max_batches is not None and i >= max_batches:
      break
    batch = data.to_global_batch(data.pad_batch(batch, local_batch), trainer.partitioner)
    total = _add(total, trainer.eval_sums(params, batch))
  if total is None:
    raise ValueError(f"The {cfg.split!r} split of {cfg.mixture_or_task_name!r} is empty.")
  data.log_truncation(counter, cfg.split, set())
  return models.summarize_metrics(jax.device_get(total))


def _iterator_prefix(model_dir: str, step: int) -> str:
  return os.path.join(model_dir, "data_iterators", f"step_{step}", f"process_{jax.process_index()}")


def _t5x_params(path: str, abstract_params, load: str):
  """The parameters of a t5x checkpoint at `path` (None if it is not one), read sharded.

  With load='all_but_embedding' the embeddings are None (filled in randomly by the caller).
  """
  try:
    from synthetic_pretraining.stats_init import sources  # pylint: disable=import-outside-toplevel
    from synthetic_pretraining.stats_init import transform  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  if not sources.is_t5x_checkpoint(path):
    return None
  source = sources.open_source(path)
  target = transform.abstract_of(abstract_params)
  transform.check_architecture(source.metadata(), target, source.description)
  wanted = {p: t for p, t in target.items() if load == "all" or p not in EMBEDDING_PARAMS}
  arrays = source.read(wanted)
  logging.info("Initial parameters from the t5x checkpoint %s (step %d).", path, source.step)
  return traverse_util.unflatten_dict({p: arrays.get(p) for p in target}, sep="/")


@gin.configurable
def train(*, model: models.EncoderDecoderModel = gin.REQUIRED,
          train_dataset_cfg: data.DatasetConfig = gin.REQUIRED,
          eval_dataset_cfg: Optional[data.DatasetConfig] = None,
          infer_eval_cfg: Optional[inference.InferenceConfig] = None,
          partitioner: Optional[partitioning.PjitPartitioner] = None,
          model_dir: str = gin.REQUIRED, total_steps: int = gin.REQUIRED,
          eval_period: int = 1000, eval_steps: Optional[int] = 20,
          checkpoint_period: int = 1000, keep_checkpoints: Optional[int] = None,
          seed: int = 42, initial_checkpoint_path: Optional[str] = None,
          initial_checkpoint_load: str = "all",
          param_initializer: Optional[Callable] = None,
          log_period: int = 100, async_checkpoints: bool = True) -> Dict[str, float]:
  """Trains `model` and returns the last train and eval metrics.

  Args (gin, t5x macros in brackets):
    model: the model (MODEL). train_dataset_cfg / eval_dataset_cfg: data (MIXTURE_OR_TASK_NAME,
      TASK_FEATURE_LENGTHS, BATCH_SIZE); no eval when eval_dataset_cfg is None.
    infer_eval_cfg: decode and score a split every eval_period (inference eval), or None.
    partitioner: mesh and sharding rules (`PjitPartitioner.num_partitions`).
    model_dir: checkpoints, config.gin, TensorBoard events, metrics.jsonl (MODEL_DIR). A directory
      that already holds checkpoints is resumed from the latest.
    total_steps: train until this step (TRAIN_STEPS). eval_period (EVAL_PERIOD), eval_steps
      (batches per eval; None = the whole split), checkpoint_period, keep_checkpoints (None: all).
    seed: decides initialisation, dropout and the data order.
    initial_checkpoint_path: start from these parameters with a fresh optimizer
      (INITIAL_CHECKPOINT_PATH); initial_checkpoint_load: 'all' or 'all_but_embedding'.
    param_initializer: optional `fn(random_params, *, partitioner, seed) -> params` building the
      initial parameters (statistics-only initialisation, custom values).
    log_period: steps between log lines / metric records.
  """
  partitioner = partitioner or partitioning.PjitPartitioner()
  model_dir = os.path.abspath(model_dir) if "://" not in model_dir else model_dir
  trainer = Trainer(model, partitioner, optimizers.create_optimizer(), seed)
  ckpts = checkpoints.TrainingCheckpoints(model_dir, keep=keep_checkpoints,
                                          async_save=async_checkpoints)
  writer = metrics_writer.MetricsWriter(model_dir)
  meta = {"model": dataclasses.asdict(model.config), "seed": seed}

  counter = data.TruncationCounter(train_dataset_cfg.task_feature_lengths)
  train_ds = data.build_dataset(train_dataset_cfg, seed=seed, shard_info=data.shard_info(),
                                num_epochs=None, counter=counter)
  iterator = data.CheckpointableIterator(train_ds)

  state = _initial_state(trainer, ckpts, model_dir, iterator, initial_checkpoint_path,
                         initial_checkpoint_load, param_initializer)
  _write_config(model_dir)
  if state.step >= total_steps:
    logging.info("MODEL_DIR %s is already at step %d >= TRAIN_STEPS=%d; nothing to do.",
                 model_dir, state.step, total_steps)

  def save():
    ckpts.save(state.step, state.params, state.opt_state, meta)
    iterator.save(_iterator_prefix(model_dir, state.step))
    checkpoints.prune_data_iterators(model_dir, ckpts.all_steps() + [state.step])

  tokens_per_step = train_dataset_cfg.batch_size * sum(train_dataset_cfg.task_feature_lengths.values())
  bar = _progress(total_steps, state.step)
  warned, last = set(), {}
  window, window_start, window_time = None, state.step, time.time()
  try:
    while state.step < total_steps:
      batch = data.to_global_batch(next(iterator), partitioner)
      window = _add(window, trainer.train_step(state, batch))
      at_end = state.step == total_steps
      if state.step % log_period == 0 or at_end:
        elapsed = max(time.time() - window_time, 1e-9)
        last = models.summarize_metrics(jax.device_get(window))
        last["tokens_per_second"] = tokens_per_step * (state.step - window_start) / elapsed
        last["steps_per_second"] = (state.step - window_start) / elapsed
        last.update({f"truncation/{k}": v for k, v in
                     data.log_truncation(counter, train_dataset_cfg.split, warned).items()})
        writer.write(state.step, "train", last, split=train_dataset_cfg.split,
                     task=train_dataset_cfg.mixture_or_task_name)
        if bar is None and jax.process_index() == 0:
          logging.info("step %d/%d  loss %.4f  accuracy %.4f  %.0f tokens/s", state.step,
                       total_steps, last["loss"], last["accuracy"], last["tokens_per_second"])
        window, window_start, window_time = None, state.step, time.time()
      if bar is not None:
        bar.update(1)
        if last:
          bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['accuracy']:.3f}",
                          tok_s=f"{last['tokens_per_second']:.0f}", refresh=False)
      if eval_dataset_cfg is not None and (state.step % eval_period == 0 or at_end):
        metrics = evaluate(trainer, state.params, eval_dataset_cfg, seed=seed, max_batches=eval_steps)
        last.update({f"eval/{k}": v for k, v in metrics.items()})
        writer.write(state.step, "eval", metrics, split=eval_dataset_cfg.split,
                     task=eval_dataset_cfg.mixture_or_task_name)
        logging.info("eval at step %d: loss %.4f  accuracy %.4f", state.step, metrics["loss"],
                     metrics["accuracy"])
      if infer_eval_cfg is not None and (state.step % eval_period == 0 or at_end):
        results = inference.evaluate(model, state.params, partitioner, infer_eval_cfg)
        inference.write_results(writer, model_dir, state.step, infer_eval_cfg, results)
        for task_name, (metrics, _) in results.items():
          last.update({f"infer/{task_name}/{k}": v for k, v in metrics.items()})
      if state.step % checkpoint_period == 0 or at_end:
        save()
  except KeyboardInterrupt:
    # Keep the work done so far: rerunning the same command resumes from here.
    logging.warning("Interrupted at step %d; saving a checkpoint before exiting.", state.step)
    if state.step not in ckpts.all_steps():
      save()
    raise
  finally:
    if bar is not None:
      bar.close()
    ckpts.close()
    writer.close()
  return last


def _initial_state(trainer: Trainer, ckpts, model_dir, iterator, initial_checkpoint_path,
                   initial_checkpoint_load, param_initializer) -> TrainState:
  """Resumes from MODEL_DIR's latest checkpoint, else builds the initial parameters."""
  latest = ckpts.latest_step()
  if latest is not None:
    logging.info("Resuming from %s", checkpoints.step_dir(model_dir, latest))
    params, opt_state = ckpts.restore(latest, trainer.abstract_params, trainer.abstract_opt_state)
    prefix = _iterator_prefix(model_dir, latest)
    if os.path.exists(prefix + ".index"):
      iterator.restore(prefix)
    else:
      logging.warning("No saved data position for step %d; skipping %d batches instead.", latest,
                      latest)
      for _ in range(latest):
        next(iterator)
    return TrainState(latest, params, opt_state)
  if initial_checkpoint_path:
    logging.info("Initial parameters from %s (%s)", initial_checkpoint_path, initial_checkpoint_load)
    params = trainer.params_from_checkpoint(initial_checkpoint_path, initial_checkpoint_load)
  else:
    params = trainer.random_params()
  if param_initializer is not None:
    params = param_initializer(params, partitioner=trainer.partitioner, seed=trainer.seed)
  return TrainState(0, params, trainer.init_opt_state(params))


def _write_config(model_dir: str) -> None:
  if jax.process_index() == 0:
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.gin"), "w") as f:
      f.write(gin.config_str())


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
  trainer = Trainer(model, partitioner, optimizers.create_optimizer(), seed)
  params = trainer.params_from_checkpoint(checkpoint_path)
  step_dir = (checkpoint_path if checkpoints.is_checkpoint_dir(checkpoint_path)
              else checkpoints.latest_checkpoint_step_dir(checkpoint_path))
  step = int(checkpoints.read_meta(step_dir).get("step", 0))
  metrics = evaluate(trainer, params, dataset_cfg, seed=seed, max_batches=eval_steps)
  writer = metrics_writer.MetricsWriter(output_dir)
  writer.write(step, "eval", metrics, split=dataset_cfg.split, task=dataset_cfg.mixture_or_task_name)
  writer.close()
  _write_config(output_dir)
  logging.info("%s at step %d on %s/%s: %s", checkpoint_path, step, dataset_cfg.mixture_or_task_name,
               dataset_cfg.split, metrics)
  return metrics
