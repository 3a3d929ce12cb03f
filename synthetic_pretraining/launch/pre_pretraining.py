r"""Pre-pretraining at laptop scale: a formal language first, then natural text, against natural
text alone at the same total tokens (Hu et al., ACL 2025, at CPU size).

  python -m synthetic_pretraining.launch.pre_pretraining --preset=full|toy \
      [--output_dir=DIR] [--dry_run]

  --preset      full (54 min on a 2-core CPU, measured; results in docs/results/pre_pretraining),
                toy (seconds; the tests)
  --output_dir  where the runs and the report go (default runs/pre_pretraining_<preset> under
                the working directory)
  --dry_run     print every command and the estimated time, run nothing

A decoder-only model (gin/models/decoder_only/cpu.gin) trains, for each seed, as three arms of
the same steps, batch and row length (so the same token slots, i.e. compute):

  natural       natural_text alone (prefix LM on span corruption), a one-stage schedule so that
                its records count tokens as the staged arms' do;
  shuffle_dyck  shuffle_dyck for the first `formal_steps` steps, then natural_text
                (gin/runs/stage_pretrain.gin);
  dyck          the same with dyck.

Every arm evaluates on natural_text's validation split every `eval_period` steps (the same
examples each time). The formal stage's rows are as long as the text's (its own inputs/targets
split of the same row: a short name prefix and a long string) and its strings fill them about as
fully, so a formal step costs what a text step costs and trains on about as many tokens.

The report (OUTPUT_DIR/report: report.md, report.csv, report.png; `report.token_curves`) gives
natural-text validation loss against tokens trained on (every stage counted), mean and the
seeds' range per arm, and the tokens each pre-pretrained arm saves to reach the baseline's final
loss, per seed against the baseline of the same seed.

Runs happen in this process, one after another; a run whose final checkpoint exists is skipped
when the driver is started again. Gin files are found as by every binary (the working directory
first, then the package's own).
"""
if __name__ == "__main__":
  # Before jax or TensorFlow start threads: the runs train in this process (training/host_memory).
  from synthetic_pretraining.training import host_memory
  host_memory.configure()

import dataclasses
import os
import sys
import time
from typing import Dict, List, Tuple

from synthetic_pretraining import cli
from synthetic_pretraining.launch import commands

BASELINE = "natural"
FORMAL_TASKS = ("shuffle_dyck", "dyck")
NATURAL_TASK = "natural_text"


@dataclasses.dataclass(frozen=True)
class Preset:
  """Sizes of one experiment.

  Attributes:
    steps: TRAIN_STEPS of every arm. formal_steps: the formal-language stage's steps (the first
      ones) in the staged arms.
    batch: BATCH_SIZE. lengths: natural_text's (inputs, targets). formal_lengths: the formal
      stage's (inputs, targets): the same row length (a decoder-only row is inputs + targets),
      nearly all of it targets. formal_string_lengths: (min, max) brackets of a formal string;
      max + EOS fits the formal targets.
    eval_period / eval_steps: natural_text validation every eval_period steps, eval_steps
      batches each.
    seeds: every arm's seeds (SEED: initialisation, dropout and both stages' data).
    model_gin / model_flags: the model.
    step_seconds / eval_seconds / run_seconds: measured seconds per train step, per eval and per
      run (start, compile, data), for the dry run's estimate (0: no estimate).
  """
  steps: int
  formal_steps: int
  batch: int
  lengths: Tuple[int, int]
  formal_lengths: Tuple[int, int]
  formal_string_lengths: Tuple[int, int]
  eval_period: int
  eval_steps: int
  seeds: Tuple[int, ...] = (1, 2)
  model_gin: str = "gin/models/decoder_only/cpu.gin"
  model_flags: Tuple[str, ...] = ()
  step_seconds: float = 0.0
  eval_seconds: float = 0.0
  run_seconds: float = 0.0

  def __post_init__(self):
    if sum(self.formal_lengths) != sum(self.lengths):
      raise ValueError(f"the formal rows {self.formal_lengths} must be as long as the text's "
                       f"{self.lengths}: the arms compare at equal token slots")
    if self.formal_string_lengths[1] + 1 > self.formal_lengths[1]:
      raise ValueError(f"formal strings of up to {self.formal_string_lengths[1]} brackets and "
                       f"EOS do not fit {self.formal_lengths[1]} target tokens")
    if not 0 < self.formal_steps < self.steps:
      raise ValueError(f"formal_steps={self.formal_steps} must leave natural-text steps of "
                       f"{self.steps}")


