"""Decoding a task split and scoring it with the task's metrics (inference eval and `infer`).

Examples are read in a fixed order (no shuffling), decoded in global batches sharded over the
'data' axis, and the predictions gathered back to every host. Targets are scored as the paper did
(PAPER_FACTS §6.3): the target token ids decoded with the vocabulary, passed through the task's
postprocessor, so the metric sees the same detokenisation on both sides.
"""
import dataclasses
import json
import logging
import time
from typing import Dict, List, Optional

import gin
import jax
import numpy as np
import seqio
from jax.experimental import multihost_utils

from synthetic_pretraining import errors
from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.data import pipeline
from synthetic_pretraining.training import metrics_writer
from synthetic_pretraining.model import models
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths
from synthetic_pretraining.training import run_dir

PROGRESS_SECONDS = 30.0  # between the infer binary's progress lines



@gin.configurable
@dataclasses.dataclass
class InferenceConfig:
  """How to decode and what to score.

  Attributes:
    mixture_or_task_name: task (or mixture, each subtask scored on its own) to decode.
    task_feature_lengths: inputs are cut to 'inputs'; 'targets' is the default decode length.
    split: split to decode (the paper: 'test' for its custom tasks, 'validation' for SQuAD).
    batch_size: global batch size.
    num_decodes: 1 = greedy; k > 1 = beam search with k beams (the paper: 4).
    alpha: length-penalty exponent of beam search (t5x: 0.6).
    max_decode_length: defaults to the 'targets' feature length.
    max_examples: decode only the first N examples (EVALUATOR_NUM_EXAMPLES); None = all.
    module: MIXTURE_OR_TASK_MODULE.
  """
  mixture_or_task_name: str = gin.REQUIRED
  task_feature_lengths: Dict[str, int] = gin.REQUIRED
  split: str = "validation"
  batch_size: int = 32
  num_decodes: int = 1
  alpha: float = 0.6
  max_decode_length: Optional[int] = None
  max_examples: Optional[int] = None
  module: Optional[str] = None


def check_config(cfg: InferenceConfig, partitioner: partitioning.PjitPartitioner) -> None:
  """The numbers of `cfg` are in range and its batch splits over the mesh (one line each)."""
  from synthetic_pretraining.training import preflight  # pylint: disable=import-outside-toplevel
  preflight.check_count(cfg.batch_size, "BATCH_SIZE")
  pipeline.check_batch_size(cfg, partitioner)
  preflight.check_count(cfg.num_decodes, "NUM_DECODES")
  preflight.check_count(cfg.max_decode_length, "MAX_DECODE_LENGTH", allow_none=True)
  preflight.check_count(cfg.max_examples, "EVALUATOR_NUM_EXAMPLES", allow_none=True)


def _read_examples(task: seqio.Task, cfg: InferenceConfig) -> List[dict]:
  ds = task.get_dataset(sequence_length=None, split=cfg.split, shuffle=False, num_epochs=1,
                        trim_output_features=False)
  if cfg.max_examples is not None:
    ds = ds.take(cfg.max_examples)
  return list(ds.as_numpy_iterator())


def _encoder_batch(examples: List[dict], length: int, batch_size: int) -> np.ndarray:
  out = np.zeros((batch_size, length), np.int32)
  for row, ex in enumerate(examples):
    ids = ex["inputs"][:length]
    out[row, : len(ids)] = ids
  return out


def _until_eos(ids, eos_id: int) -> List[int]:
  ids = [int(i) for i in ids]
  return ids[: ids.index(eos_id)] if eos_id in ids else [i for i in ids if i != 0]


def jit_predict_step(model: models.EncoderDecoderModel, param_shardings, batch_sharding,
                     max_length: int, num_decodes: int = 1, alpha: float = 0.6, eos_id: int = 1):
  """The jitted decode step `(params, encoder tokens) -> ids` (also AOT-compiled by precompile)."""
  return jax.jit(lambda p, tokens: model.predict_batch(
      p, {"encoder_input_tokens": tokens}, max_decode_length=max_length,
      num_decodes=num_decodes, alpha=alpha, eos_id=eos_id),
                 in_shardings=(param_shardings, batch_sharding))


