"""The toy run that end-to-end tests start from: one argument list, named tiny models.

`args(model_dir, steps, *extra)` is the train binary's command line for the toy task
(tests/toy_tasks.py) on the CPU model shrunk to `TINY`; `run=` picks gin/runs/<run>.gin, and
`model=`, `lengths=`, `batch=` change what a test needs changed. Later flags override earlier
ones, so `extra` can rebind anything. `shared_run_args` is the session's one shared trained run
(the `trained_toy_run` fixture), for tests that only read a trained run.
"""
import toy_tasks

CPU_MODEL = "--gin_file=gin/models/t5_1_0/cpu.gin"
# One layer each side, narrow: the cheapest model that still learns the toy task a little.
TINY = ("--gin.network.T5Config.emb_dim=32", "--gin.network.T5Config.mlp_dim=64",
        "--gin.network.T5Config.num_encoder_layers=1", "--gin.network.T5Config.num_decoder_layers=1")
# Two heads of 8 over emb 16 (the CPU model's depth): checks that need several heads and layers.
NARROW = ("--gin.network.T5Config.emb_dim=16", "--gin.network.T5Config.mlp_dim=32",
          "--gin.network.T5Config.num_heads=2", "--gin.network.T5Config.head_dim=8")
# Wide enough to learn the toy task in 150 steps (tests that check learning).
LEARNER = ("--gin.network.T5Config.emb_dim=64", "--gin.network.T5Config.mlp_dim=128")
# The session's shared trained run (`trained_toy_run` in conftest.py): the learner with one
# decoder layer more than encoder layers, so that code mixing the two stacks up fails on it.
SHARED_MODEL = (*LEARNER, "--gin.network.T5Config.num_decoder_layers=3")
SHARED_STEPS = 30
SHARED_LENGTHS = (12, 12)


def lengths_flag(inputs: int, targets: int) -> str:
  return f"--gin.TASK_FEATURE_LENGTHS={{'inputs': {inputs}, 'targets': {targets}}}"


def task_flags(task: str = toy_tasks.TOY_TASK, module: str = "'toy_tasks'"):
  return [f"--gin.MIXTURE_OR_TASK_NAME='{task}'", f"--gin.MIXTURE_OR_TASK_MODULE={module}"]


def args(model_dir, steps, *extra, run="pretrain", model=TINY, lengths=(10, 10), batch=8,
         eval_steps=2, task=toy_tasks.TOY_TASK):
  """The train binary's flags for `steps` steps of the toy task into `model_dir`."""
  return [CPU_MODEL, f"--gin_file=gin/runs/{run}.gin", *task_flags(task),
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}",
          f"--gin.BATCH_SIZE={batch}", lengths_flag(*lengths), f"--gin.EVAL_STEPS={eval_steps}",
          *model, *extra]


def shared_run_args(model_dir):
  """The flags of the session's shared trained run (one checkpoint, at SHARED_STEPS)."""
  return args(model_dir, SHARED_STEPS, f"--gin.EVAL_PERIOD={SHARED_STEPS}", model=SHARED_MODEL,
              lengths=SHARED_LENGTHS, batch=16)
