"""Every preset of synthetic_pretraining.launch.mini_table1 starts its own commands: the exact flags of its
pre-training, finetuning and position-split runs, with only steps, batch, eval sizes and the model
shrunk, so a wrong flag fails here (its own module: these runs are the suite's longest)."""
import pytest

from synthetic_pretraining.launch import mini_table1

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# Every preset's own commands start: the exact flags, only steps, batch, eval sizes and model shrunk.
SHRUNK = {"TRAIN_STEPS": "2", "BATCH_SIZE": "8", "EVAL_PERIOD": "2", "EVAL_STEPS": "1",
          "CHECKPOINT_PERIOD": "2", "LOG_PERIOD": "1", "EVALUATOR_NUM_EXAMPLES": "4"}
SHRUNK_MODEL = ("--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32",
                "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=8",
                "--gin.network.T5Config.num_encoder_layers=1",
                "--gin.network.T5Config.num_decoder_layers=1")


def _shrunk(flags):
  out = []
  for flag in flags:
    name = flag[len("--gin."):].split("=", 1)[0] if flag.startswith("--gin.") else None
    out.append(f"--gin.{name}={SHRUNK[name]}" if name in SHRUNK else flag)
  return out + list(SHRUNK_MODEL)


def _first_commands(p, out):
  """Each pre-training task's first seed, then every init of the first finetuning seed (later Set
  seeds are pointed at the first one's checkpoint): [(kind, run)]."""
  pretrain = {}
  for run in mini_table1.pretrain_runs(p, out):
    pretrain.setdefault(run.label, run)
  finetune = [r for r in mini_table1.finetune_runs(p, out) if r.seed == p.seeds[0]]
  return [("pretrain", r) for r in pretrain.values()] + [("finetune", r) for r in finetune]


def _started_by_full(flags, out):
  """The shrunk command, with `out` written as the output folder, is one the `full` case runs
  (demo's are: same tasks, lengths, rates and flags once steps and sizes are shrunk)."""
  full = {tuple(_shrunk(r.flags)) for _, r in _first_commands(mini_table1.PRESETS["full"], "OUT")}
  return tuple(f.replace(out, "OUT") for f in _shrunk(flags)) in full


@pytest.mark.parametrize("preset", ["full", "demo", "gpu"])
def test_every_preset_command_starts_with_its_exact_flags(preset, tmp_path, monkeypatch):
  import synthetic_pretraining.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from synthetic_pretraining import position_split, train  # pylint: disable=import-outside-toplevel
  p = mini_table1.PRESETS[preset]
  out = str(tmp_path)
  monkeypatch.chdir(tmp_path)  # the commands work from any directory
  runs = _first_commands(p, out)
  assert {r.label for kind, r in runs if kind == "finetune"} >= {"random", p.stats_from}
  # A preset whose every shrunk command is one the `full` case starts (demo) starts none again;
  # any other command, and then its pre-training too, runs here.
  new = preset == "full" or not all(_started_by_full(r.flags, out) for _, r in runs)
  started = [r for _, r in runs] if new else []
  for run in started:
    assert train.main(_shrunk(run.flags)) == 0, run.flags
  if not started:  # demo: every command is one of full's with other steps and sizes
    return
  # The driver's position split of a finetuning run starts with its flags too.
  run = runs[-1][1]
  flags = [f for f in _shrunk(run.flags) if not f.startswith("--gin.STATS_SOURCE")
           and "gin/init/" not in f]
  split = position_split.split_run(run.model_dir, 2, flags, task=p.finetune_task, max_batches=1)
  assert split["all"]["tokens"] > 0
