r"""The paper's Table 1, 2 and 3 grids on a Cloud TPU VM, then the benefit report.

  python -m synthetic_pretraining.launch.paper_tables --table=1 \
    --bucket=gs://my-bucket/synthetic --data_dir=gs://my-bucket/data \
    --tpu=my-tpu --zone=europe-west4-a --accelerator=v3-8 --create --setup [--dry_run]

Table 1: pretrain on each --pretrain_tasks (gin/experiments/pretrain/<task>.gin), then finetune on
  every --downstream task (gin/experiments/finetune/<task>.gin) from random init, from the natural
  pre-trained T5 1.0 small (t5x's released checkpoint, loaded whole) and from each pretrained model
  (token embedding re-initialised, gin/experiments/init/checkpoint.gin).
Table 2: finetune from the statistics of each --stats_sources model, for each --schemes
  (gin/init/<scheme>.gin); pretraining runs for the sources are included.
Table 3: finetune from random init with the pre-attention layer norms set to each --values.

Data: every finetuning command gets --gin.DATA_DIR=<--data_dir>. cnndm, mtop, webqsp,
  retrosynthesis and code_translation read the authors' files
  <data_dir>/finetuning_data/<task>/{train,valid,test}.txt (docs/finetuning.md); squad reads TFDS
  squad/v1.1:3.0.0 prepared under --tfds_data_dir (default <data_dir>/tensorflow_datasets; its
  runs get TFDS_DATA_DIR), which TFDS never downloads during a run: prepare it once where the
  network is reachable, e.g.
    python -c "import tensorflow_datasets as tfds; tfds.builder('squad/v1.1:3.0.0',
      data_dir='gs://my-bucket/data/tensorflow_datasets').download_and_prepare()"
Pre-flight, before the first command (also with --dry_run): each downstream task's files (or the
  prepared TFDS dataset), every gin file of every command, the bucket (a gs:// URL) and the values
  of the flags; one line names what is missing. Then an estimate of the time on the slice
  (FLOPs of every step at an assumed effective rate, --tflops; decoding evals and run starts).
Every run is one command on all workers (tpu_vm, whose --create/--setup/--ship/--extra apply);
runs that finished are resumed (and end at once) because MODEL_DIRs are fixed. The report
command runs where you launch this.
"""
import ast
import itertools
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from synthetic_pretraining import paths
from synthetic_pretraining.launch import tpu_vm

DOWNSTREAM = ("cnndm", "mtop", "webqsp", "retrosynthesis", "code_translation", "squad")
# The task each downstream gin file trains on, and what it reads.
TSV_TASKS = {"cnndm": "cnndm_10k", "mtop": "mtop", "webqsp": "webqsp",
             "retrosynthesis": "retrosynthesis", "code_translation": "code_translation"}
SPLIT_FILES = ("train.txt", "valid.txt", "test.txt")  # tasks/natural.py's layout
SQUAD_TFDS = ("squad", "v1.1", "3.0.0")
TABLE1_TASKS = ("lime", "set", "identity", "nonsense_summary", "nesting_language")
SCHEMES = ("per_param_grouping___init_mean_std", "per_param_grouping___init_scale",
           "across_ALL_layer_AND_per_layer_grouping___init_scale",
           "across_ALL_layer_grouping___init_scale", "per_layer_grouping___init_scale",
           "preattnln_per_param_grouping___init_scale",
           "premlpln_per_param_grouping___init_scale", "qkvo_per_param_grouping___init_scale",
           "mlp_per_param_grouping___init_scale")
NATURAL_T5X_CHECKPOINT = "gs://t5-data/pretrained_models/t5x/t5_small/checkpoint_1000000"
NATURAL_LOCAL = "natural_t5_small"  # copied to every worker: t5x checkpoints are read locally
TRAIN = ("python3", "-m", "synthetic_pretraining.train")

# The estimate. Dense bf16 peak TFLOP/s per chip and how the slice name counts (cores or
# TensorCores: 2 per chip; chips for v5e and v6e), from the vendors' data sheets.
PEAK_TFLOPS_PER_CHIP = {"v2": 45.0, "v3": 123.0, "v4": 275.0, "v5p": 459.0, "v5litepod": 197.0,
                        "v6e": 918.0}
