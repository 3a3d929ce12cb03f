"""The files of a run directory (MODEL_DIR, EVAL_OUTPUT_DIR, INFER_OUTPUT_DIR), named once.

    MODEL_DIR/
      checkpoint_<step>/      orbax checkpoints (checkpointing.orbax_format names these)
      config.gin              the operative gin configuration (t5x's name)
      run.json                what the run was, as data (run_record)
      model-info.txt          every parameter with its shape and sharding (t5x's name)
      metrics.jsonl           one JSON line per metrics record (metrics_writer)
      train/, training_eval/<task>/, inference_eval/<task>/   TensorBoard events (t5x's layout)
      inference_eval/<task>-<step>.jsonl, <task>-metrics.jsonl  decoded examples (seqio's names)
      run.lock                the one writer's lock (run_lock)
      position_split.json     a finetuning run's position split (position_split; the report reads it)

Readers (the report, launchers, tests) and writers use these names, not string literals.
"""
import gin
import jax

from synthetic_pretraining import paths

CONFIG = "config.gin"
RUN_RECORD = "run.json"
MODEL_INFO = "model-info.txt"
METRICS_LOG = "metrics.jsonl"
LOCK = "run.lock"
INFERENCE_DIR = "inference_eval"
POSITION_SPLIT = "position_split.json"
# TensorBoard folder of each metrics kind.
TENSORBOARD_DIRS = {"train": "train", "eval": "training_eval", "infer": INFERENCE_DIR}


def path(run_dir: paths.PathLike, name: str) -> str:
  """The path of one of the files above in `run_dir`."""
  return paths.join(run_dir, name)


def write_config(run_dir: paths.PathLike) -> None:
  """Writes the operative gin configuration to `run_dir/config.gin` (process 0 only)."""
  if jax.process_index() == 0:
    paths.write_atomic(path(run_dir, CONFIG), gin.config_str())