class Decoder:
  """Decodes batches of examples with one compiled function, reused for every call.

  The jitted predict function is built once per (model, mesh, decoding settings); its params
  sharding comes from the abstract parameters, so later evaluations with new parameter values
  of the same layout reuse the compilation.
  """

  def __init__(self, model: models.EncoderDecoderModel, partitioner: partitioning.PjitPartitioner,
               cfg: InferenceConfig, param_shardings, eos_id: int):
    self.cfg, self.partitioner, self.eos_id = cfg, partitioner, eos_id
    max_length = cfg.max_decode_length or cfg.task_feature_lengths["targets"]
    self.batch_sharding = partitioner.batch_sharding(2)
    self.predict = jit_predict_step(model, param_shardings, self.batch_sharding, max_length,
                                    cfg.num_decodes, cfg.alpha, eos_id)

  def __call__(self, params, examples: List[dict], progress: str = "") -> List[List[int]]:
    """Predicted token ids (without EOS) for each example; with `progress` (what is decoded, for
    the infer binary) a log line every PROGRESS_SECONDS."""
    cfg = self.cfg
    per_process = cfg.batch_size // jax.process_count()
    predictions, last_report = [], time.time()
    for start in range(0, len(examples), cfg.batch_size):
      if progress and time.time() - last_report > PROGRESS_SECONDS:
        last_report = time.time()
        logging.info("infer: %d of %d examples of %s decoded", start, len(examples), progress)
      chunk = examples[start: start + cfg.batch_size]
      mine = chunk[jax.process_index() * per_process: (jax.process_index() + 1) * per_process]
      local = _encoder_batch(mine, cfg.task_feature_lengths["inputs"], per_process)
      tokens = jax.make_array_from_process_local_data(self.batch_sharding, local)
      out = multihost_utils.process_allgather(self.predict(params, tokens), tiled=True)
      predictions += [_until_eos(row, self.eos_id) for row in np.asarray(out)[: len(chunk)]]
    return predictions


def score_task(task: seqio.Task, examples: List[dict], predictions: List[List[int]]):
  """(metrics, scored examples): decoded targets and predictions run through the task's metrics."""
  vocabulary = task.output_features["targets"].vocabulary
  targets, preds, rows = [], [], []
  for ex, pred_ids in zip(examples, predictions):
    target_text = vocabulary.decode(_until_eos(ex["targets"], vocabulary.eos_id))
    pred_text = vocabulary.decode(pred_ids)
    targets.append(task.postprocess_fn(target_text, example=ex, is_target=True))
    preds.append(task.postprocess_fn(pred_text, example=ex, is_target=False))
    rows.append({"input": vocabulary.decode(_until_eos(ex["inputs"], vocabulary.eos_id)),
                 "target": target_text, "prediction": pred_text})
    if isinstance(targets[-1], list):  # every gold answer (SQuAD), for the report's floors
      rows[-1]["answers"] = targets[-1]
  metrics = {}
  for metric_fn in getattr(task, "predict_metric_fns", None) or task.metric_fns:
    metrics.update({k: float(getattr(v, "value", v)) for k, v in metric_fn(targets, preds).items()})
  # Exact sequence match is always reported, so tasks without metric functions get a number too.
  # A fraction, as the teacher-forced `sequence_accuracy` of train and eval.
  metrics.setdefault("sequence_accuracy", float(np.mean(
      [p == _until_eos(ex["targets"], vocabulary.eos_id) for p, ex in zip(predictions, examples)])))
  return metrics, rows


