"""Training: `train()` (t5x's train binary's spine), its gin configs and one run's state.

The loop takes a batch, runs one pure step (`state, sums = trainer.train_step(state, batch)`),
then runs whichever periodic actions are due (`actions`): log, training eval, inference eval,
the extra actions from gin, checkpoint (each at its period, all of them at the last step).
Signals only ask the loop to stop between two steps (`interrupts`), so what is saved is always a
finished step with its own data position.

Determinism: parameters come from `seed`, dropout at step s from fold_in(dropout key, s), data
from the seeded SeqIO pipeline whose iterator position is saved with every checkpoint; so a run
resumed from its checkpoint continues exactly as an uninterrupted one.
"""
import dataclasses
import logging
import time
from typing import Callable, Dict, Optional, Sequence

import gin
import jax
from flax import traverse_util

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.data import prefetch
from synthetic_pretraining.model import models
from synthetic_pretraining.model import optimizers
from synthetic_pretraining.model import partitioning
from synthetic_pretraining.training import actions as actions_lib
from synthetic_pretraining.training import evaluation
from synthetic_pretraining.training import host_memory
from synthetic_pretraining.training import inference
from synthetic_pretraining.training import interrupts
from synthetic_pretraining.training import loop
from synthetic_pretraining.training import metrics_writer
from synthetic_pretraining.training import model_info
from synthetic_pretraining.training import preflight
from synthetic_pretraining.training import run_dir
from synthetic_pretraining.training import run_lock
from synthetic_pretraining.training import run_record
from synthetic_pretraining.training import stages as stages_lib
from synthetic_pretraining.training.compiled_steps import (NO_STEP, InFlight, Trainer, TrainState,
                                                           add_sums)

# Parameters left out by INITIAL_CHECKPOINT_LOAD = 'all_but_embedding' (the paper's research mode).
# A decoder-only model (t5x's layout) has its embedding under decoder/.
EMBEDDING_PARAMS = ("token_embedder/embedding", "decoder/logits_dense/kernel",
                    "decoder/token_embedder/embedding")