# Step times of the decoder-only cpu.gin model (2 layers, emb 128; 934,656 parameters) on the
# 2-core machine, measured on 7 December 2026 while it was shared (load average 1.3 rising to 6.6,
# the run got 102% CPU, i.e. about one of the two cores): one staged run of 60 steps (30 of
# shuffle_dyck, 30 of natural_text) at batch 32 and rows of 96 (text 64/32, formal 16/80):
# 0.61-0.66 s per formal step, 0.70-0.74 s per text step; an eval of 4 validation batches 1-3 s;
# the rest of the run (start, compile, data, checkpoint) 28 s. The estimate uses these loaded
# times as they are (0.72 s per step, 3 s per eval of 8 batches, 30 s per run): an idle machine
# gives the process both cores, so it should be faster, not slower.
# The full preset then ran in 54.2 min (7 December 2026, load about 3: 0.5 s per step), so the
# estimate is high by half; it is kept as measured.
CPU_STEP_SECONDS = {"step_seconds": 0.72, "eval_seconds": 3.0, "run_seconds": 30.0}
TOY_MODEL = ("--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32",
             "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=8")

PRESETS: Dict[str, Preset] = {
    # At most 90 minutes on the idle 2-core machine (estimate 81 min at the loaded step times
    # above): 3 arms x 2 seeds x 1,000 steps of batch 32 at rows of 96 (about 2.5M tokens per
    # run), the formal stage the first 150 steps (15%); 20 evals of 8 batches (256 validation
    # examples, the same each time) per run, so the curves cross the baseline's final loss between evals 50 steps
    # (5% of the budget) apart.
    "full": Preset(steps=1000, formal_steps=150, batch=32, lengths=(64, 32),
                   formal_lengths=(16, 80), formal_string_lengths=(60, 78), eval_period=50,
                   eval_steps=8, **CPU_STEP_SECONDS),
    # Seconds per run: the tests run the whole driver at this size, report included.
    "toy": Preset(steps=6, formal_steps=2, batch=8, lengths=(32, 16), formal_lengths=(8, 40),
                  formal_string_lengths=(20, 38), eval_period=3, eval_steps=1,
                  model_flags=TOY_MODEL),
}


@dataclasses.dataclass
class Run:
  """One training run: its directory, arm (run label), seed and flags."""
  model_dir: str
  label: str
  seed: int
  flags: List[str]


def _lengths(pair) -> str:
  return f"{{'inputs': {pair[0]}, 'targets': {pair[1]}}}"


def _flags(p: Preset, arm: str, model_dir: str, seed: int) -> List[str]:
  if arm == BASELINE:
    # One stage, the run's own data: the same token accounting and record fields as a staged run.
    schedule_file = "gin/runs/pretrain.gin"
    schedule = ["--gin.trainer.train.stages=[@stages.Stage()]"]
  else:
    low, high = p.formal_string_lengths
    schedule_file = "gin/runs/stage_pretrain.gin"
    schedule = [f"--gin.STAGE1_TASK='{arm}'", f"--gin.STAGE1_STEPS={p.formal_steps}",
                f"--gin.stage1/data.DatasetConfig.task_feature_lengths={_lengths(p.formal_lengths)}",
                f"--gin.{arm}_config.min_length={low}", f"--gin.{arm}_config.max_length={high}"]
  return [f"--gin_file={p.model_gin}", f"--gin_file={schedule_file}",
          "--gin_file=gin/runs/cpu_demo.gin", *p.model_flags, *schedule,
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.MIXTURE_OR_TASK_NAME='{NATURAL_TASK}'",
          f"--gin.TASK_FEATURE_LENGTHS={_lengths(p.lengths)}", f"--gin.TRAIN_STEPS={p.steps}",
          f"--gin.BATCH_SIZE={p.batch}", f"--gin.SEED={seed}",
          f"--gin.EVAL_PERIOD={p.eval_period}", f"--gin.EVAL_STEPS={p.eval_steps}",
          f"--gin.LOG_PERIOD={p.eval_period}", f"--gin.CHECKPOINT_PERIOD={p.steps}",
          "--gin.KEEP_CHECKPOINTS=1", f"--gin.run_label.label='{arm}'"]


