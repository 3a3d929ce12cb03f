"""eval and infer of one of our runs follow that run's config.gin unless told otherwise.

Given `--gin.CHECKPOINT_PATH` naming a MODEL_DIR of ours (or a `checkpoint_<step>` inside one)
and no model gin file on the command line, the run's own `config.gin` (the operative config the
trainer wrote) is read first, so the model and its vocabulary are the ones the run trained; then
the binary's gin files (eval.gin, infer.gin); then the run's task, task module and
TASK_FEATURE_LENGTHS (which the binary's gin file would otherwise reset to its defaults); then the
user's own `--gin.` bindings, which win over everything. A model gin file on the command line
turns this off: the user said which model.
"""
import ast
import logging
from typing import List, Optional, Sequence, Tuple

from synthetic_pretraining import paths

CONFIG = "config.gin"  # training.run_dir.CONFIG (read here without importing the trainer)
# Macros taken from the run unless the command line sets them.
FOLLOWED = ("MIXTURE_OR_TASK_NAME", "MIXTURE_OR_TASK_MODULE", "TASK_FEATURE_LENGTHS")


def _binding_value(bindings: Sequence[str], name: str) -> Optional[str]:
  for binding in reversed(bindings):
    left, _, right = binding.partition("=")
    if left.strip() == name:
      try:
        value = ast.literal_eval(right.strip())
      except (ValueError, SyntaxError):
        return None
      return value if isinstance(value, str) else None
  return None


def run_config(checkpoint_path: str) -> Optional[str]:
  """The config.gin of the run `checkpoint_path` belongs to (its MODEL_DIR or a step in it)."""
  if not checkpoint_path:
    return None
  try:
    for directory in (checkpoint_path, paths.join(checkpoint_path, "..")):
      candidate = paths.join(directory, CONFIG)
      if paths.exists(candidate):
        return paths.as_str(paths.as_path(candidate).resolve()) if not paths.is_remote(
            candidate) else candidate
  except Exception:  # pylint: disable=broad-except  (a bad path is refused later, in one line)
    return None
  return None


def _macro(config_text: str, name: str) -> Optional[str]:
  for line in config_text.splitlines():
    left, sep, right = line.partition("=")
    if sep and left.strip() == name:
      return right.strip()
  return None


def follow(gin_files: List[str], bindings: List[str]) -> Tuple[List[str], List[str]]:
  """(gin files, bindings) for eval/infer, with the run's config.gin when it applies."""
  if any("models/" in f for f in gin_files):
    return gin_files, bindings
  config = run_config(_binding_value(bindings, "CHECKPOINT_PATH"))
  if config is None:
    return gin_files, bindings
  text = paths.read_text(config)
  given = {b.partition("=")[0].strip() for b in bindings}
  inherited = [f"{name} = {value}" for name in FOLLOWED
               if name not in given and (value := _macro(text, name)) is not None]
  logging.info("Following the run's %s for the model, vocabulary, %s (a model gin file or "
               "--gin.NAME=VALUE overrides).", config,
               ", ".join(b.replace(" = ", "=") for b in inherited) or "nothing else")
  return [config, *gin_files], [*inherited, *bindings]
