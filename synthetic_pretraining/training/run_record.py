"""`run.json`: what a training run was, as data, beside its `config.gin`.

The report and the launchers read this record instead of parsing gin text: the task, the seed,
the lengths and steps, and how the parameters were initialised (random, a checkpoint and its load
mode, or a statistics-only / custom-value initialiser with its scheme and source). The trainer
writes it once a run has its initial state (`trainer.train`, next to config.gin).

    {"version": 1, "task": "squad_offline", "seed": 1, "train_steps": 300, "batch_size": 32,
     "lengths": {"inputs": 512, "targets": 32}, "label": null,
     "init": {"kind": "checkpoint", "path": "/runs/pretrain/set", "load": "all_but_embedding",
              "format": "ours"}}

A staged run (`trainer.train.stages`, training/stages.py) also has `stages`, one entry per stage
in order, kept up to date at every train record and checkpoint; its `task` joins the stages'
tasks ('shuffle_dyck->natural_text'):

    "stages": [{"task": "shuffle_dyck", "split": "train", "start_step": 0, "end_step": 1000,
                "steps": 1000, "tokens": 2809000, "target_tokens": 2297000}, ...]

`start_step`/`end_step` are the planned bounds (the last stage's `end_step` is null: until
TRAIN_STEPS), `steps` the steps trained so far, `tokens` the non-padding tokens the model read
(inputs and targets) and `target_tokens` those the loss scored, every process's rows counted.

`init.kind` is one of 'random', 'checkpoint', 'statistics' (with `scheme` and `source`) and
'custom' (with `constants` and `stds`). `label` is an optional name for the method the run
stands for (gin: `run_label.label = 'set'`), which reports prefer over a derived name.

Provenance: a checkpoint init (and a statistics source) records where it came from: `format`
'ours' (a run or checkpoint of this framework), 't5x' or 'transformers' (a Hugging Face T5
directory, with `model`: its name, e.g. 't5-small'); `describe_origin` names it in reports.
"""
import dataclasses
import json
from typing import Any, Dict, List, Mapping, Optional

import gin

from synthetic_pretraining import paths
from synthetic_pretraining.training import run_dir

FILENAME = run_dir.RUN_RECORD
VERSION = 1


@gin.configurable
def run_label(label: Optional[str] = None) -> Optional[str]:
  """The method name a run stands for in reports (gin: `run_label.label = 'set'`)."""
  return label


@dataclasses.dataclass
class RunRecord:
  """One run, as `run.json` holds it (see the module docstring)."""
  task: str
  seed: int
  train_steps: int
  batch_size: int
  lengths: Dict[str, int]
  init: Dict[str, Any]
  label: Optional[str] = None
  version: int = VERSION
  stages: Optional[List[Dict[str, Any]]] = None  # staged runs only (module docstring)

  def method(self, source_task=None) -> str:
    """The method's name: `label`, else one derived from `init`.

    Args:
      source_task: optional `fn(path) -> task or None` naming the pre-training task of a
        checkpoint (the report passes one that reads the source's own run.json).
    """
    if self.label:
      return self.label
    kind = self.init.get("kind")
    name = lambda path: (source_task(path) if source_task else None) or str(path)
    if kind == "checkpoint" and self.init.get("format") == "transformers":
      return f"transformers:{self.init.get('model')}"
    if kind == "checkpoint":
      return name(self.init["path"])
    if kind == "statistics":
      return f"stats:{self.init.get('scheme')}({name(self.init.get('source'))})"
    if kind == "custom":
      items = [f"{k}={v:g}" for k, v in sorted(self.init.get("constants", {}).items())]
      items += [f"{k}~N(0,{v:g})" for k, v in sorted(self.init.get("stds", {}).items())]
      return "custom:" + ",".join(items)
    return "random"


def checkpoint_origin(path: Optional[str]) -> Dict[str, Any]:
  """{'format': 'ours' | 't5x' | 'transformers' [, 'model': name]} of a checkpoint path ({} when
  it cannot be classified now, e.g. a source that has gone)."""
  if not path:
    return {}
  # Imported here: the checkpoint layer is needed only by runs that start from a checkpoint.
  from synthetic_pretraining.checkpointing import resolver  # pylint: disable=import-outside-toplevel
  try:
    found = resolver.resolve(paths.as_str(path), allow_stats=True)
  except (ValueError, OSError):  # UsageError is a ValueError
    return {}
  if found.kind == "stats":
    return {"format": "stats"}
  origin: Dict[str, Any] = {"format": "t5x" if found.kind.startswith("t5x") else found.kind}
  if found.kind == "transformers":
    from synthetic_pretraining.checkpointing import hf_format  # pylint: disable=import-outside-toplevel
    try:
      name = hf_format.read_config(found.step_dir).get("_name_or_path")
    except ValueError:
      name = None
    origin["model"] = str(name or found.step_dir.rstrip("/").rsplit("/", 1)[-1])
  return origin


def describe_origin(init: Mapping[str, Any]) -> str:
  """A short phrase naming where an `init` entry's checkpoint came from (for reports)."""
  path = init.get("path") or init.get("source")
  fmt = init.get("format") or init.get("source_format")
  if init.get("kind") == "random":
    return "random initialisation"
  if fmt == "transformers":
    return f"the transformers T5 '{init.get('model') or init.get('source_model')}' ({path})"
  if fmt == "t5x":
    return f"a t5x checkpoint ({path})"
  if init.get("kind") == "statistics":
    return f"statistics ({init.get('scheme')}) of {path}"
  return f"a run of this framework ({path})" if fmt == "ours" else str(path)


