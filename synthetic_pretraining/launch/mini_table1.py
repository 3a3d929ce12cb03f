r"""A small-scale reproduction of the paper's Table 1 (and of the statistics-only result).

  python -m synthetic_pretraining.launch.mini_table1 --preset=full|demo|toy|gpu \
      [--output_dir=DIR] [--dry_run] [--natural_checkpoint=PATH]

  --preset              full (about 2 h 15 min on an idle 2-core CPU), demo (`make demo`, about
                        13 min), gpu (one H100/H200, about 10 min), toy (seconds; the tests)
  --output_dir          where the runs and the report go (default runs/mini_table1_<preset>
                        under the working directory)
  --dry_run             print every command and the estimated time, run nothing
  --natural_checkpoint  a transformers T5 directory (or any checkpoint) as the natural baseline

1. Pre-flight: each pre-training task's examples are measured (a sample, with the run's own gin
   configuration) against its TASK_FEATURE_LENGTHS; the driver refuses to start when most
   examples of a task would be cut, and warns loudly when any would.
2. Pre-train on each synthetic task (the statistics source, Set, with several seeds) and on
   natural text (`natural_text`, span corruption), natural given at least the steps, batch and
   lengths of every synthetic task, i.e. at least as much compute.
3. Finetune on `squad_window` (squad_offline's questions on 16-word windows of the passage that
   contain the answer; pre-training lengths cover its lengths) from random init, from
   each pre-trained model (embedding re-initialised, as in the paper's research runs; natural
   loads everything, as the paper's off-the-shelf T5 did) and from the statistics of the Set
   model (Per Param Mean/SD, Per Param Scale). With several learning rates, each init's rate is
   chosen on the first seed by best validation token accuracy, then the other seeds use it. The
   k-th seed of an init from Set pairs with Set pre-training seed k mod (number of Set seeds).
4. At each finetuning run's step of best validation token accuracy, split that accuracy by
   target position (first token / copyable continuation / other / EOS: position_split.py).
5. The report (`python -m synthetic_pretraining.report`, from run.json records): decoded test
   EM and F1 at the step of best validation token accuracy (the paper's protocol), that accuracy,
   the position split, each pre-training run's final validation accuracy (flagged when still
   rising), differences from random with their spread, the benefit ratio only where natural −
   random clears the seed spread, statistics-only inits as a share of Set's own benefit, the
   trivial-rule floors on the same test questions, and every run's learning curves.

Runs happen in this process, one after another; a finished run is skipped when the driver is
started again (its MODEL_DIR resumes and ends at once). `--dry_run` prints every command and the
estimated duration from the step times measured for each preset (PRESETS' comments). Gin files
are found as by every binary (the working directory first, then the package's own).
"""
if __name__ == "__main__":
  # Before jax or TensorFlow start threads: the runs train in this process (training/host_memory).
  from synthetic_pretraining.training import host_memory
  host_memory.configure()

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from synthetic_pretraining.launch import commands

STATS_SCHEMES = {"stats_mean_std": "per_param_grouping___init_mean_std",
                 "stats_scale": "per_param_grouping___init_scale"}
REFUSE_SHARE = 0.5  # refuse to pre-train when more than this share of a task's examples is cut
TOY_MODEL = ("--gin.network.T5Config.emb_dim=32", "--gin.network.T5Config.mlp_dim=64",
             "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=16")