class InferenceEvaluator:
  """Inference eval of one task or mixture: examples read once, decoding compiled once per task."""

  def __init__(self, model: models.EncoderDecoderModel, partitioner: partitioning.PjitPartitioner,
               cfg: InferenceConfig, param_shardings, progress: bool = False):
    self.cfg, self.progress = cfg, progress
    mixture_or_task = pipeline.get_mixture_or_task(cfg.mixture_or_task_name, cfg.module)
    self.tasks = []
    for task in seqio.get_subtasks(mixture_or_task):
      examples = _read_examples(task, cfg)
      if not examples:
        raise errors.UsageError(f"The {cfg.split!r} split of task {task.name!r} has no "
                                "examples: nothing to decode.")
      eos_id = task.output_features["targets"].vocabulary.eos_id
      self.tasks.append((task, examples, Decoder(model, partitioner, cfg, param_shardings, eos_id)))

  def evaluate(self, params) -> Dict[str, tuple]:
    """{task name: (metrics, scored examples)} for the task or every subtask of the mixture."""
    results = {}
    for task, examples, decode in self.tasks:
      what = f"{task.name}/{self.cfg.split}" if self.progress else ""
      if what:
        beams = (f"beam search with {self.cfg.num_decodes} beams" if self.cfg.num_decodes > 1
                 else "greedy")
        logging.info("infer: decoding %d examples of %s (%s) in batches of %d, %s", len(examples),
                     what, "the first EVALUATOR_NUM_EXAMPLES" if self.cfg.max_examples is not None
                     else "the whole split", self.cfg.batch_size, beams)
      results[task.name] = score_task(task, examples, decode(params, examples, progress=what))
      if what:
        logging.info("infer: decoded and scored %d examples of %s", len(examples), what)
    return results


def evaluate(model, params, partitioner, cfg: InferenceConfig,
             progress: bool = False) -> Dict[str, tuple]:
  """One-off inference eval (see `InferenceEvaluator` to evaluate repeatedly)."""
  shardings = jax.tree.map(lambda x: x.sharding, params)
  return InferenceEvaluator(model, partitioner, cfg, shardings, progress).evaluate(params)


def write_results(writer: metrics_writer.MetricsWriter, output_dir: str, step: int,
                  cfg: InferenceConfig, results) -> None:
  """Logs metrics (kind 'infer') and writes seqio's logger files in `inference_eval/`.

  `<task>-<step:06d>.jsonl` holds every decoded example of that evaluation and
  `<task>-metrics.jsonl` one line per evaluation, the file names seqio's JSONLogger uses.
  """
  for task_name, (metrics, rows) in results.items():
    writer.write(step, "infer", metrics, split=cfg.split, task=task_name)
    if jax.process_index() != 0:
      continue
    directory = run_dir.path(output_dir, run_dir.INFERENCE_DIR)
    paths.write_atomic(paths.join(directory, f"{task_name}-{step:06d}.jsonl"),
                       "".join(json.dumps(row) + "\n" for row in rows))
    _append_lines(paths.join(directory, f"{task_name}-metrics.jsonl"),
                  [json.dumps({"step": step, **metrics})])
    logging.info("inference eval of %s/%s at step %d: %s", task_name, cfg.split, step, metrics)


def _append_lines(path: str, lines: List[str]) -> None:
  """Appends lines to a text file. Object stores cannot append, so the file is rewritten whole."""
  old = paths.read_text(path) if paths.exists(path) else ""
  paths.write_atomic(path, old + "".join(line + "\n" for line in lines))


@gin.configurable
def infer(*, model: models.EncoderDecoderModel = gin.REQUIRED, checkpoint_path: str = gin.REQUIRED,
          inference_cfg: InferenceConfig = gin.REQUIRED, output_dir: str = gin.REQUIRED,
          partitioner: Optional[partitioning.PjitPartitioner] = None):
  """Decodes a task split with a checkpoint; writes every prediction and the metrics (infer.gin)."""
  partitioner = partitioner or partitioning.PjitPartitioner()
  abstract = partitioning.abstract_params(model, partitioner)
  from synthetic_pretraining.training import preflight  # pylint: disable=import-outside-toplevel
  pipeline.check_feature_lengths(inference_cfg.task_feature_lengths)
  check_config(inference_cfg, partitioner)
  preflight.check_task_split(inference_cfg.mixture_or_task_name, inference_cfg.module,
                             inference_cfg.split)
  preflight.check_run(partitioner=partitioner, output_dirs=[(output_dir, "INFER_OUTPUT_DIR")],
                      initial_checkpoint=checkpoint_path, abstract_params=abstract,
                      checkpoint_flag="CHECKPOINT_PATH",
                      model_config=getattr(model, "config", None))
  params, step = resolver.read_params(checkpoint_path, abstract)
  results = evaluate(model, params, partitioner, inference_cfg, progress=True)
  writer = metrics_writer.MetricsWriter(output_dir)
  write_results(writer, output_dir, step, inference_cfg, results)
  writer.close()
  return {name: metrics for name, (metrics, _) in results.items()}
