"""Periodic actions of the training loop: work done every `period` steps and at the last step.

The loop (`trainer.train`) runs, after each step, every action that is due, in order: logging,
teacher-forced eval, inference eval, the extra actions given in gin, and the checkpoint last (so a
checkpoint never precedes the records of its step). An action is any object with a `name`, a
`period` and `__call__(run)`; `run` is the `trainer.TrainingRun` (its state, trainer, writer,
model_dir, seed). Add one without editing the loop, as t5x's `actions`:

    train.actions = [@eval_squad/actions.TeacherForcedEval()]
    eval_squad/actions.TeacherForcedEval.dataset_cfg = @squad/data.DatasetConfig()
    eval_squad/actions.TeacherForcedEval.period = 500

Its time is left out of the training throughput (`run.timed`).
"""
import dataclasses
import logging
from typing import Callable, FrozenSet, Optional, Sequence

import gin

from synthetic_pretraining.data import pipeline
from synthetic_pretraining.training import evaluation


@dataclasses.dataclass
class PeriodicAction:
  """Calls `fn(run)` every `period` steps, at the steps `also_at` and always at the last step
  (period None: only at the end and `also_at`)."""
  name: str
  period: Optional[int]
  fn: Callable
  also_at: FrozenSet[int] = frozenset()

  def due(self, step: int, at_end: bool) -> bool:
    return at_end or bool(self.period) and step % self.period == 0 or step in self.also_at

  def __call__(self, run) -> None:
    self.fn(run)


def builtin_actions(run, *, log_period: int, extra=(), stage_ends: Sequence[int] = ()) -> list:
  """The loop's actions for `run`, in the order they run at a step (see the module docstring).

  `stage_ends`: the last steps of a staged run's stages but the last; the log and the checkpoint
  are due there too, so no train record mixes two stages and the model after each stage is kept.
  """
  ends = frozenset(stage_ends)
  actions = [PeriodicAction("log", log_period, lambda r: r.log(), ends)]
  if run.eval_dataset_cfg is not None:
    actions.append(PeriodicAction("training_eval", run.eval_cfg.period, lambda r: r.train_eval()))
  if run.infer_eval_cfg is not None:
    actions.append(PeriodicAction("inference_eval", run.eval_cfg.period, lambda r: r.infer_eval()))
  actions.extend(extra)
  actions.append(PeriodicAction("checkpoint", run.checkpoint_cfg.period, lambda r: r.checkpoint(),
                                ends))
  return actions


@gin.configurable
@dataclasses.dataclass
class TeacherForcedEval:
  """An extra teacher-forced evaluation during training (another task, split or length).

  Its metrics go to metrics.jsonl and TensorBoard as kind 'eval' under the dataset's task name,
  and to the run's last metrics as `<name>/<metric>`.

  Attributes:
    dataset_cfg: what to evaluate on (a `data.DatasetConfig`).
    period: steps between evaluations (the last step is always evaluated).
    steps: batches per evaluation (None: the whole split).
    name: the metrics prefix (default: 'eval_<task>_<split>').
  """
  dataset_cfg: pipeline.DatasetConfig = gin.REQUIRED
  period: Optional[int] = 1000
  steps: Optional[int] = 20
  name: Optional[str] = None

  def __post_init__(self):
    if self.name is None:
      self.name = f"eval_{self.dataset_cfg.mixture_or_task_name}_{self.dataset_cfg.split}"

  def due(self, step: int, at_end: bool) -> bool:
    return at_end or bool(self.period) and step % self.period == 0

  def __call__(self, run) -> None:
    cfg = self.dataset_cfg

    def evaluate():
      metrics = evaluation.evaluate(run.trainer, run.state.params, cfg, seed=run.seed,
                                    max_batches=self.steps)
      run.writer.write(run.state.step, "eval", metrics, split=cfg.split,
                       task=cfg.mixture_or_task_name)
      run.last.update({f"{self.name}/{k}": v for k, v in metrics.items()})
      logging.info("%s at step %d: loss/token %.4f  accuracy %.4f", self.name, run.state.step,
                   metrics["loss_per_nonpadding_target_token"], metrics["accuracy"])
    run.timed(evaluate)