@dataclasses.dataclass(frozen=True)
class Preset:
  """Sizes of one reproduction.

  Attributes:
    pretrain: {task: (inputs, targets, steps)}: lengths and steps of each synthetic task.
    natural: (inputs, targets, steps) of the natural-text run (None: no natural baseline); it
      must see at least the tokens (steps x lengths) of every synthetic task.
    stats_from / stats_seeds: the statistics source task and its pre-training seeds.
    pretrain_batch / pretrain_eval_period: every pre-training run's batch and eval period.
    seeds: finetuning seeds. learning_rates: finetuning rates (several: a sweep on seeds[0]).
    finetune_*: finetuning sizes on finetune_task (squad_window: 16-word contexts, at most 95
      input tokens; 32 target tokens keep 99% of answers whole); eval_steps batches of
      validation per eval (None: all); infer_examples test questions decoded per eval (the
      same ones, spread over the test articles, for every run and for the trivial-rule floors).
    Every pre-training run's lengths cover the finetuning lengths, so that every relative
    position the finetuned model meets was trained (checked when a preset is made).
    step_seconds: measured seconds per step {'pretrain_<in>x<tgt>', 'finetune'} and per eval
      ('eval') and run ('run': compiling, starting the data), for the dry run's estimate.
  """
  pretrain: Dict[str, Tuple[int, int, int]]
  natural: Optional[Tuple[int, int, int]]
  stats_from: str
  stats_seeds: Tuple[int, ...]
  pretrain_batch: int
  pretrain_eval_period: int
  seeds: Tuple[int, ...]
  learning_rates: Tuple[float, ...]
  finetune_steps: int
  finetune_batch: int
  finetune_lengths: Tuple[int, int]
  eval_period: int
  eval_steps: Optional[int]
  infer_examples: int
  stats_schemes: Tuple[str, ...] = tuple(STATS_SCHEMES)
  model_gin: str = "gin/models/t5_1_0/cpu.gin"
  model_flags: Tuple[str, ...] = ()
  run_gin: Tuple[str, ...] = ("gin/runs/cpu_demo.gin",)
  set_max_body: int = 48
  step_seconds: Tuple[Tuple[str, float], ...] = ()
  finetune_task: str = "squad_window"
  # A ready natural baseline (a transformers T5 directory such as t5-small, as the paper used the
  # off-the-shelf T5, or any checkpoint the resolver reads) instead of pre-training on natural
  # text; it must fit model_gin + model_flags (docs/hf.md). Set by --natural_checkpoint.
  natural_checkpoint: Optional[str] = None

  def __post_init__(self):
    lengths = dict(self.pretrain, **({"natural_text": self.natural} if self.natural else {}))
    for task, (inputs, targets, _) in lengths.items():
      if inputs < self.finetune_lengths[0] or targets < self.finetune_lengths[1]:
        raise ValueError(f"pre-training {task} at {inputs}/{targets} leaves relative positions "
                         f"of the finetuning lengths {self.finetune_lengths} untrained")


# Step times of the cpu.gin model on the idle 2-core machine. Measured with launch.step_times
# (40-step runs of each preset's configurations) on 6 December 2026 while the machine was shared
# (load average 3-8 on 2 cores), each scaled by a reference measured in the same session (Set at
# 64/64, batch 32: 0.33 s per step idle, measured 0.28 and 0.46 s under load):
#   Set and natural text at 96/96, batch 32: 0.82-0.85 s measured -> 0.61-0.98 s idle; 0.62 s
#     is used (it also interpolates the idle 64/64 (0.33 s) and 128/128 (0.82 s) steps by tokens);
#   squad_window at 96/32, batch 32: 0.26 and 0.47 s measured, 0.92-1.01 x the reference -> 0.32 s;
#   an eval (8 validation batches, 256 greedy decodes): 3.0 s measured -> 2.2 s idle; 4 s is used
#     for 256 decodes, 6 s for 512;
#   the rest of a run (start, compile, data): 15-33 s measured (85 s once under the heaviest
#     load) -> 30 s.
CPU_STEP_SECONDS = (("pretrain_96x96", 0.62), ("finetune", 0.32), ("run", 30.0))

