"""Staged schedules: one run trains on one dataset for its first steps, then on another, ...

    trainer.train.stages = [@stage1/stages.Stage(), @stage2/stages.Stage()]
    stage1/stages.Stage.dataset_cfg = @stage1/data.DatasetConfig()   # e.g. shuffle_dyck
    stage1/stages.Stage.steps = 1000
    stage2/stages.Stage.dataset_cfg = None      # the run's train data (MIXTURE_OR_TASK_NAME)

(gin/runs/stage_pretrain.gin spells this with macros). Every stage but the last ends after its
`steps` (or `tokens`); the last runs until TRAIN_STEPS, which may also end a run inside an
earlier stage (to continue it later with a larger TRAIN_STEPS, as any run). Parameters, optimizer
state and learning-rate schedule run on across the switch: only the data changes.

Each stage reads its own `data.DatasetConfig` with its seed (the config's `seed`, else the run's
SEED), from its beginning. A checkpoint saves the position of the stage that trains the next step
(and which stage that is), so a run stopped before, at or after a switch resumes bitwise.

Token accounting (per stage; run.json's `stages`, the train records' `tokens_seen*`):
  tokens         non-padding tokens the model reads: the encoder's inputs and the decoder's
                 targets (encoder-decoder), the whole row, prefix and targets (decoder-only);
  target_tokens  the tokens scored by the loss (loss weight > 0).
Both count every process's rows of the batches trained so far; they are saved with each
checkpoint's data position, so a resumed run counts on from there.
"""
import dataclasses
import json
import logging
import math
from typing import Dict, List, Optional, Sequence

import gin
import jax
import numpy as np

from synthetic_pretraining import errors
from synthetic_pretraining import paths
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.data import prefetch

# Beside each process's data position: which stage it belongs to and that stage's token counts.
STAGE_SUFFIX = ".stage.json"
# How run.json names the task of a staged run: its stages' tasks in order.
TASK_SEPARATOR = "->"


class StageError(errors.UsageError):
  """A staged schedule that cannot run, or a checkpoint that does not fit the schedule."""


@gin.configurable
@dataclasses.dataclass
class Stage:
  """One stage of a staged schedule (`trainer.train.stages`; see the module docstring).

  Attributes:
    dataset_cfg: the stage's data (a `data.DatasetConfig`); None: the run's train data
      (`trainer.train.train_dataset_cfg`, i.e. MIXTURE_OR_TASK_NAME).
    steps: train steps of this stage. Every stage but the last gives `steps` or `tokens`; the
      last gives neither and runs until TRAIN_STEPS.
    tokens: instead of `steps`, a token budget: the stage takes ceil(tokens / (BATCH_SIZE x the
      sum of TASK_FEATURE_LENGTHS)) steps, i.e. counts token slots, padding included (the
      non-padding tokens it trained on are in run.json).
  """
  dataset_cfg: Optional[pipeline.DatasetConfig] = None
  steps: Optional[int] = None
  tokens: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class ScheduledStage:
  """A stage placed on the step axis: it trains steps start + 1 .. end (end None: to the end)."""
  index: int
  cfg: pipeline.DatasetConfig
  start: int
  end: Optional[int]

  @property
  def task(self) -> str:
    return self.cfg.mixture_or_task_name

  def steps_done(self, step: int) -> int:
    """How many of this stage's steps are among the first `step` steps of the run."""
    return max(min(step, self.end if self.end is not None else step) - self.start, 0)


def _name(index: int, stage: Stage, cfg) -> str:
  task = getattr(cfg, "mixture_or_task_name", None)
  return f"Stage {index + 1} of trainer.train.stages" + (f" ({task})" if task else "")


def _check_count(value, what: str) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise StageError(f"{what} must be a positive integer, got {value!r}.")


def schedule(stages: Sequence[Stage],
             train_dataset_cfg: Optional[pipeline.DatasetConfig]) -> List[ScheduledStage]:
  """The stages on the step axis; a one-line `StageError` for a schedule that cannot run."""
  out, start = [], 0
  for index, stage in enumerate(stages):
    if not isinstance(stage, Stage):
      raise StageError(f"trainer.train.stages[{index}] must be a stages.Stage(), got "
                       f"{stage!r:.200}.")
    cfg = stage.dataset_cfg if stage.dataset_cfg is not None else train_dataset_cfg
    name = _name(index, stage, cfg)
    if not isinstance(cfg, pipeline.DatasetConfig):
      raise StageError(f"{name} has no data: set its dataset_cfg or trainer.train."
                       "train_dataset_cfg.")
    last = index == len(stages) - 1
    if last:
      if stage.steps is not None or stage.tokens is not None:
        raise StageError(f"{name} is the last stage, which runs until TRAIN_STEPS: leave its "
                         f"steps and tokens unset (got steps={stage.steps!r}, "
                         f"tokens={stage.tokens!r}).")
      out.append(ScheduledStage(index, cfg, start, None))
      break
    if (stage.steps is None) == (stage.tokens is None):
      raise StageError(f"{name} must give exactly one of steps and tokens (got "
                       f"steps={stage.steps!r}, tokens={stage.tokens!r}); only the last stage "
                       "runs until TRAIN_STEPS.")
    if stage.steps is not None:
      _check_count(stage.steps, f"{name}: steps")
      steps = stage.steps
    else:
      _check_count(stage.tokens, f"{name}: tokens")
      steps = math.ceil(stage.tokens / (cfg.batch_size * sum(cfg.task_feature_lengths.values())))
    out.append(ScheduledStage(index, cfg, start, start + steps))
    start += steps
  return out


