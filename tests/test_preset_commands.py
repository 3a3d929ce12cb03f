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


@pytest.mark.parametrize("preset", ["full", "demo", "gpu"])
def test_every_preset_command_starts_with_its_exact_flags(preset, tmp_path, monkeypatch):
  import synthetic_pretraining.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from synthetic_pretraining import position_split, train  # pylint: disable=import-outside-toplevel
  p = mini_table1.PRESETS[preset]
  out = str(tmp_path)
  monkeypatch.chdir(tmp_path)  # the commands work from any directory
  # Each pre-training task once (its first seed), then every init of the first finetuning seed;
  # later Set seeds are pointed at the first one's checkpoint.
  pretrain = {}
  for run in mini_table1.pretrain_runs(p, out):
    pretrain.setdefault(run.label, run)
  for run in pretrain.values():
    assert train.main(_shrunk(run.flags)) == 0, run.flags
  finetune = [r for r in mini_table1.finetune_runs(p, out) if r.seed == p.seeds[0]]
  assert {r.label for r in finetune} >= {"random", p.stats_from}
  for run in finetune:
    assert train.main(_shrunk(run.flags)) == 0, run.flags
  # The driver's position split of a finetuning run starts with its flags too.
  run = finetune[-1]
  flags = [f for f in _shrunk(run.flags) if not f.startswith("--gin.STATS_SOURCE")
           and "gin/init/" not in f]
  split = position_split.split_run(run.model_dir, 2, flags, task=p.finetune_task, max_batches=1)
  assert split["all"]["tokens"] > 0