PRESETS: Dict[str, Preset] = {
    # 2 h 15 min of runs on the idle 2-core machine (estimate about 127 min): Set (2 seeds) and
    # natural text, 800 steps each at 96/96 (natural with the same compute as each Set run);
    # 5 inits x 2 seeds x 1,600 finetuning steps of squad_window (the pilot of issue 21: random
    # init at 1,600 steps of batch 32 reached test EM 6.4 against a floor of 2.3-2.5). LIME does
    # not fit: 800 steps of it would cost 1,600 finetuning steps of one init.
    "full": Preset(pretrain={"set": (96, 96, 800)}, natural=(96, 96, 800), stats_from="set",
                   stats_seeds=(0, 1), pretrain_batch=32, pretrain_eval_period=200, seeds=(1, 2),
                   learning_rates=(1e-2,), finetune_steps=1600, finetune_batch=32,
                   finetune_lengths=(96, 32), eval_period=320, eval_steps=8, infer_examples=512,
                   stats_schemes=("stats_mean_std", "stats_scale"), set_max_body=92,
                   step_seconds=CPU_STEP_SECONDS + (("eval", 6.0),)),
    # make demo, about 13 minutes (estimate 13.0): Set (one seed, 400 steps) and the Set model's
    # statistics against random init, 300 finetuning steps each: the comparison of `full` at a
    # size where every init is still near the floor.
    "demo": Preset(pretrain={"set": (96, 96, 400)}, natural=None, stats_from="set",
                   stats_seeds=(0,), pretrain_batch=32, pretrain_eval_period=100, seeds=(1,),
                   learning_rates=(1e-2,), finetune_steps=300, finetune_batch=32,
                   finetune_lengths=(96, 32), eval_period=100, eval_steps=8, infer_examples=256,
                   stats_schemes=("stats_mean_std",), set_max_body=92,
                   step_seconds=CPU_STEP_SECONDS + (("eval", 4.0),)),
    # Seconds per run: the test suite runs the whole driver at this size, sweep included.
    # One seed keeps it to 11 runs; pairing with Set seeds and the swept rate reaching later
    # seeds are tested on finetune_runs' commands.
    "toy": Preset(pretrain={"set": (32, 32, 4)}, natural=None, stats_from="set",
                  stats_seeds=(0,), pretrain_batch=8, pretrain_eval_period=2, seeds=(1,),
                  learning_rates=(1e-2, 3e-3), finetune_steps=4, finetune_batch=8,
                  finetune_lengths=(32, 8), eval_period=2, eval_steps=1, infer_examples=8,
                  stats_schemes=("stats_mean_std",), model_flags=TOY_MODEL, set_max_body=16),
    # One H100/H200, at most 10 minutes (estimate 9.6): T5 1.0 small (float32), Set 2,000 steps
    # of batch 128 at 96/96, then random, Set and Per Param Mean/SD (Set) x 2 seeds x 500 steps of
    # batch 128 on squad_window (64,000 questions, 6 epochs), the paper's SQuAD rate 1e-3, every
    # test question decoded. Estimated on paper (no GPU was lent when it was sized): training
    # FLOPs = 6 x tokens x the parameters each token passes (encoder 18.9M; decoder 25.2M and the
    # 4,224 x 512 logits, 27.4M) plus attention: 3.6 TFLOP per pre-training step, 2.1 per
    # finetuning step; at an assumed 50 TFLOP/s effective (a tenth of the H100's TF32 peak: a
    # 512-wide model, about a thousand kernels per step) 0.071 s and 0.042 s. An eval (8
    # validation batches, 1,004 greedy decodes of at most 32 tokens in 8 batches, latency-bound)
    # 4 s; the rest of a run (start, compile, data) 20 s.
    "gpu": Preset(pretrain={"set": (96, 96, 2000)}, natural=None, stats_from="set",
                  stats_seeds=(0,), pretrain_batch=128, pretrain_eval_period=500, seeds=(1, 2),
                  learning_rates=(1e-3,), finetune_steps=500, finetune_batch=128,
                  finetune_lengths=(96, 32), eval_period=250, eval_steps=None,
                  infer_examples=1004, stats_schemes=("stats_mean_std",),
                  model_gin="gin/models/t5_1_0/small.gin",
                  model_flags=("--gin.vocabularies.named_vocabulary.name='cpu_sp'",
                               "--gin.network.T5Config.vocab_size=None"),
                  set_max_body=92,
                  step_seconds=(("pretrain_96x96", 0.071), ("finetune", 0.042), ("eval", 4.0),
                                ("run", 20.0))),
}


