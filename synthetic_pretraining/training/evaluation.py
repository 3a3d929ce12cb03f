"""Teacher-forced evaluation: metrics of parameters over a split, during training or of a
checkpoint (`evaluate_checkpoint`, the eval binary's entry with gin/runs/eval.gin)."""
import logging
import time
from typing import Dict, Optional

import gin
import jax
import numpy as np

from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.model import models
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.training import metrics_writer
from synthetic_pretraining.training import preflight
from synthetic_pretraining.training import run_dir
from synthetic_pretraining.training import compiled_steps

PROGRESS_SECONDS = 30.0  # between the eval binary's progress lines


def batches_in_step(iterator, element_spec, local_batch: int, max_batches: Optional[int]):
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
    yield pipeline.pad_batch(batch, local_batch)
    count += 1


def evaluate(trainer: compiled_steps.Trainer, params, cfg: pipeline.DatasetConfig, *, seed: int,
             max_batches: Optional[int], progress: bool = False) -> Dict[str, float]:
  """Teacher-forced metrics over the eval split (or its first `max_batches` batches); with
  `progress` (the eval binary) a log line every PROGRESS_SECONDS and one saying what was scored."""
  counter = pipeline.TruncationCounter(cfg.task_feature_lengths)
  ds = pipeline.build_dataset(cfg, seed=seed, shard_info=pipeline.shard_info(), num_epochs=1,
                              counter=counter, drop_remainder=False)
  local_batch = cfg.batch_size // jax.process_count()
  total, batches, last_report = None, 0, time.time()
  in_flight = compiled_steps.InFlight()
  for batch in batches_in_step(pipeline.CheckpointableIterator(ds), ds.element_spec, local_batch,
                               max_batches):
    batch = pipeline.to_global_batch(batch, trainer.partitioner)
    total = compiled_steps.add_sums(total, trainer.eval_sums(params, batch))
    in_flight.add(total)
    batches += 1
    if progress and time.time() - last_report > PROGRESS_SECONDS:
      last_report = time.time()
      logging.info("eval: %d batch(es) of %d scored%s", batches, cfg.batch_size,
                   f" of {max_batches}" if max_batches else " (the whole split)")
  if progress:
    logging.info("eval: scored %d batch(es) of up to %d examples of %s/%s%s.", batches,
                 cfg.batch_size, cfg.mixture_or_task_name, cfg.split,
                 " (the first batches: EVAL_STEPS)" if max_batches else " (the whole split)")
  if total is None:
    raise errors.UsageError(f"The {cfg.split!r} split of {cfg.mixture_or_task_name!r} is empty: "
                            "nothing to evaluate.")
  pipeline.log_truncation(counter, cfg.split, set())
  return models.summarize_metrics(jax.device_get(total))


@gin.configurable
def evaluate_checkpoint(*, model: models.EncoderDecoderModel = gin.REQUIRED,
                        checkpoint_path: str = gin.REQUIRED,
                        dataset_cfg: pipeline.DatasetConfig = gin.REQUIRED,
                        output_dir: str = gin.REQUIRED,
                        partitioner: Optional[partitioning.PjitPartitioner] = None,
                        eval_steps: Optional[int] = None, seed: int = 42) -> Dict[str, float]:
  """Teacher-forced metrics of one checkpoint on a split, written to `output_dir` (eval.gin)."""
  preflight.check_count(eval_steps, "EVAL_STEPS", allow_none=True)
  partitioner = partitioner or partitioning.PjitPartitioner()
  trainer = compiled_steps.Trainer(model, partitioner, optimizer=None, seed=seed)
  found = preflight.check_run(partitioner=partitioner, datasets=(dataset_cfg,),
                              output_dirs=[(output_dir, "EVAL_OUTPUT_DIR")],
                              initial_checkpoint=checkpoint_path,
                              abstract_params=trainer.abstract_params,
                              checkpoint_flag="CHECKPOINT_PATH",
                              model_config=getattr(model, "config", None))
  params, step = resolver.read_params(found, trainer.abstract_params)
  metrics = evaluate(trainer, params, dataset_cfg, seed=seed, max_batches=eval_steps,
                     progress=True)
  writer = metrics_writer.MetricsWriter(output_dir)
  writer.write(step, "eval", metrics, split=dataset_cfg.split, task=dataset_cfg.mixture_or_task_name)
  writer.close()
  run_dir.write_config(output_dir)
  logging.info("%s at step %d on %s/%s: %s", checkpoint_path, step, dataset_cfg.mixture_or_task_name,
               dataset_cfg.split, metrics)
  return metrics


@gin.configurable("evaluate_checkpoint", module="synthetic_pretraining.training.trainer")
def evaluate_checkpoint_by_former_name(**bindings) -> Dict[str, float]:
  """The eval binary's entry: `evaluate_checkpoint`, also under its name before the floor plan.

  A copy of the former gin/runs/eval.gin binds `trainer.evaluate_checkpoint.*`; those bindings
  arrive here and are passed on, and `evaluation.evaluate_checkpoint.*` bindings fill the rest.
  """
  return evaluate_checkpoint(**bindings)