UNITS_PER_CHIP = {"v2": 2, "v3": 2, "v4": 2, "v5p": 2, "v5litepod": 1, "v6e": 1}
ASSUMED_MFU = 0.3  # of the slice's peak, for T5 1.0 small (512 wide): an assumption, not measured
DECODE_STEP_SECONDS = 0.02  # one beam-search step of a batch (latency-bound), assumed
RUN_START_SECONDS = 300.0  # start, compile, data, checkpoints of a run, assumed
# T5 1.0 small (gin/experiments/paper_model.gin), the shapes model/flops.py counts.
T5_SMALL = dict(emb_dim=512, num_heads=8, head_dim=64, mlp_dim=2048, activations=("relu",),
                vocab_size=32128, num_encoder_layers=6, num_decoder_layers=6)


class _Config:  # the attributes model/flops.py reads
  def __init__(self, **values):
    self.__dict__.update(values)


def _csv(value):
  return tuple(v for v in value.split(",") if v)


def _parser():
  p = tpu_vm.parser()
  p.prog = "python -m synthetic_pretraining.launch.paper_tables"
  p.description = __doc__
  p.add_argument("--table", type=int, choices=(1, 2, 3), required=True)
  p.add_argument("--bucket", required=True, help="gs:// prefix for every MODEL_DIR and the report")
  p.add_argument("--data_dir", default=None,
                 help="DATA_DIR of the downstream tasks (local or gs://; the workers read it)")
  p.add_argument("--tfds_data_dir", default=None,
                 help="where TFDS squad/v1.1:3.0.0 is prepared (default "
                      "<data_dir>/tensorflow_datasets)")
  p.add_argument("--downstream", type=_csv, default=DOWNSTREAM)
  p.add_argument("--pretrain_tasks", type=_csv, default=TABLE1_TASKS)
  p.add_argument("--stats_sources", type=_csv, default=("set",))
  p.add_argument("--schemes", type=_csv, default=SCHEMES)
  p.add_argument("--values", type=_csv, default=("0.4",), help="Table 3 layer-norm values")
  p.add_argument("--seeds", type=_csv, default=("42",))
  p.add_argument("--tflops", type=float, default=None,
                 help="effective TFLOP/s of the slice for the time estimate (default: "
                      f"{ASSUMED_MFU * 100:.0f}%% of its bf16 peak)")
  return p


def _tfds_dir(args) -> Optional[str]:
  if args.tfds_data_dir:
    return args.tfds_data_dir
  return _join(args.data_dir, "tensorflow_datasets") if args.data_dir else None


def _join(base: str, *parts: str) -> str:
  return "/".join([base.rstrip("/"), *parts])


def _finetune(args, task, label, seed, *extra):
  model_dir = f"{args.bucket}/finetune/{task}/{label}/seed_{seed}"
  command = [*TRAIN, f"--gin_file=gin/experiments/finetune/{task}.gin", *extra,
             f"--gin.MODEL_DIR='{model_dir}'", f"--gin.SEED={seed}",
             f"--gin.run_label.label='{label}'"]  # the method's name in the report (run.json)
  if args.data_dir:
    command.append(f"--gin.DATA_DIR='{args.data_dir}'")
  return model_dir, command


def grid(args) -> Tuple[List[Tuple[List[str], Dict[str, str]]], List[str]]:
  """([(command to run on the workers, its environment)], finetuning MODEL_DIRs) of the table."""
  pretrain = {"1": args.pretrain_tasks, "2": args.stats_sources, "3": ()}[str(args.table)]
  commands = [([*TRAIN, f"--gin_file=gin/experiments/pretrain/{t}.gin",
                f"--gin.MODEL_DIR='{args.bucket}/pretrain/{t}'"], {}) for t in pretrain]
  inits = []  # (label, extra train flags)
  if args.table == 1:
    commands.append((["gsutil", "-m", "cp", "-r", NATURAL_T5X_CHECKPOINT, NATURAL_LOCAL], {}))
    inits += [("random", ["--gin_file=gin/experiments/init/random.gin"]),
              ("natural", ["--gin_file=gin/experiments/init/checkpoint_load_all.gin",
                           f"--gin.PRETRAINED_CHECKPOINT='{NATURAL_LOCAL}'"])]
    inits += [(t, ["--gin_file=gin/experiments/init/checkpoint.gin",
                   f"--gin.PRETRAINED_CHECKPOINT='{args.bucket}/pretrain/{t}'"]) for t in pretrain]
  elif args.table == 2:
    inits += [(f"{scheme}@{source}", [f"--gin_file=gin/init/{scheme}.gin",
                                      f"--gin.STATS_SOURCE='{args.bucket}/pretrain/{source}'"])
              for source, scheme in itertools.product(pretrain, args.schemes)]
  else:
    inits += [(f"pre_attn_ln={v}", ["--gin_file=gin/init/pre_attn_ln_constant.gin",
                                     f"--gin.PRE_ATTN_LN_VALUE={float(v)}"]) for v in args.values]
  run_dirs = []
  for task, (label, extra), seed in itertools.product(args.downstream, inits, args.seeds):
    model_dir, command = _finetune(args, task, label, seed, *extra)
    run_dirs.append(model_dir)
    env = {"TFDS_DATA_DIR": _tfds_dir(args)} if task == "squad" and _tfds_dir(args) else {}
    commands.append((command, env))
  return commands, run_dirs