@dataclasses.dataclass
class Run:
  """One training run: its directory, method label, flags and (finetuning) sweep group."""
  model_dir: str
  label: str
  flags: List[str]
  kind: str  # 'pretrain' or 'finetune'
  seed: int = 0
  learning_rate: Optional[float] = None
  lengths: Tuple[int, int] = (0, 0)
  steps: int = 0


def _lengths(pair) -> str:
  return f"--gin.TASK_FEATURE_LENGTHS={{'inputs': {pair[0]}, 'targets': {pair[1]}}}"


def _pretrain_flags(p: Preset, task: str, sizes, model_dir: str, seed: int) -> List[str]:
  lengths, steps = sizes[:2], sizes[2]
  flags = [f"--gin_file={p.model_gin}", "--gin_file=gin/runs/pretrain.gin",
           *(f"--gin_file={g}" for g in p.run_gin), *p.model_flags,
           f"--gin.MODEL_DIR='{model_dir}'", f"--gin.MIXTURE_OR_TASK_NAME='{task}'",
           _lengths(lengths), f"--gin.TRAIN_STEPS={steps}",
           f"--gin.BATCH_SIZE={p.pretrain_batch}", f"--gin.SEED={seed}",
           f"--gin.EVAL_PERIOD={p.pretrain_eval_period}", "--gin.EVAL_STEPS=4",
           f"--gin.CHECKPOINT_PERIOD={steps}", "--gin.KEEP_CHECKPOINTS=1",
           f"--gin.LOG_PERIOD={max(1, p.pretrain_eval_period // 2)}",
           f"--gin.length_range.max_length={p.set_max_body}",
           # LIME inputs and outputs within the input length, EOS included (lime.py).
           f"--gin.lime_length_range.max_length={lengths[0] - 1}",
           f"--gin.run_label.label='{task}'"]
  return flags


def pretrain_runs(p: Preset, out: str) -> List[Run]:
  """Every pre-training run: the statistics source with each of its seeds, the other tasks with
  seed 0, natural text last."""
  runs = []
  natural = p.natural and not p.natural_checkpoint
  tasks = list(p.pretrain.items()) + ([("natural_text", p.natural)] if natural else [])
  for task, sizes in tasks:
    for seed in (p.stats_seeds if task == p.stats_from else (0,)):
      model_dir = os.path.join(out, "pretrain", task, f"seed_{seed}")
      runs.append(Run(model_dir, "natural" if task == "natural_text" else task,
                      _pretrain_flags(p, task, sizes, model_dir, seed), "pretrain", seed,
                      lengths=tuple(sizes[:2]), steps=sizes[2]))
  return runs


def _source(out: str, task: str, seeds: Sequence[int], k: int) -> str:
  return os.path.join(out, "pretrain", task, f"seed_{seeds[k % len(seeds)]}")


