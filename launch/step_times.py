#!/usr/bin/env python3
r"""Measures the step times a preset of mini_table1.py is sized from, with short runs.

  python launch/step_times.py --preset=full [--steps=40] [--output_dir=DIR]

For each distinct configuration of the preset (each pre-training task and length, and the
finetuning run) it trains `--steps` steps with the preset's own flags (one eval at the end) and
prints seconds per train step (the logged throughput after the first log window, which holds the
compilation), seconds per finetuning eval (teacher-forced validation batches plus greedy decoding
of the test questions) and the fixed cost of a run (start, compile, data). It also measures
REFERENCE, a configuration whose step time on the idle 2-core machine is known, so that figures
taken on a loaded machine can be scaled: load factor = measured / idle reference step time.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mini_table1  # pylint: disable=wrong-import-position

# Set at 64/64, batch 32, cpu.gin: 0.33 s per step on the idle 2-core machine (the `full` run of
# 3 December 2026, docs/results/mini_table1/README.md).
REFERENCE = ("set", (64, 64), 0.33)


def _override(flags, **values):
  """The flags with each --gin.NAME=... of `values` replaced (appended if absent)."""
  out = [f for f in flags if not any(f.startswith(f"--gin.{k}=") for k in values)]
  return out + [f"--gin.{k}={v}" for k, v in values.items()]


def _train_seconds(model_dir, flags):
  """(wall seconds of the run, seconds per train step after the first log window)."""
  from synthetic_pretraining import train  # pylint: disable=import-outside-toplevel
  start = time.time()
  if train.main(list(flags)) != 0:
    raise SystemExit(f"error: a measurement run failed ({model_dir})")
  wall = time.time() - start
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    records = [r for r in map(json.loads, f) if r.get("kind") == "train"]
  rates = [r["timing/steps_per_second"] for r in records[1:] if "timing/steps_per_second" in r]
  if not rates:
    raise SystemExit(f"error: {model_dir} logged no throughput after its first window; raise "
                     "--steps")
  return wall, len(rates) / sum(rates)


def measure(preset: str, steps: int, out: str) -> dict:
  """{'pretrain_<in>x<tgt>': s/step, 'finetune': s/step, 'eval': s, 'run': s, 'load': factor}."""
  import synthetic_pretraining.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from synthetic_pretraining import position_split, report  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  p = mini_table1.PRESETS[preset]
  os.chdir(mini_table1.ROOT)
  log = max(1, steps // 4)
  results, runs = {}, []
  reference = dict(p.__dict__, pretrain={REFERENCE[0]: REFERENCE[1] + (steps,)}, natural=None,
                   finetune_lengths=(8, 8), model_gin="gin/models/t5_1_0/cpu.gin", model_flags=(),
                   pretrain_batch=32, set_max_body=48)
  configs = [("reference", mini_table1.pretrain_runs(mini_table1.Preset(**reference), out)[0])]
  seen = set()
  for run in mini_table1.pretrain_runs(p, os.path.join(out, "preset")):
    key = f"pretrain_{run.lengths[0]}x{run.lengths[1]}"
    if (run.label, key) not in seen:
      seen.add((run.label, key))
      configs.append((f"{key} ({run.label})", run))
  configs.append(("finetune", mini_table1.finetune_runs(p, os.path.join(out, "preset"))[0]))
  for name, run in configs:
    model_dir = os.path.join(out, name.split()[0] + "_" + run.label)
    flags = _override(run.flags, MODEL_DIR=f"'{model_dir}'", TRAIN_STEPS=steps, EVAL_PERIOD=steps,
                      LOG_PERIOD=log, CHECKPOINT_PERIOD=steps)
    wall, step = _train_seconds(model_dir, flags)
    runs.append((name, wall, step))
    print(f"{name}: {step:.3f} s/step, run {wall:.0f} s", flush=True)
  load = runs[0][2] / REFERENCE[2]
  results["load"] = load
  fixed = []
  for name, wall, step in runs[:-1]:
    if name != "reference":
      results[name.split()[0]] = max(results.get(name.split()[0], 0.0), step)
    fixed.append(wall - steps * step)
  results["run"] = sum(fixed) / len(fixed)
  name, wall, step = runs[-1]
  results["finetune"] = step
  results["eval"] = max(0.0, wall - steps * step - results["run"])
  return results


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", choices=sorted(mini_table1.PRESETS), default="full")
  parser.add_argument("--steps", type=int, default=40)
  parser.add_argument("--output_dir", default=None, help="default: a temporary folder")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  out = args.output_dir or tempfile.mkdtemp(prefix="step_times_")
  results = measure(args.preset, args.steps, os.path.abspath(out))
  load = results.pop("load")
  print(f"\nload factor {load:.2f} (reference {REFERENCE[0]} at {REFERENCE[1]}: idle "
        f"{REFERENCE[2]} s/step)")
  print("measured (this machine now)  |  scaled to the idle machine")
  for key, value in results.items():
    print(f"  {key}: {value:.3f}  |  {value / load:.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