# Pre-flight ---------------------------------------------------------------------------------------

class PreflightError(tpu_vm.LaunchError):
  """An input of the grid is missing or wrong (one line)."""


def _gin_file_exists(name: str) -> bool:
  from synthetic_pretraining import resources  # pylint: disable=import-outside-toplevel
  return os.path.isfile(name) or resources.find_gin_file(name) is not None


def missing_data(args) -> List[str]:
  """What the downstream tasks need and is not there (each as 'task: what')."""
  missing = []
  tsv = [t for t in args.downstream if t in TSV_TASKS]
  if tsv and not args.data_dir:
    return [f"{', '.join(tsv)}: --data_dir is not given (the authors' files under "
            "<data_dir>/finetuning_data/<task>/, docs/finetuning.md)"]
  if tsv and not paths.exists(args.data_dir):
    return [f"--data_dir={args.data_dir} does not exist"]
  for task in tsv:
    for name in SPLIT_FILES:
      path = _join(args.data_dir, "finetuning_data", TSV_TASKS[task], name)
      if not paths.exists(path):
        missing.append(f"{task}: {path}")
  if "squad" in args.downstream:
    tfds = _tfds_dir(args)
    if not tfds:
      missing.append("squad: TFDS squad/v1.1:3.0.0 (give --data_dir or --tfds_data_dir)")
    elif not paths.exists(_join(tfds, *SQUAD_TFDS, "dataset_info.json")):
      missing.append(f"squad: TFDS squad/v1.1:3.0.0 is not prepared in {tfds} (see --help)")
  return missing


def preflight(args, commands: Sequence[Tuple[List[str], Dict[str, str]]]) -> None:
  """Every input of the grid, before anything runs; PreflightError names what is wrong."""
  unknown = [t for t in args.downstream if t not in DOWNSTREAM]
  if unknown:
    raise PreflightError(f"unknown downstream task(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(DOWNSTREAM)}")
  for seed in args.seeds:
    if not re.fullmatch(r"-?\d+", seed):
      raise PreflightError(f"--seeds: {seed!r} is not an integer")
  if not args.bucket.startswith("gs://"):
    raise PreflightError(f"--bucket={args.bucket} must be a gs:// URL: every worker writes its "
                         "shards of the checkpoints there and the report reads them")
  gin_files = sorted({c[len("--gin_file="):] for command, _ in commands for c in command
                      if c.startswith("--gin_file=")})
  absent = [g for g in gin_files if not _gin_file_exists(g)]
  if absent:
    raise PreflightError(f"gin file(s) not found: {', '.join(absent)}")
  missing = missing_data(args)
  if missing:
    more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
    raise PreflightError("the downstream data is missing, so the finetuning runs would fail "
                         f"after the pre-training: {'; '.join(missing[:3])}{more}")


# The estimate -------------------------------------------------------------------------------------

def gin_macros(name: str, seen=None) -> Dict[str, object]:
  """The UPPER_CASE macros a gin file sets (its includes first), where they are literals."""
  from synthetic_pretraining import resources  # pylint: disable=import-outside-toplevel
  seen = set() if seen is None else seen
  path = name if os.path.isfile(name) else resources.find_gin_file(name)
  if path is None or path in seen:
    return {}
  seen.add(path)
  macros = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      include = re.match(r"\s*include\s+['\"](.+)['\"]", line)
      if include:
        macros.update(gin_macros(include.group(1), seen))
        continue
      assignment = re.match(r"([A-Z][A-Z0-9_]*)\s*=\s*(.+?)\s*$", line)
      if assignment:
        try:
          macros[assignment.group(1)] = ast.literal_eval(assignment.group(2))
        except (ValueError, SyntaxError):
          macros.pop(assignment.group(1), None)
  return macros