def stage_at(stages: Sequence[ScheduledStage], step: int) -> ScheduledStage:
  """The stage that trains the step after `step` finished steps."""
  for stage in stages:
    if stage.end is None or step < stage.end:
      return stage
  raise AssertionError("the last stage has no end")


def record_task(stages: Sequence[ScheduledStage]) -> str:
  """The task name run.json gives a staged run: 'shuffle_dyck->natural_text'."""
  return TASK_SEPARATOR.join(s.task for s in stages)


def warn_if_unreached(stages: Sequence[ScheduledStage], total_steps: int) -> None:
  """A note when TRAIN_STEPS ends the run before its last stage (legal: it can go on later)."""
  unreached = [s for s in stages if s.start >= total_steps]
  if unreached:
    logging.warning("TRAIN_STEPS=%d ends this run before stage %d (%s) starts at step %d; a "
                    "later run with a larger TRAIN_STEPS in the same MODEL_DIR goes on.",
                    total_steps, unreached[0].index + 1, unreached[0].task, unreached[0].start)


def check_resumable_without_stages(model_dir: str) -> None:
  """A `StageError` when MODEL_DIR's newest checkpoint was written by a staged run: its data
  position is one stage's, which a run without `trainer.train.stages` would misread."""
  steps = orbax_format.checkpoint_steps(model_dir)
  if steps and paths.exists(paths.join(
      orbax_format.step_dir(model_dir, steps[-1]), orbax_format.ITERATOR_ITEM,
      f"process_{jax.process_index()}{STAGE_SUFFIX}")):
    raise StageError(f"MODEL_DIR={model_dir} holds a staged run (trainer.train.stages); resume "
                     "it with the schedule it was started with (e.g. gin/runs/stage_pretrain.gin "
                     "and the same STAGE1_* values).")


def batch_tokens(batch) -> np.ndarray:
  """[tokens, target_tokens] of one host batch (see the module docstring)."""
  read = sum(int(np.count_nonzero(batch[k])) for k in ("encoder_input_tokens",
                                                      "decoder_target_tokens") if k in batch)
  return np.array([read, int(np.count_nonzero(batch["decoder_loss_weights"]))], np.int64)


def global_sum(local: np.ndarray) -> np.ndarray:
  """`local` summed over the processes; every process must call it at the same point."""
  if jax.process_count() == 1:
    return local
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return np.asarray(multihost_utils.process_allgather(local)).sum(axis=0)