def describe_init(initial_checkpoint_path: Optional[str], initial_checkpoint_load: str,
                  param_initializer) -> Dict[str, Any]:
  """The `init` entry of a run from the trainer's arguments.

  A statistics initialiser (`stats_init.StatisticsInitializer`) or a custom-value one is read by
  its attributes (scheme, checkpoint / stats_file; constants, stds); a starting checkpoint they
  are applied on top of is kept under `base`.
  """
  base = ({"kind": "checkpoint", "path": paths.as_str(initial_checkpoint_path),
           "load": initial_checkpoint_load, **checkpoint_origin(initial_checkpoint_path)}
          if initial_checkpoint_path else {"kind": "random"})
  if param_initializer is None:
    made = _made_by_stats_init(initial_checkpoint_path) if initial_checkpoint_path else None
    if made:  # the same method as a run whose gin/init/ file draws the statistics itself
      source = made.get("source")
      return {"kind": "statistics", "scheme": made.get("scheme"),
              "source": paths.as_str(source) if source else None, "base": base}
    return base
  if getattr(param_initializer, "scheme", None):
    source = param_initializer.checkpoint or param_initializer.stats_file
    init = {"kind": "statistics", "scheme": param_initializer.scheme,
            "source": paths.as_str(source) if source else None}
    init.update({f"source_{k}": v for k, v in checkpoint_origin(source).items()})
  elif hasattr(param_initializer, "constants"):
    init = {"kind": "custom", "constants": dict(param_initializer.constants),
            "stds": dict(getattr(param_initializer, "stds", {}))}
  else:
    init = {"kind": "custom", "initializer": type(param_initializer).__name__}
  if base["kind"] != "random":
    init["base"] = base
  return init


def _made_by_stats_init(path: str) -> Optional[Dict[str, Any]]:
  """{'scheme', 'source'} when `path` is a checkpoint written by the stats_init binary (its meta
  records them), else None; never an error (a run.json is a record, not a check)."""
  from synthetic_pretraining.checkpointing import orbax_format  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.checkpointing import resolver  # pylint: disable=import-outside-toplevel
  try:
    found = resolver.resolve(path)
    if found.kind != "ours":
      return None
    made = orbax_format.read_meta(found.step_dir).get("stats_init")
  except Exception:  # pylint: disable=broad-except
    return None
  return made if isinstance(made, dict) and made.get("scheme") else None


def write(model_dir: str, *, train_dataset_cfg, seed: int, total_steps: int,
          initial_checkpoint_path: Optional[str] = None, initial_checkpoint_load: str = "all",
          param_initializer=None, task: Optional[str] = None,
          stages: Optional[List[Dict[str, Any]]] = None) -> RunRecord:
  """Writes MODEL_DIR/run.json for a run of `trainer.train` (its own arguments) and returns it.

  A staged run passes its `task` name and `stages` entries; a run without stages has no `stages`
  key at all."""
  record = RunRecord(
      task=str(task or train_dataset_cfg.mixture_or_task_name), seed=int(seed),
      train_steps=int(total_steps), batch_size=int(train_dataset_cfg.batch_size),
      lengths={k: int(v) for k, v in dict(train_dataset_cfg.task_feature_lengths).items()},
      init=describe_init(initial_checkpoint_path, initial_checkpoint_load, param_initializer),
      label=run_label(), stages=stages)
  values = dataclasses.asdict(record)
  if stages is None:
    del values["stages"]
  paths.write_atomic(paths.join(model_dir, FILENAME),
                     json.dumps(values, indent=1, sort_keys=True) + "\n")
  return record


def from_dict(values: Mapping[str, Any], where: str = FILENAME) -> RunRecord:
  """A RunRecord from parsed JSON; a one-line error names the file and the missing fields."""
  names = {f.name for f in dataclasses.fields(RunRecord)}
  required = {f.name for f in dataclasses.fields(RunRecord)
              if f.default is dataclasses.MISSING}
  missing = sorted(required - set(values))
  if missing:
    raise ValueError(f"{where}: not a run record (missing {', '.join(missing)}).")
  return RunRecord(**{k: v for k, v in values.items() if k in names})


def read(model_dir: str) -> Optional[RunRecord]:
  """MODEL_DIR/run.json, or None when the run wrote none (a run older than run records)."""
  path = paths.join(model_dir, FILENAME)
  if not paths.exists(path):
    return None
  try:
    values = json.loads(paths.read_text(path))
  except ValueError as e:
    raise ValueError(f"{path}: not JSON ({e}).") from e
  return from_dict(values, path)


def source_task(path: str) -> Optional[str]:
  """The task a checkpoint was trained on, from its run's run.json (a MODEL_DIR, one of its
  `checkpoint_<step>` directories, or a stats.json beside one); None when there is none."""
  candidate = paths.as_path(path)
  for directory in (candidate, candidate.parent):
    record = read(str(directory)) if paths.isdir(directory) else None
    if record is not None:
      return record.task
  return None