def _macros_of(command: Sequence[str]) -> Dict[str, object]:
  macros = {}
  for arg in command:
    if arg.startswith("--gin_file="):
      macros.update(gin_macros(arg[len("--gin_file="):]))
    match = re.fullmatch(r"--gin\.([A-Z][A-Z0-9_]*)=(.+)", arg)
    if match:
      try:
        macros[match.group(1)] = ast.literal_eval(match.group(2))
      except (ValueError, SyntaxError):
        pass
  return macros


def slice_tflops(accelerator: str) -> float:
  """The slice's dense bf16 peak in TFLOP/s."""
  family, size = accelerator.rsplit("-", 1)
  return PEAK_TFLOPS_PER_CHIP[family] * int(size) / UNITS_PER_CHIP[family]


def run_seconds(command: Sequence[str], tflops: float) -> Optional[float]:
  """Estimated seconds of one training run on the slice (None for other commands)."""
  if tuple(command[:3]) != TRAIN:
    return None
  from synthetic_pretraining.model import flops  # pylint: disable=import-outside-toplevel
  m = _macros_of(command)
  steps, batch, lengths = m.get("TRAIN_STEPS"), m.get("BATCH_SIZE"), m.get("TASK_FEATURE_LENGTHS")
  if not (isinstance(steps, int) and isinstance(batch, int) and isinstance(lengths, dict)):
    return None
  model = _Config(**T5_SMALL)
  step_flops = flops.train_step_flops(model, batch, lengths["inputs"], lengths["targets"])
  seconds = steps * step_flops / (tflops * 1e12) + RUN_START_SECONDS
  period = m.get("EVAL_PERIOD")
  if isinstance(period, int) and period > 0:
    evals = -(-steps // period)
    eval_steps = m.get("EVAL_STEPS") if isinstance(m.get("EVAL_STEPS"), int) else 0
    seconds += evals * eval_steps * step_flops / 3 / (tflops * 1e12)  # teacher-forced: forward
    examples = m.get("EVALUATOR_NUM_EXAMPLES")
    if "finetune" in " ".join(command) and isinstance(examples, int):  # decoding evals
      length = m.get("MAX_DECODE_LENGTH") or lengths["targets"]
      seconds += evals * -(-examples // batch) * length * DECODE_STEP_SECONDS
  return seconds


def estimate(args, commands) -> str:
  """One comment line: the estimated time of the grid on the slice."""
  tflops = args.tflops or ASSUMED_MFU * slice_tflops(args.accelerator)
  pretrain = finetune = 0.0
  for command, _ in commands:
    seconds = run_seconds(command, tflops)
    if seconds is None:
      continue
    if any("experiments/pretrain/" in c for c in command):
      pretrain += seconds
    else:
      finetune += seconds
  assumed = ("--tflops" if args.tflops else
             f"{ASSUMED_MFU:.0%} of {args.accelerator}'s {slice_tflops(args.accelerator):.0f} "
             "TFLOP/s bf16 peak, --tflops to change")
  return (f"# estimate: about {(pretrain + finetune) / 3600:.0f} h on {args.accelerator} "
          f"(pre-training {pretrain / 3600:.0f} h, finetuning {finetune / 3600:.0f} h with its "
          f"decoding evals), runs one after another at {tflops:.0f} TFLOP/s effective ({assumed}), "
          f"{DECODE_STEP_SECONDS * 1000:.0f} ms per beam-search step, "
          f"{RUN_START_SECONDS / 60:.0f} min per run start: a rough guide, not a measurement")


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  try:
    source = tpu_vm.check(args)
    try:
      commands, run_dirs = grid(args)
    except ValueError as e:
      raise PreflightError(f"--values: {e}") from None
    preflight(args, commands)
  except tpu_vm.LaunchError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"# Table {args.table}: {len(commands)} commands on every worker, "
        f"{len(run_dirs)} finetuning runs")
  print(estimate(args, commands), flush=True)
  if args.data_dir and "://" not in args.data_dir:
    print(f"# --data_dir={args.data_dir} is a local path: every worker must have it there too")
  tpu_vm.prepare(args, source)
  tpu_vm.execute([tpu_vm.run_command(args, c, env) for c, env in commands], args.dry_run)
  report = ["python3", "-m", "synthetic_pretraining.report", *run_dirs,
            f"--output_dir={args.bucket}/report/table{args.table}", "--metrics=default"]
  tpu_vm.execute([report], args.dry_run)
  return 0


if __name__ == "__main__":
  sys.exit(main())