class StagedBatches:
  """The training batches of a staged run: one `prefetch.DevicePrefetcher` per stage, switched
  by the number of batches handed out, with the save/restore/peek/metrics/close of one.

  A stage's prefetcher is built when its first batch (or its position) is needed and closed
  when the run moves past it; only the stage that trains the next step is saved.
  """

  def __init__(self, stages: Sequence[ScheduledStage], seed: int, partitioner):
    self.stages, self._seed, self._partitioner = list(stages), seed, partitioner
    self.step = 0  # batches handed out: the finished steps, once the loop has trained them
    self._sources: Dict[int, prefetch.DevicePrefetcher] = {}  # the open stages' data
    self._counters: Dict[int, pipeline.TruncationCounter] = {}
    self._closed: set = set()
    self._waits = 0.0  # input waits of closed stages not yet reported by `metrics`
    self.local_tokens = np.zeros((len(self.stages), 2), np.int64)  # this process's counts
    self.warned = {s.index: set() for s in self.stages}  # truncation warnings given, per stage

  @property
  def current(self) -> ScheduledStage:
    """The stage of the next batch."""
    return stage_at(self.stages, self.step)

  def trained(self, step: int) -> ScheduledStage:
    """The stage that trained step `step` (1-based)."""
    return stage_at(self.stages, max(step - 1, 0))

  def counter(self, index: int) -> pipeline.TruncationCounter:
    """The truncation counts of a stage's examples read so far (kept after the stage closes)."""
    if index not in self._counters:
      self._counters[index] = pipeline.TruncationCounter(self.stages[index].cfg.task_feature_lengths)
    return self._counters[index]

  def _source(self, index: int):
    if index in self._closed:
      raise AssertionError(f"stage {index + 1} was closed; its data is not read again")
    if index not in self._sources:
      partitioner = self._partitioner
      self._sources[index] = prefetch.DevicePrefetcher(
          pipeline.CheckpointableIterator(pipeline.build_dataset(
              self.stages[index].cfg, seed=self._seed, shard_info=pipeline.shard_info(),
              num_epochs=None, counter=self.counter(index))),
          # Each batch brings its token counts, taken on the host where its rows are.
          lambda batch: (pipeline.to_global_batch(batch, partitioner), batch_tokens(batch)))
    return self._sources[index]

  def _close_before(self, index: int) -> None:
    for done in [i for i in self._sources if i < index]:
      prefetcher = self._sources.pop(done)
      self._waits += prefetcher.metrics()["timing/input_wait_seconds"]
      prefetcher.close()
      self._closed.add(done)

  def __iter__(self):
    return self

  def __next__(self):
    index = self.current.index
    self._close_before(index)
    batch, tokens = next(self._source(index))
    self.local_tokens[index] += tokens
    self.step += 1
    return batch

  def peek(self) -> None:
    """`DevicePrefetcher.peek` of the stage of the next batch."""
    self._source(self.current.index).peek()

  def metrics(self, seconds: Optional[float] = None) -> Dict[str, float]:
    """`DevicePrefetcher.metrics` over every stage read since the last call."""
    wait = self._waits + sum(p.metrics()["timing/input_wait_seconds"]
                             for p in self._sources.values())
    self._waits = 0.0
    elapsed = max(seconds if seconds is not None else 1e-9, 1e-9)
    return {"timing/input_wait_seconds": wait,
            "timing/input_wait_fraction": min(wait / elapsed, 1.0) if seconds else 0.0}

  def save(self, prefix: str) -> None:
    """Saves the position of the stage of the next batch at `prefix`, and beside it the stage
    and this process's token counts (`prefix` + '.stage.json')."""
    stage = self.current
    self._close_before(stage.index)
    self._source(stage.index).save(prefix)
    paths.write_atomic(prefix + STAGE_SUFFIX, json.dumps({
        "stage": stage.index, "task": stage.task, "step": self.step,
        "tokens": self.local_tokens.tolist()}) + "\n")

  def restore(self, prefix: str) -> None:
    """Restores what `save` wrote (before the first batch); a `StageError` when the checkpoint
    was not written by this schedule."""
    where = prefix + STAGE_SUFFIX
    if not paths.exists(where):
      raise StageError(f"The checkpoint at {paths.as_path(prefix).parent.parent} was written by "
                       "a run without trainer.train.stages; resume it without stages, or start "
                       "the staged run in a new MODEL_DIR.")
    saved = json.loads(paths.read_text(where))
    step = int(saved["step"])
    stage = stage_at(self.stages, step)
    tokens = np.asarray(saved["tokens"], np.int64)
    if (saved["stage"], saved["task"]) != (stage.index, stage.task) or (
        tokens.shape[0] > len(self.stages)):
      raise StageError(
          f"The checkpoint of step {step} in {paths.as_path(prefix).parent.parent} was saved in "
          f"stage {saved['stage'] + 1} ({saved['task']}), but trainer.train.stages now puts "
          f"step {step + 1} in stage {stage.index + 1} ({stage.task}); resume with the "
          "schedule the run was started with.")
    self.step = step
    self.local_tokens[:tokens.shape[0]] = tokens
    self._source(stage.index).restore(prefix)

  def close(self) -> None:
    for prefetcher in self._sources.values():
      prefetcher.close()

  # ------------------------------------------------------------------ accounting
  def token_counts(self) -> np.ndarray:
    """[stage, (tokens, target_tokens)] over every process (all processes call it together)."""
    return global_sum(self.local_tokens)

  def record_values(self, step: int, counts: np.ndarray) -> Dict[str, object]:
    """A train or eval record's stage fields at `step`: the stage that trained it and the
    tokens trained so far, in all and per task (`counts` from `token_counts`)."""
    stage = self.trained(step)
    values: Dict[str, object] = {"stage": stage.index, "stage_task": stage.task,
                                 "tokens_seen": int(counts[:, 0].sum())}
    for s in self.stages:
      if s.start < step:
        key = f"tokens_seen/{s.task}"
        values[key] = int(values.get(key, 0)) + int(counts[s.index, 0])
    return values

  def run_record_stages(self, step: int, counts: np.ndarray) -> List[Dict[str, object]]:
    """run.json's `stages`: each stage's task, split, planned steps and what it trained."""
    return [{"task": s.task, "split": s.cfg.split, "start_step": s.start, "end_step": s.end,
             "steps": s.steps_done(step), "tokens": int(counts[s.index, 0]),
             "target_tokens": int(counts[s.index, 1])} for s in self.stages]
