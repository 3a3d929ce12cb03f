"""What a model's teacher-forced token accuracy is made of: first token, copy, other, EOS.

On extractive question answering a model can score high token accuracy without finding any
answer: after the first answer token, the next gold token usually follows the previous one in the
context, so copying the context token after the gold prefix gets it right. This splits every
target position into

* `first_token`: position 0 (where the answer must be found);
* `copyable`: a later position whose gold token follows an occurrence of the previous gold token
  in the inputs (a copy rule with no understanding of the question gets it right);
* `other`: any other non-EOS position;
* `eos`: the closing EOS,

and reports the share of target tokens and the model's accuracy in each. `diagnose` computes it
for a checkpoint on a split (`python -m synthetic_pretraining.position_split`, or the mini Table 1
driver, which runs it at each finetuning run's step of best validation accuracy).
"""
import collections
import json
from typing import Dict, List, Optional, Sequence

import gin
import jax
import numpy as np

from synthetic_pretraining.data import pipeline
from synthetic_pretraining.model import models
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths

CATEGORIES = ("first_token", "copyable", "other", "eos")
FILENAME = "position_split.json"
EOS_ID = 1  # seqio/T5 vocabularies: 0 padding, 1 EOS


def classify(inputs: Sequence[int], targets: Sequence[int], eos_id: int = EOS_ID) -> List[str]:
  """The category of each target position (padding, id 0, ends the targets)."""
  followers = collections.defaultdict(set)  # token -> tokens that follow it in the inputs
  for previous, token in zip(inputs, inputs[1:]):
    followers[int(previous)].add(int(token))
  out = []
  for i, token in enumerate(int(t) for t in targets):
    if token == 0:
      break
    if token == eos_id:
      out.append("eos")
    elif i == 0:
      out.append("first_token")
    elif token in followers.get(int(targets[i - 1]), ()):
      out.append("copyable")
    else:
      out.append("other")
  return out


def tally(inputs, targets, predictions, eos_id: int = EOS_ID) -> Dict[str, List[int]]:
  """{category: [correct, count]} over a batch of rows (arrays [batch, length])."""
  counts = {c: [0, 0] for c in CATEGORIES}
  for row_inputs, row_targets, row_predictions in zip(inputs, targets, predictions):
    for i, category in enumerate(classify(list(row_inputs), list(row_targets), eos_id)):
      counts[category][0] += int(row_predictions[i] == row_targets[i])
      counts[category][1] += 1
  return counts


def summarize(counts: Dict[str, List[int]]) -> Dict[str, Dict[str, float]]:
  """{category: {'share': % of target tokens, 'accuracy': % correct, 'tokens': n}}, plus 'all'."""
  total = sum(n for _, n in counts.values())
  out = {}
  for category in CATEGORIES:
    correct, n = counts.get(category, (0, 0))
    out[category] = {"share": 100 * n / max(total, 1), "accuracy": 100 * correct / max(n, 1),
                     "tokens": n}
  out["all"] = {"share": 100.0, "tokens": total,
                "accuracy": 100 * sum(c for c, _ in counts.values()) / max(total, 1)}
  return out


@gin.configurable
def diagnose(*, model: models.EncoderDecoderModel = gin.REQUIRED, checkpoint_path: str,
             task: str, lengths: Dict[str, int], split: str = "validation",
             batch_size: int = 32, max_batches: Optional[int] = None,
             module: Optional[str] = "tasks") -> Dict[str, Dict[str, float]]:
  """The position split of a checkpoint's teacher-forced predictions on `split` of `task`."""
  from synthetic_pretraining.training import compiled_steps  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  partitioner = partitioning.PjitPartitioner()
  trainer = compiled_steps.Trainer(model, partitioner, optimizer=None, seed=0)  # evaluation only
  params = trainer_lib.params_from_checkpoint(trainer, checkpoint_path)
  cfg = pipeline.DatasetConfig(mixture_or_task_name=task, task_feature_lengths=dict(lengths),
                           split=split, batch_size=batch_size, shuffle=False, seed=42,
                           module=module)
  ds = pipeline.build_dataset(cfg, seed=42, shard_info=pipeline.shard_info(), num_epochs=1,
                          drop_remainder=False)
  predict = jax.jit(lambda p, b: jax.numpy.argmax(model.logits(p, b), -1))
  counts = {c: [0, 0] for c in CATEGORIES}
  for i, batch in enumerate(pipeline.CheckpointableIterator(ds)):
    if max_batches is not None and i >= max_batches:
      break
    rows = len(batch["decoder_target_tokens"])
    padded = pipeline.pad_batch(batch, batch_size)
    predictions = np.asarray(jax.device_get(
        predict(params, pipeline.to_global_batch(padded, partitioner))))[:rows]
    for category, (correct, n) in tally(batch["encoder_input_tokens"],
                                        batch["decoder_target_tokens"], predictions).items():
      counts[category][0] += correct
      counts[category][1] += n
  return summarize(counts)


def write(model_dir: str, step: int, split: Dict[str, Dict[str, float]]) -> None:
  """MODEL_DIR/position_split.json: {'step': step, 'categories': split}."""
  paths.write_atomic(paths.join(model_dir, FILENAME),
                     json.dumps({"step": step, "categories": split}, indent=1) + "\n")


def read(model_dir: str) -> Optional[dict]:
  path = paths.join(model_dir, FILENAME)
  return json.loads(paths.read_text(path)) if paths.exists(path) else None