def runs(p: Preset, out: str) -> List[Run]:
  """Every run, seed by seed (so a stopped driver has whole seeds to report): the baseline,
  then each formal-language arm."""
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  found = []
  for seed in p.seeds:
    for arm in (BASELINE,) + FORMAL_TASKS:
      model_dir = paths.join(out, arm, f"seed_{seed}")
      found.append(Run(model_dir, arm, seed, _flags(p, arm, model_dir, seed)))
  return found


def estimate_minutes(p: Preset) -> float:
  """Minutes the preset should take at its measured step times (0 when it has none)."""
  evals = p.steps // p.eval_period
  per_run = p.steps * p.step_seconds + evals * p.eval_seconds + p.run_seconds
  return len(runs(p, "/x")) * per_run / 60


def _finished(run: Run, steps: int) -> bool:
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  return steps in orbax_format.checkpoint_steps(run.model_dir)


def _train(flags: List[str]) -> None:
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  if train.main(list(flags)) != 0:
    raise SystemExit("error: a run failed: python -m synthetic_pretraining.train "
                     + commands.show(flags))


def run(preset: str, out: str, dry_run: bool = False) -> int:
  """Runs (or with dry_run prints) the experiment, then writes the report; returns 0."""
  p = PRESETS[preset]
  planned = runs(p, out)
  report_dir = os.path.join(out, "report") if dry_run else None
  if dry_run:
    minutes = estimate_minutes(p)
    print(f"# preset {preset}: {len(planned)} runs ({1 + len(FORMAL_TASKS)} arms x "
          f"{len(p.seeds)} seeds) of {p.steps} steps, the formal stage {p.formal_steps} steps"
          + (f", about {minutes:.0f} minutes at the preset's step times" if minutes else ""))
    for r in planned:
      print("python -m synthetic_pretraining.train " + commands.show(r.flags))
    print(f"# then the report (report.token_curves) in {report_dir}")
    return 0
  from synthetic_pretraining import paths  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.report import token_curves  # pylint: disable=import-outside-toplevel
  start = time.time()
  for i, r in enumerate(planned, 1):
    if _finished(r, p.steps):
      print(f"[run {i}/{len(planned)}] {r.label} seed {r.seed}: finished earlier, skipped",
            flush=True)
      continue
    print(f"[run {i}/{len(planned)}] {r.label} seed {r.seed}  "
          f"({(time.time() - start) / 60:.1f} min)", flush=True)
    _train(r.flags)
  report_dir = paths.join(out, "report")
  token_curves.write([r.model_dir for r in planned], BASELINE, report_dir)
  print(f"The report is in {report_dir} (report.md, report.csv, report.png). Finished in "
        f"{(time.time() - start) / 60:.1f} minutes.")
  return 0


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  parser = cli.ArgumentParser(prog="python -m synthetic_pretraining.launch.pre_pretraining",
                              description=__doc__,
                              formatter_class=cli.argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
  parser.add_argument("--output_dir", default=None,
                      help="default runs/pre_pretraining_<preset> under the working directory")
  parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  args = parser.parse_args(argv)
  out = args.output_dir or os.path.join("runs", f"pre_pretraining_{args.preset}")
  if "://" not in out:  # an object store path stays as given
    out = os.path.abspath(out)
  return run(args.preset, out, args.dry_run)


if __name__ == "__main__":
  sys.exit(cli.run(main))