def finetune_runs(p: Preset, out: str, learning_rates: Optional[Dict[str, float]] = None):
  """Every finetuning run. Seeds after the first use `learning_rates[label]` (the sweep's
  choice; a placeholder rate of None until it is known), the first seed every rate."""
  inits = [("random", lambda k: [])]
  for task in p.pretrain:
    seeds = p.stats_seeds if task == p.stats_from else (0,)
    inits.append((task, lambda k, t=task, s=seeds: [
        "--gin_file=gin/experiments/init/checkpoint.gin",
        f"--gin.PRETRAINED_CHECKPOINT='{_source(out, t, s, k)}'"]))
  if p.natural_checkpoint:
    inits.append(("natural", lambda k: [
        "--gin_file=gin/experiments/init/checkpoint_load_all.gin",
        f"--gin.PRETRAINED_CHECKPOINT='{p.natural_checkpoint}'"]))
  elif p.natural:
    inits.append(("natural", lambda k: [
        "--gin_file=gin/experiments/init/checkpoint_load_all.gin",
        f"--gin.PRETRAINED_CHECKPOINT='{_source(out, 'natural_text', (0,), k)}'"]))
  for name in p.stats_schemes:
    inits.append((f"{name}({p.stats_from})", lambda k, n=name: [
        f"--gin_file=gin/init/{STATS_SCHEMES[n]}.gin",
        f"--gin.STATS_SOURCE='{_source(out, p.stats_from, p.stats_seeds, k)}'"]))
  runs = []
  for k, seed in enumerate(p.seeds):
    for label, init_flags in inits:
      only = p.learning_rates[0] if len(p.learning_rates) == 1 else None  # no sweep
      rates = p.learning_rates if k == 0 else [(learning_rates or {}).get(label, only)]
      for rate in rates:
        name = label.replace("(", "_").replace(")", "")
        model_dir = os.path.join(out, "finetune", name, f"lr_{rate:g}" if rate else "lr_best",
                                 f"seed_{seed}")
        flags = [f"--gin_file={p.model_gin}", "--gin_file=gin/runs/finetune.gin",
                 *p.model_flags, *init_flags(k), f"--gin.MODEL_DIR='{model_dir}'",
                 f"--gin.MIXTURE_OR_TASK_NAME='{p.finetune_task}'", _lengths(p.finetune_lengths),
                 f"--gin.TRAIN_STEPS={p.finetune_steps}", f"--gin.BATCH_SIZE={p.finetune_batch}",
                 f"--gin.SEED={seed}", f"--gin.LEARNING_RATE={rate if rate else '<swept>'}",
                 f"--gin.EVAL_PERIOD={p.eval_period}", f"--gin.EVAL_STEPS={p.eval_steps}",
                 # A checkpoint at every eval, so the position split can be taken at the best
                 # one; the driver prunes the others afterwards.
                 f"--gin.CHECKPOINT_PERIOD={p.eval_period}", "--gin.KEEP_CHECKPOINTS=None",
                 f"--gin.LOG_PERIOD={max(1, p.eval_period // 2)}",
                 "--gin.INFER_EVAL_SPLIT='test'", "--gin.NUM_DECODES=1",
                 f"--gin.MAX_DECODE_LENGTH={p.finetune_lengths[1]}",
                 f"--gin.EVALUATOR_NUM_EXAMPLES={p.infer_examples}",
                 f"--gin.run_label.label='{label}'"]
        runs.append(Run(model_dir, label, flags, "finetune", seed, rate,
                        tuple(p.finetune_lengths), p.finetune_steps))
  return runs


