r"""Measures the step times a preset of mini_table1 is sized from, with short runs.

  python -m synthetic_pretraining.launch.step_times --preset=full [--steps=40] [--output_dir=DIR]

  --preset      the mini_table1 preset to measure (default full)
  --steps       train steps of each measurement run (default 40)
  --output_dir  where the measurement runs go (default: a temporary folder)

For each distinct configuration of the preset (each pre-training task and length, and the
finetuning run) it trains `--steps` steps with the preset's own flags (one eval at the end) and
prints seconds per train step (the logged throughput after the first log window, which holds the
compilation), seconds per finetuning eval (teacher-forced validation batches plus greedy decoding
of the test questions, timed around the run loop's evals; the first includes compiling the
decoder) and the fixed cost of a run (the rest: start, compile, data; the largest of the runs). It also measures
REFERENCE, a configuration whose step time on the idle 2-core machine is known, so that figures
taken on a loaded machine can be scaled: load factor = measured / idle reference step time.
"""
import argparse
import json
import os
import sys
import tempfile
import time

from synthetic_pretraining.launch import mini_table1

# Set at 64/64, batch 32, cpu.gin: 0.33 s per step on the idle 2-core machine (the `full` run of
# 3 December 2026, docs/results/mini_table1/README.md).
REFERENCE = ("set", (64, 64), 0.33)


def _override(flags, **values):
  """The flags with each --gin.NAME=... of `values` replaced (appended if absent)."""
  out = [f for f in flags if not any(f.startswith(f"--gin.{k}=") for k in values)]
  return out + [f"--gin.{k}={v}" for k, v in values.items()]


EVAL_SECONDS = []  # wall seconds of each teacher-forced and inference eval, in order


def _time_evals():
  """Times every eval of the trainer's run loop (they log no durations of their own)."""
  from synthetic_pretraining.training import trainer  # pylint: disable=import-outside-toplevel
  for name in ("train_eval", "infer_eval"):
    method = getattr(trainer.TrainingRun, name)

    def timed(self, method=method):
      start = time.time()
      method(self)
      EVAL_SECONDS.append(time.time() - start)
    setattr(trainer.TrainingRun, name, timed)


def _train_seconds(model_dir, flags):
  """(wall seconds of the run less its evals, seconds per train step after the first log
  window, seconds of its evals)."""
  from synthetic_pretraining import paths, train  # pylint: disable=import-outside-toplevel
  start, EVAL_SECONDS[:] = time.time(), []
  if train.main(list(flags)) != 0:
    raise SystemExit(f"error: a measurement run failed ({model_dir})")
  evals = sum(EVAL_SECONDS)
  wall = time.time() - start - evals
  records = [r for r in map(json.loads, paths.iter_lines(paths.join(model_dir, "metrics.jsonl")))
             if r.get("kind") == "train"]
  rates = [r["timing/steps_per_second"] for r in records[1:] if "timing/steps_per_second" in r]
  if not rates:
    raise SystemExit(f"error: {model_dir} logged no throughput after its first window; raise "
                     "--steps")
  return wall, len(rates) / sum(rates), evals


def measure(preset: str, steps: int, out: str) -> dict:
  """{'pretrain_<in>x<tgt>': s/step, 'finetune': s/step, 'eval': s, 'run': s, 'load': factor}."""
  import synthetic_pretraining.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from synthetic_pretraining import position_split, report  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  p = mini_table1.PRESETS[preset]
  _time_evals()
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
    wall, step, evals = _train_seconds(model_dir, flags)
    runs.append((name, wall, step, evals))
    print(f"{name}: {step:.3f} s/step, evals {evals:.1f} s, rest of the run "
          f"{wall - steps * step:.0f} s", flush=True)
  results["load"] = runs[0][2] / REFERENCE[2]
  for name, wall, step, evals in runs[1:]:
    key = name.split()[0]
    results[key] = max(results.get(key, 0.0), step)
  results["eval"] = runs[-1][3]  # the finetuning eval: validation batches and decoding
  results["run"] = max(wall - steps * step for _, wall, step, _ in runs)
  return results


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  parser = argparse.ArgumentParser(prog="python -m synthetic_pretraining.launch.step_times",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
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
