#!/usr/bin/env python3
r"""A CPU-scale reproduction of the paper's Table 1 (and the `make demo` slice of it).

  python launch/mini_table1.py --preset=full [--output_dir=runs/mini_table1] [--seeds=1,2,3]  # ~2 h
  python launch/mini_table1.py --preset=demo     # make demo: Set only, one seed, ~15 minutes

1. Pre-train the CPU-sized T5 1.0 (gin/models/t5_1_0/cpu.gin, shipped vocabulary) on each
   synthetic task and on natural text (`natural_text`, span corruption) with the same steps,
   batch and lengths, i.e. the same compute.
2. Finetune on `squad_offline` from random init, from each pre-trained model (token embedding
   re-initialised as in the paper's research runs; the natural model loads everything, as the
   paper's off-the-shelf T5 did), and from the statistics of the Set model (Per Param Mean/SD and
   Per Param Scale), for every seed; teacher-forced validation eval and greedy inference eval of
   the test split every period.
3. Print the benefit tables (`python -m synthetic_pretraining.report`): the test EM (then token
   F1) at the step of best validation token accuracy, and that best validation token accuracy,
   each with mean and spread over seeds and the benefit (method - random) / (natural - random);
   report.md/csv/png land in OUTPUT_DIR/report, report_f1 and report_accuracy.

Runs happen in this process, one after another; a finished run is skipped when the driver is
started again (its MODEL_DIR resumes and ends at once).
"""
import argparse
import dataclasses
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATS_SCHEMES = {"stats_mean_std": "per_param_grouping___init_mean_std",
                 "stats_scale": "per_param_grouping___init_scale"}


@dataclasses.dataclass(frozen=True)
class Preset:
  """Sizes of one reproduction."""
  pretrain_tasks: Tuple[str, ...]
  natural: bool
  stats_from: str
  seeds: Tuple[int, ...]
  pretrain_steps: int
  finetune_steps: int
  eval_period: int
  batch_size: int = 32
  pretrain_lengths: Tuple[int, int] = (64, 64)
  finetune_lengths: Tuple[int, int] = (256, 32)
  finetune_learning_rate: float = 1e-2  # measured: 300 steps from random reach 0.12 token accuracy (0.11 after 500 at 3e-3)
  eval_steps: int = 8
  infer_examples: int = 300
  model_flags: Tuple[str, ...] = ()
  stats_schemes: Tuple[str, ...] = tuple(STATS_SCHEMES)


PRESETS: Dict[str, Preset] = {
    # Measured on our 2-core CPU: about 2 hours (pre-training 7 min per task, finetuning 4.2 min
    # per run); identity and Set already separate from random by 50 points after 300 steps.
    "full": Preset(pretrain_tasks=("identity", "set", "lime"), natural=True, stats_from="set",
                   seeds=(1, 2, 3), pretrain_steps=1500, finetune_steps=300, eval_period=100),
    "demo": Preset(pretrain_tasks=("set",), natural=False, stats_from="set", seeds=(1,),
                   pretrain_steps=1000, finetune_steps=300, eval_period=100,
                   stats_schemes=("stats_mean_std",)),
    # Seconds: the test suite runs the whole driver at this size.
    "toy": Preset(pretrain_tasks=("set",), natural=True, stats_from="set", seeds=(1, 2),
                  pretrain_steps=4, finetune_steps=4, eval_period=2, batch_size=8,
                  pretrain_lengths=(32, 32), finetune_lengths=(64, 8), eval_steps=1,
                  infer_examples=8,
                  model_flags=("--gin.network.T5Config.emb_dim=32",
                               "--gin.network.T5Config.mlp_dim=64",
                               "--gin.network.T5Config.num_heads=2",
                               "--gin.network.T5Config.head_dim=16")),
}


def _lengths(pair):
  return f"--gin.TASK_FEATURE_LENGTHS={{'inputs': {pair[0]}, 'targets': {pair[1]}}}"


def _common(p: Preset, model_dir: str, steps: int, seed: int) -> List[str]:
  return ["--gin_file=gin/models/t5_1_0/cpu.gin", *p.model_flags, f"--gin.MODEL_DIR='{model_dir}'",
          f"--gin.TRAIN_STEPS={steps}", f"--gin.BATCH_SIZE={p.batch_size}", f"--gin.SEED={seed}",
          f"--gin.EVAL_PERIOD={p.eval_period}", f"--gin.EVAL_STEPS={p.eval_steps}",
          f"--gin.CHECKPOINT_PERIOD={steps}", f"--gin.LOG_PERIOD={max(1, p.eval_period // 2)}",
          "--gin.KEEP_CHECKPOINTS=1"]