def estimate_minutes(p: Preset) -> Optional[float]:
  """Minutes the preset should take at its measured step times (None when it has none)."""
  seconds = dict(p.step_seconds)
  if not seconds:
    return None
  total = 0.0
  for run in pretrain_runs(p, "/x"):
    key = f"pretrain_{run.lengths[0]}x{run.lengths[1]}"
    if key not in seconds:
      return None
    total += run.steps * seconds[key] + seconds["run"]
  finetunes = finetune_runs(p, "/x")
  evals_per_run = -(-p.finetune_steps // p.eval_period)
  # Each reported finetuning run also reads one checkpoint again for its position split.
  total += len(finetunes) * (p.finetune_steps * seconds["finetune"]
                             + evals_per_run * seconds["eval"] + 2 * seconds["run"])
  return total / 60


def pretraining_tokens(p: Preset) -> Dict[str, int]:
  """Target-plus-input token slots each pre-training run trains on (its compute)."""
  sizes = dict(p.pretrain, **({"natural_text": p.natural} if p.natural else {}))
  return {t: (i + o) * steps * p.pretrain_batch for t, (i, o, steps) in sizes.items()}


# Pre-flight ---------------------------------------------------------------------------------------

def truncation_share(flags: Sequence[str], num_examples: int = 200) -> Dict[str, float]:
  """{feature: share of examples cut} for the first `num_examples` training examples of the
  run `flags` describe, measured under the run's own gin configuration."""
  import gin  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining import train
  from synthetic_pretraining.data import pipeline  # pylint: disable=import-outside-toplevel
  shares = {}

  def measure():
    lengths = dict(gin.query_parameter("%TASK_FEATURE_LENGTHS"))
    cfg = pipeline.DatasetConfig(mixture_or_task_name=gin.query_parameter("%MIXTURE_OR_TASK_NAME"),
                             task_feature_lengths=lengths, split="train", batch_size=1,
                             shuffle=False, module="synthetic_pretraining.tasks")
    counter = pipeline.TruncationCounter(lengths)
    ds = pipeline.build_dataset(cfg, seed=0, shard_info=pipeline.shard_info(), num_epochs=None,
                            counter=counter)
    for _ in ds.take(num_examples):
      pass
    totals = counter.totals()
    shares.update({k: totals[f"{k}_examples_cut"] / max(totals["examples_seen"], 1)
                   for k in lengths})

  if train.main(list(flags), entry_point=measure) != 0:
    raise SystemExit("error: the pre-flight check could not read a pre-training task "
                     "(see the log above).")
  return shares


def preflight(runs: Sequence[Run], num_examples: int = 200) -> Dict[str, Dict[str, float]]:
  """Measures every pre-training task once; refuses (SystemExit) when a task would lose most of
  its examples to the feature lengths, warns loudly when it would lose any."""
  report, seen = {}, set()
  for run in runs:
    if run.kind != "pretrain" or run.label in seen:
      continue
    seen.add(run.label)
    shares = truncation_share(run.flags, num_examples)
    report[run.label] = shares
    worst = max(shares.values())
    line = ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items())
    if worst > REFUSE_SHARE:
      raise SystemExit(f"error: pre-training on {run.label} at lengths {run.lengths} would cut "
                       f"most examples ({line} of {num_examples} cut); raise its lengths in "
                       "the preset.")
    if worst > 0:
      print(f"\n*** WARNING: pre-training on {run.label} at lengths {run.lengths} cuts examples "
            f"({line} of {num_examples}); the model never sees them whole. ***\n", flush=True)
    else:
      print(f"pre-flight: {run.label} at lengths {run.lengths}: no example of {num_examples} "
            "cut", flush=True)
  return report


# Running ------------------------------------------------------------------------------------------

def _train(flags: Sequence[str]) -> None:
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  if train.main(list(flags)) != 0:
    raise SystemExit("error: a run failed: python -m synthetic_pretraining.train "
                     + commands.show(flags))


def _best(model_dir: str) -> Tuple[int, float]:
  from synthetic_pretraining.report import protocol  # pylint: disable=import-outside-toplevel
  evals = protocol.validation_accuracies(protocol.read_records(model_dir))
  best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
  return int(best["step"]), float(best["accuracy"])


def _position_split(run: Run, task: str) -> None:
  """position_split.json at the run's best step; then only the best and last checkpoints stay."""
  from synthetic_pretraining import paths, position_split  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  step, _ = _best(run.model_dir)
  if position_split.read(run.model_dir) is None:
    # The run's own configuration, less its statistics initialiser (not needed to read a step).
    flags = [f for f in run.flags if not f.startswith("--gin.STATS_SOURCE")
             and "gin/init/" not in f]
    position_split.write(run.model_dir, step,
                         position_split.split_run(run.model_dir, step, flags, task=task))
  keep = {step, max(orbax_format.checkpoint_steps(run.model_dir), default=step)}
  for other in orbax_format.checkpoint_steps(run.model_dir):
    if other not in keep:
      paths.rmtree(orbax_format.step_dir(run.model_dir, other))