class NonFiniteLossError(errors.UsageError, RuntimeError):
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
          train_dataset_cfg: pipeline.DatasetConfig = gin.REQUIRED,
          eval_dataset_cfg: Optional[pipeline.DatasetConfig] = None,
          infer_eval_cfg: Optional[inference.InferenceConfig] = None,
          partitioner: Optional[partitioning.PjitPartitioner] = None,
          model_dir: str = gin.REQUIRED, total_steps: int = gin.REQUIRED, seed: int = 42,
          log_period: int = 100, eval_cfg: Optional[EvalConfig] = None,
          checkpoint_cfg: Optional[CheckpointConfig] = None,
          init_cfg: Optional[InitConfig] = None, actions: Sequence = (),
          stages: Sequence[stages_lib.Stage] = ()) -> Dict[str, float]:
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
    actions: extra periodic actions (`actions.TeacherForcedEval` or any object with `name`,
      `due(step, at_end)` and `__call__(run)`), run after the built-in evals, before the
      checkpoint (`train.actions = [...]` in gin; see `actions`).
    stages: a staged schedule (`stages.Stage`s: this data for N steps, then that, ...; see
      `stages`); empty: train_dataset_cfg for every step. With stages, train records carry the
      stage, a record and a checkpoint are also written at the end of each stage, and run.json
      counts each stage's tokens.

  Raises:
    interrupts.TrainingInterrupted: after SIGINT/SIGTERM, once the last finished step is saved.
    NonFiniteLossError: the loss became NaN or inf (that step is not saved).
  """
  eval_cfg, checkpoint_cfg = eval_cfg or EvalConfig(), checkpoint_cfg or CheckpointConfig()
  init_cfg = init_cfg or InitConfig()
  check_settings(total_steps=total_steps, seed=seed, log_period=log_period, eval_cfg=eval_cfg,
                 checkpoint_cfg=checkpoint_cfg, init_cfg=init_cfg)
  schedule = stages_lib.schedule(stages, train_dataset_cfg) if stages else None
  train_cfgs = [s.cfg for s in schedule] if schedule else [train_dataset_cfg]
  partitioner = partitioner or partitioning.PjitPartitioner()
  if infer_eval_cfg is not None:
    inference.check_config(infer_eval_cfg, partitioner)
  preflight.check_writable(model_dir, "MODEL_DIR")  # before the path is used at all
  model_dir = paths.as_str(model_dir)
  resuming = bool(orbax_format.checkpoint_steps(model_dir))
  if resuming and not schedule:
    stages_lib.check_resumable_without_stages(model_dir)
  extra_datasets = [getattr(a, "dataset_cfg", None) for a in actions]
  abstract_params = partitioning.abstract_params(model, partitioner)
  initial_checkpoint = preflight.check_run(  # bad input ends here, before anything is created
      partitioner=partitioner, datasets=(*train_cfgs, eval_dataset_cfg, *extra_datasets),
      output_dirs=[(model_dir, "MODEL_DIR")], abstract_params=abstract_params,
      initial_checkpoint=None if resuming else init_cfg.checkpoint_path,
      model_config=getattr(model, "config", None))
  check_initializer = getattr(init_cfg.param_initializer, "check", None)
  if check_initializer is not None and not resuming:  # e.g. a stats.json that does not fit
    check_initializer(abstract_params)
  run_lock.check_free(model_dir)  # a MODEL_DIR in use is refused before any data is read
  if schedule:
    stages_lib.warn_if_unreached(schedule, total_steps)
    batches = stages_lib.StagedBatches(schedule, seed, partitioner), None
  else:
    batches = train_batches(train_dataset_cfg, seed, partitioner)
  if not resuming:
    # The first batches are read now: a data error the preflight could not see (a malformed
    # line past the head of a task file) ends here, before MODEL_DIR is created.
    batches[0].peek()
  run_lock.acquire(model_dir)  # one writer per MODEL_DIR (process 0); freed when the binary ends
  run = TrainingRun(model, train_dataset_cfg, eval_dataset_cfg, infer_eval_cfg, partitioner,
                    model_dir, total_steps, seed, eval_cfg, checkpoint_cfg, init_cfg,
                    initial_checkpoint, batches=batches)
  due_actions = actions_lib.builtin_actions(run, log_period=log_period, extra=actions,
                                            stage_ends=[s.end for s in schedule or ()][:-1])
  try:
    with interrupts.stop_requests() as stops:
      while run.state.step < total_steps:
        signal_name = stops.should_stop(run.state.step)
        if signal_name is not None:
          run.stop(signal_name)
        run.step()
        at_end = run.state.step == total_steps
        for action in due_actions:
          if action.due(run.state.step, at_end):
            action(run)
  finally:
    run.close()
  return run.last


def check_settings(*, total_steps, seed, log_period, eval_cfg: EvalConfig,
                   checkpoint_cfg: CheckpointConfig, init_cfg: InitConfig) -> None:
  """The numbers of a run are in range (one line naming the macro and the valid range)."""
  preflight.check_count(total_steps, "TRAIN_STEPS")
  preflight.check_int(seed, "SEED")
  preflight.check_count(log_period, "LOG_PERIOD")
  preflight.check_count(eval_cfg.period, "EVAL_PERIOD")
  preflight.check_count(eval_cfg.steps, "EVAL_STEPS", allow_none=True)
  preflight.check_count(checkpoint_cfg.period, "CHECKPOINT_PERIOD")
  preflight.check_count(checkpoint_cfg.keep, "KEEP_CHECKPOINTS", allow_none=True)
  if init_cfg.checkpoint_load not in ("all", "all_but_embedding"):
    raise errors.UsageError("INITIAL_CHECKPOINT_LOAD must be 'all' or 'all_but_embedding', "
                            f"got {init_cfg.checkpoint_load!r}.")


def train_batches(cfg: pipeline.DatasetConfig, seed: int, partitioner):
  """(the training batches: a `prefetch.DevicePrefetcher` of global batches whose position is
  saved with each checkpoint, the `pipeline.TruncationCounter` of its examples)."""
  counter = pipeline.TruncationCounter(cfg.task_feature_lengths)
  # Batches go to the devices in a background thread; the saved position stays the step's.
  iterator = prefetch.DevicePrefetcher(
      pipeline.CheckpointableIterator(pipeline.build_dataset(
          cfg, seed=seed, shard_info=pipeline.shard_info(), num_epochs=None, counter=counter)),
      lambda batch: pipeline.to_global_batch(batch, partitioner))
  return iterator, counter


class TrainingRun:
  """The state of one `train` call and its built-in actions (the loop itself is in `train`).

  Actions read `state` (step, params, opt_state), `trainer`, `writer`, `model_dir`, `seed` and
  `last` (the latest metrics), and wrap work that is not training in `timed`.
  """

  def __init__(self, model, train_cfg: pipeline.DatasetConfig, eval_dataset_cfg, infer_eval_cfg,
               partitioner, model_dir: str, total_steps: int, seed: int, eval_cfg: EvalConfig,
               checkpoint_cfg: CheckpointConfig, init_cfg: InitConfig,
               initial_checkpoint: Optional[resolver.ResolvedCheckpoint] = None,
               batches=None):
    self.model, self.train_cfg, self.model_dir, self.seed = model, train_cfg, model_dir, seed
    self.eval_dataset_cfg, self.infer_eval_cfg = eval_dataset_cfg, infer_eval_cfg
    self.eval_cfg, self.checkpoint_cfg = eval_cfg, checkpoint_cfg
    optimizer, self.schedule = optimizers.create_optimizer_and_schedule()
    self.trainer = Trainer(model, partitioner, optimizer, seed)
    self.ckpts = orbax_format.TrainingCheckpoints(model_dir, keep=checkpoint_cfg.keep,
                                                 async_save=checkpoint_cfg.async_save,
                                                 restore_fallback=checkpoint_cfg.restore_fallback)
    self.writer = metrics_writer.MetricsWriter(model_dir)
    self.meta = {"model": dataclasses.asdict(model.config), "seed": seed}
    self.iterator, self.counter = batches or train_batches(train_cfg, seed, partitioner)
    # A staged run's data (stages.StagedBatches), None for one dataset throughout.
    self.staged = self.iterator if isinstance(self.iterator, stages_lib.StagedBatches) else None
    self.total_steps, self.init_cfg = total_steps, init_cfg
    self.state = _initial_state(self.trainer, self.ckpts, model_dir, self.iterator, init_cfg,
                                initial_checkpoint)
    self.writer.truncate_after(self.state.step)  # one metrics.jsonl record per step on resume
    run_dir.write_config(model_dir)
    self.write_run_record()
    model_info.write(model_dir, self.trainer.abstract_params, model.logical_axes())
    self.writer.write_text("config", gin.config_str())
    if self.state.step >= total_steps:
      logging.info("MODEL_DIR %s is already at step %d >= TRAIN_STEPS=%d; nothing to do.",
                   model_dir, self.state.step, total_steps)
    self.inference = None
    self.window = loop.MetricWindow(add_sums, self.state.step)
    host_memory.start_run()
    self.in_flight = InFlight()  # steps dispatched ahead of the host: at most two
    self.progress = loop.Progress(total_steps, self.state.step)
    self.last: Dict[str, float] = {}
    self.saved_step: Optional[int] = self.ckpts.latest_step()
    self.checkpoint_seconds: Optional[float] = None
    self._warned: set = set()
    self._compilation_logged = False

  def write_run_record(self, token_counts=None) -> None:
    """(Re)writes run.json; a staged run's token counts change as it goes (every process calls
    this together: the counts are summed over the processes)."""
    staged = {}
    if self.staged is not None:
      counts = self.staged.token_counts() if token_counts is None else token_counts
      staged = dict(task=stages_lib.record_task(self.staged.stages),
                    stages=self.staged.run_record_stages(self.state.step, counts))
    if jax.process_index() == 0:
      cfg = self.staged.stages[-1].cfg if self.staged is not None else self.train_cfg
      run_record.write(self.model_dir, train_dataset_cfg=cfg, seed=self.seed,
                       total_steps=self.total_steps,
                       initial_checkpoint_path=self.init_cfg.checkpoint_path,
                       initial_checkpoint_load=self.init_cfg.checkpoint_load,
                       param_initializer=self.init_cfg.param_initializer, **staged)

  def _trained_data(self):
    """(DatasetConfig, TruncationCounter, warned set) of the data of the last finished step."""
    if self.staged is None:
      return self.train_cfg, self.counter, self._warned
    stage = self.staged.trained(self.state.step)
    return stage.cfg, self.staged.counter(stage.index), self.staged.warned[stage.index]

  def step(self) -> None:
    batch = next(self.iterator)
    compiled_before = self.trainer.compilation_seconds
    self.state, sums = self.trainer.train_step(self.state, batch)
    host_memory.after_step()  # the cap on memory kept for the next step (pooled mode)
    self.window.add(sums)
    self.in_flight.add(self.window.sums)
    if self.trainer.compilation_seconds != compiled_before:
      self.window.pause(self.trainer.compilation_seconds)
    self.progress.step()

  def timed(self, fn):
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
    cfg, counter, warned = self._trained_data()
    values.update(loop.timing_metrics(steps, seconds, cfg.batch_size, cfg.task_feature_lengths))
    values.update(self.iterator.metrics(seconds))  # timing/input_wait_fraction
    if self.trainer.compilation_seconds and not self._compilation_logged:
      values["timing/compilation_seconds"] = self.trainer.compilation_seconds
      self._compilation_logged = True
    if self.checkpoint_seconds is not None:
      values["timing/checkpoint_seconds"] = self.checkpoint_seconds
      self.checkpoint_seconds = None
    values.update({f"truncation/{k}": v for k, v in pipeline.log_truncation(
        counter, cfg.split, warned).items()})
    if self.staged is not None:
      counts = self.staged.token_counts()
      values.update(self.staged.record_values(step, counts))
      self.write_run_record(counts)
    self.writer.write(step, "train", values, split=cfg.split, task=cfg.mixture_or_task_name)
    self.last.update(values)
    self.progress.record(step, values)
    self.window.reset(step)

  def train_eval(self) -> None:
    def run():
      cfg = self.eval_dataset_cfg
      metrics = evaluation.evaluate(self.trainer, self.state.params, cfg, seed=self.seed,
                                    max_batches=self.eval_cfg.steps)
      self.last.update({f"eval/{k}": v for k, v in metrics.items()})
      # A staged run's evals say which stage the parameters come from and the tokens so far.
      stage = ({} if self.staged is None else
               self.staged.record_values(self.state.step, self.staged.token_counts()))
      self.writer.write(self.state.step, "eval", {**metrics, **stage}, split=cfg.split,
                        task=cfg.mixture_or_task_name)
      logging.info("eval at step %d: loss/token %.4f  accuracy %.4f", self.state.step,
                   metrics["loss_per_nonpadding_target_token"], metrics["accuracy"])
    self.timed(run)

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
    self.timed(run)

  def checkpoint(self) -> None:
    if self.saved_step == self.state.step:
      return
    if self.window.sums is not None:  # never write a checkpoint of NaN parameters
      self._check_finite({"nonfinite_step": jax.device_get(self.window.sums["nonfinite_step"])})
    state = self.state
    self.checkpoint_seconds = self.timed(lambda: self.ckpts.save(
        state.step, state.params, state.opt_state, self.meta, iterator=self.iterator))
    self.saved_step = state.step
    if self.staged is not None:
      self.write_run_record()

  def _check_finite(self, sums) -> None:
    bad = int(sums["nonfinite_step"])
    if bad != NO_STEP:
      self.ckpts.wait()
      last = (orbax_format.step_dir(self.model_dir, self.saved_step) if self.saved_step is not None
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
        signal_name, self.state.step, orbax_format.step_dir(self.model_dir, self.state.step))

  def close(self) -> None:
    self.iterator.close()
    self.progress.close()
    self.ckpts.close()
    self.writer.close()


def _initial_state(trainer: Trainer, ckpts, model_dir, iterator, init_cfg: InitConfig,
                   initial_checkpoint: Optional[resolver.ResolvedCheckpoint]) -> TrainState:
  """Resumes from MODEL_DIR's newest intact checkpoint, else builds the initial parameters."""
  latest = ckpts.latest_intact_step()
  if latest is not None:
    logging.info("Resuming from %s", orbax_format.step_dir(model_dir, latest))
    params, opt_state = ckpts.restore(latest, trainer.abstract_params, trainer.abstract_opt_state,
                                      iterator=iterator)
    return TrainState(latest, params, opt_state)
  if init_cfg.checkpoint_path:
    logging.info("Initial parameters from %s (%s)", init_cfg.checkpoint_path,
                 init_cfg.checkpoint_load)
    params = params_from_checkpoint(trainer, initial_checkpoint or init_cfg.checkpoint_path,
                                    init_cfg.checkpoint_load)
  else:
    params = trainer.random_params()
  if init_cfg.param_initializer is not None:
    params = init_cfg.param_initializer(params, partitioner=trainer.partitioner, seed=trainer.seed)
  return TrainState(0, params, trainer.init_opt_state(params))


def params_from_checkpoint(trainer: Trainer, checkpoint, load: str = "all"):
  """Parameters of `checkpoint` (a path or a resolved checkpoint) for `trainer`'s model; with
  load='all_but_embedding' the embedding stays random."""
  if load not in ("all", "all_but_embedding"):
    raise errors.UsageError(
        f"INITIAL_CHECKPOINT_LOAD must be 'all' or 'all_but_embedding', got {load!r}.")
  skip = EMBEDDING_PARAMS if load == "all_but_embedding" else ()
  params, _ = resolver.read_params(checkpoint, trainer.abstract_params, skip=skip)
  if not skip:
    return params
  # Every parameter left out (None) is taken from the random initialisation.
  flat = traverse_util.flatten_dict(params, sep="/")
  fresh = traverse_util.flatten_dict(trainer.random_params(), sep="/")
  merged = {k: (fresh[k] if v is None else v) for k, v in flat.items()}
  return traverse_util.unflatten_dict(merged, sep="/")