def pretrain_runs(p: Preset, out: str) -> List[Tuple[str, List[str]]]:
  """(MODEL_DIR, train flags) of every pre-training run."""
  tasks = list(p.pretrain_tasks) + (["natural_text"] if p.natural else [])
  runs = []
  for task in tasks:
    model_dir = os.path.join(out, "pretrain", task)
    runs.append((model_dir, [*_common(p, model_dir, p.pretrain_steps, 0),
                             "--gin_file=gin/runs/pretrain.gin", "--gin_file=gin/runs/cpu_demo.gin",
                             f"--gin.MIXTURE_OR_TASK_NAME='{task}'", _lengths(p.pretrain_lengths)]))
  return runs


def finetune_runs(p: Preset, out: str) -> List[Tuple[str, str, List[str]]]:
  """(MODEL_DIR, method label, train flags) of every finetuning run."""
  inits = [("random", [])]
  for task in p.pretrain_tasks:
    inits.append((task, ["--gin_file=gin/experiments/init/checkpoint.gin",
                         f"--gin.PRETRAINED_CHECKPOINT='{os.path.join(out, 'pretrain', task)}'"]))
  if p.natural:
    inits.append(("natural", ["--gin_file=gin/experiments/init/checkpoint_load_all.gin",
                              "--gin.PRETRAINED_CHECKPOINT="
                              f"'{os.path.join(out, 'pretrain', 'natural_text')}'"]))
  source = os.path.join(out, "pretrain", p.stats_from)
  for label in p.stats_schemes:
    scheme = STATS_SCHEMES[label]
    inits.append((f"{label}({p.stats_from})", [f"--gin_file=gin/init/{scheme}.gin",
                                              f"--gin.STATS_SOURCE='{source}'"]))
  runs = []
  for seed in p.seeds:
    for label, flags in inits:
      model_dir = os.path.join(out, "finetune", label.replace("(", "_").replace(")", ""),
                               f"seed_{seed}")
      runs.append((model_dir, label, [
          *_common(p, model_dir, p.finetune_steps, seed), "--gin_file=gin/runs/finetune.gin",
          *flags, "--gin.MIXTURE_OR_TASK_NAME='squad_offline'", _lengths(p.finetune_lengths),
          f"--gin.LEARNING_RATE={p.finetune_learning_rate}", "--gin.INFER_EVAL_SPLIT='test'",
          "--gin.NUM_DECODES=1", f"--gin.EVALUATOR_NUM_EXAMPLES={p.infer_examples}"]))
  return runs


def _train(flags: Sequence[str]) -> None:
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  if train.main(list(flags)) != 0:
    raise SystemExit(f"error: a run failed: python -m synthetic_pretraining.train {' '.join(flags)}")


def run(preset: str, out: str, seeds: Sequence[int] = ()) -> int:
  """Runs the reproduction; returns the report's exit code."""
  p = PRESETS[preset]
  if seeds:
    p = dataclasses.replace(p, seeds=tuple(seeds))
  os.chdir(ROOT)  # gin files and the shipped data are found from the repository root
  start = time.time()
  pretrain, finetune = pretrain_runs(p, out), finetune_runs(p, out)
  total = len(pretrain) + len(finetune)
  for i, (model_dir, flags) in enumerate(pretrain, 1):
    print(f"[{i}/{total}] pre-train on {os.path.basename(model_dir)}  "
          f"({(time.time() - start) / 60:.1f} min)", flush=True)
    _train(flags)
  for i, (model_dir, label, flags) in enumerate(finetune, len(pretrain) + 1):
    print(f"[{i}/{total}] finetune squad_offline from {label}, {model_dir.rsplit('/', 1)[-1]}  "
          f"({(time.time() - start) / 60:.1f} min)", flush=True)
    _train(flags)
    with open(os.path.join(model_dir, "label.txt"), "w") as f:
      f.write(label)
  from synthetic_pretraining import report  # pylint: disable=import-outside-toplevel
  run_dirs = [d for d, _, _ in finetune]
  code = 0
  # The paper's score (test EM at the step of best validation accuracy), then token F1 and the
  # best validation token accuracy, which separate the methods earlier in short CPU runs.
  for metric, name in (("em", "report"), ("f1", "report_f1"), ("eval:accuracy", "report_accuracy")):
    print(f"\n== squad_offline, {metric} ==")
    code = code or report.main(run_dirs + [f"--metric={metric}",
                                           f"--output_dir={os.path.join(out, name)}"])
  print(f"Finished in {(time.time() - start) / 60:.1f} minutes.")
  return code


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
  parser.add_argument("--output_dir", default=None, help="default runs/mini_table1_<preset>")
  parser.add_argument("--seeds", default="", help="comma-separated seeds (override the preset)")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  out = os.path.abspath(args.output_dir or os.path.join(ROOT, "runs", f"mini_table1_{args.preset}"))
  seeds = [int(s) for s in args.seeds.split(",") if s]
  return run(args.preset, out, seeds)


if __name__ == "__main__":
  sys.exit(main())
