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
for a checkpoint on a split; `split_run` for a step of a training run under the run's own gin
configuration (the mini Table 1 driver, at each finetuning run's step of best validation
accuracy); from the command line:

  python -m synthetic_pretraining.position_split MODEL_DIR [--step=N] [--split=validation]
    [--max_batches=N] [--write] [--gin_file=F ... --gin.NAME=VALUE ...]

reads MODEL_DIR's run.json (task, lengths, batch size) and, unless gin files are given, its
config.gin; the step defaults to the one of best validation token accuracy. It prints the split
and, with --write, saves it as MODEL_DIR/position_split.json (what the report reads).
"""
import collections
import json
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import gin
import jax
import numpy as np

from synthetic_pretraining.data import pipeline
from synthetic_pretraining.model import models
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths
from synthetic_pretraining.report import protocol
from synthetic_pretraining.training import run_dir

CATEGORIES = protocol.POSITION_CATEGORIES
FILENAME = run_dir.POSITION_SPLIT
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
  """MODEL_DIR/position_split.json, or None."""
  path = paths.join(model_dir, FILENAME)
  return json.loads(paths.read_text(path)) if paths.exists(path) else None


def best_step(model_dir: str) -> Tuple[int, float]:
  """(step, accuracy) of the run's best teacher-forced validation token accuracy (first on ties)."""
  evals = protocol.validation_accuracies(protocol.read_records(model_dir))
  if not evals:
    from synthetic_pretraining import cli  # pylint: disable=import-outside-toplevel
    raise cli.UsageError(f"{model_dir} has no validation accuracy in metrics.jsonl yet; pass "
                         "--step.")
  best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
  return int(best["step"]), float(best["accuracy"])


def split_run(model_dir: str, step: int, gin_args: Sequence[str], *, task: str,
              split: str = "validation", max_batches: Optional[int] = None) -> Dict[str, dict]:
  """The position split of checkpoint `step` of the run in `model_dir`, its model built from
  `gin_args` (the run's gin files and bindings) with the run's TASK_FEATURE_LENGTHS and
  BATCH_SIZE.

  Raises:
    errors.UsageError: the configuration does not start, or the checkpoint does not fit it.
  """
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  result = {}

  def run():
    result.update(diagnose(
        checkpoint_path=orbax_format.step_dir(model_dir, step), task=task,
        lengths=dict(gin.query_parameter("%TASK_FEATURE_LENGTHS")),
        batch_size=gin.query_parameter("%BATCH_SIZE"), split=split, max_batches=max_batches,
        module=gin.query_parameter("%MIXTURE_OR_TASK_MODULE")))

  train.run_flags(list(gin_args) + ["--gin.position_split.diagnose.model=%MODEL"],
                  entry_point=run)
  return result


def markdown(split: Dict[str, Dict[str, float]]) -> str:
  """One table row per category: share of target tokens and accuracy (%)."""
  lines = ["| category | share (%) | accuracy (%) | tokens |", "| --- | --- | --- | --- |"]
  for category in CATEGORIES + ("all",):
    c = split[category]
    lines.append(f"| {category} | {c['share']:.1f} | {c['accuracy']:.1f} | {c['tokens']} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  """Entry point (see the module docstring); returns an exit code."""
  from synthetic_pretraining import cli  # pylint: disable=import-outside-toplevel
  return cli.run(_main, sys.argv[1:] if argv is None else argv)


def _main(argv) -> int:
  from synthetic_pretraining.training import run_record  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import cli  # pylint: disable=import-outside-toplevel
  import synthetic_pretraining.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  gin_args = [a for a in argv if a.startswith("--gin")]
  parser = cli.ArgumentParser(prog="python -m synthetic_pretraining.position_split",
                              description=__doc__.split("\n")[0])
  parser.add_argument("model_dir")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: best validation token accuracy)")
  parser.add_argument("--split", default="validation")
  parser.add_argument("--max_batches", type=int, default=None)
  parser.add_argument("--write", action="store_true",
                      help=f"save MODEL_DIR/{FILENAME} (what the report reads)")
  args = parser.parse_args([a for a in argv if not a.startswith("--gin")])
  record = run_record.read(args.model_dir)
  if record is None:
    raise cli.UsageError(f"{args.model_dir} has no {run_record.FILENAME}: not a training run "
                         "directory.")
  step = args.step if args.step is not None else best_step(args.model_dir)[0]
  if not any(a.startswith("--gin_file") for a in gin_args):
    gin_args.insert(0, f"--gin_file={paths.join(args.model_dir, 'config.gin')}")
  gin_args += [f"--gin.TASK_FEATURE_LENGTHS={dict(record.lengths)!r}",
               f"--gin.BATCH_SIZE={record.batch_size}"]
  result = split_run(args.model_dir, step, gin_args, task=record.task, split=args.split,
                     max_batches=args.max_batches)
  print(f"{record.task} {args.split}, step {step}:\n{markdown(result)}")
  if args.write:
    write(args.model_dir, step, result)
  return 0


if __name__ == "__main__":
  # Run as `python -m`, this file is `__main__`, and its `diagnose` registered under that name;
  # the gin binding above names `position_split.diagnose`, so run the package's module.
  from synthetic_pretraining import position_split as _module  # pylint: disable=import-self
  sys.exit(_module.main())