def run(preset: str, out: str, dry_run: bool = False,
        natural_checkpoint: Optional[str] = None) -> int:
  """Runs (or with dry_run prints) the reproduction; returns the report's exit code."""
  p = PRESETS[preset]
  if natural_checkpoint:
    p = dataclasses.replace(p, natural_checkpoint=natural_checkpoint)
  pretrain = pretrain_runs(p, out)
  command = "python -m synthetic_pretraining.train "
  if dry_run:
    minutes = estimate_minutes(p)
    print(f"# preset {preset}: {len(pretrain)} pre-training runs, "
          f"{len(finetune_runs(p, out))} finetuning runs"
          + (f", about {minutes:.0f} minutes at the preset's step times" if minutes else ""))
    for r in pretrain + finetune_runs(p, out):
      print(command + commands.show(r.flags))
    print("python -m synthetic_pretraining.report " + " ".join(
        f"{out}/finetune/<init>/<chosen lr>/seed_{s}" for s in p.seeds[:1]) + " ... "
          + " ".join(f"--pretrain={r.model_dir}" for r in pretrain)
          + f" --output_dir={out}/report")
    return 0
  # Modules with gin configurables are imported before the first run parses (and locks) gin.
  from synthetic_pretraining import position_split, report  # pylint: disable=import-outside-toplevel,unused-import
  import synthetic_pretraining.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  start = time.time()
  preflight(pretrain)
  for i, r in enumerate(pretrain, 1):
    print(f"[pre-train {i}/{len(pretrain)}] {r.label} seed {r.seed}  "
          f"({(time.time() - start) / 60:.1f} min)", flush=True)
    _train(r.flags)
  first = finetune_runs(p, out)
  chosen: Dict[str, Tuple[float, float]] = {}  # label -> (rate, best validation accuracy)
  for r in first:
    if r.seed != p.seeds[0]:
      continue
    print(f"[finetune] {r.label} lr {r.learning_rate:g} seed {r.seed}  "
          f"({(time.time() - start) / 60:.1f} min)", flush=True)
    _train(r.flags)
    accuracy = _best(r.model_dir)[1]
    if r.label not in chosen or accuracy > chosen[r.label][1]:
      chosen[r.label] = (r.learning_rate, accuracy)
  rates = {label: rate for label, (rate, _) in chosen.items()}
  final = [r for r in finetune_runs(p, out, rates) if r.learning_rate == rates[r.label]]
  for r in final:
    if r.seed != p.seeds[0]:
      print(f"[finetune] {r.label} lr {r.learning_rate:g} seed {r.seed}  "
            f"({(time.time() - start) / 60:.1f} min)", flush=True)
      _train(r.flags)
    _position_split(r, p.finetune_task)
  from synthetic_pretraining import paths, report  # pylint: disable=import-outside-toplevel
  paths.write_atomic(os.path.join(out, "learning_rates.json"),
                     json.dumps({l: {"rate": r, "best_validation_accuracy": a}
                                 for l, (r, a) in chosen.items()}, indent=1) + "\n")
  code = report.main([r.model_dir for r in final] + [f"--pretrain={r.model_dir}" for r in pretrain]
                     + [f"--output_dir={os.path.join(out, 'report')}"])
  if len(p.learning_rates) > 1:
    report_md = paths.join(out, "report", "report.md")  # an object store has no append
    paths.write_atomic(report_md, paths.read_text(report_md) + (
        "\n## Learning rate per init\n\nChosen on seed "
        f"{p.seeds[0]} by best validation token accuracy among "
        f"{', '.join(f'{x:g}' for x in p.learning_rates)}: " + ", ".join(
            f"{l} {r:g}" for l, (r, _) in sorted(chosen.items())) + ".\n"))
  print(f"Finished in {(time.time() - start) / 60:.1f} minutes.")
  return code


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  parser = argparse.ArgumentParser(prog="python -m synthetic_pretraining.launch.mini_table1",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
  parser.add_argument("--output_dir", default=None,
                      help="default runs/mini_table1_<preset> under the working directory")
  parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  parser.add_argument("--natural_checkpoint", default=None,
                      help="natural baseline to finetune from (a transformers T5 directory, "
                           "local or gs://) instead of pre-training on natural text")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  out = os.path.abspath(args.output_dir or os.path.join("runs", f"mini_table1_{args.preset}"))
  return run(args.preset, out, args.dry_run, args.natural_checkpoint)


if __name__ == "__main__":
  sys.exit(main())
