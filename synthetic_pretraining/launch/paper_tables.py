r"""The paper's Table 1, 2 and 3 grids on a Cloud TPU VM, then the benefit report.

  python -m synthetic_pretraining.launch.paper_tables --table=1 --bucket=gs://my-bucket/synthetic \
    --tpu=my-tpu --zone=europe-west4-a --accelerator=v3-8 --create --setup [--dry_run]

Table 1: pretrain on each --pretrain_tasks (gin/experiments/pretrain/<task>.gin), then finetune on
  every --downstream task (gin/experiments/finetune/<task>.gin) from random init, from the natural
  pre-trained T5 1.0 small (t5x's released checkpoint, loaded whole) and from each pretrained model
  (token embedding re-initialised, gin/experiments/init/checkpoint.gin).
Table 2: finetune from the statistics of each --stats_sources model, for each --schemes
  (gin/init/<scheme>.gin); pretraining runs for the sources are included.
Table 3: finetune from random init with the pre-attention layer norms set to each --values.
Every run is one command on all workers (launch.tpu_vm); runs that finished are resumed
(and end at once) because MODEL_DIRs are fixed. The report command runs where you launch this.
"""
import itertools
import sys

from synthetic_pretraining.launch import tpu_vm

DOWNSTREAM = ("cnndm", "mtop", "webqsp", "retrosynthesis", "code_translation", "squad")
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


def _csv(value):
  return tuple(v for v in value.split(",") if v)


def _parser():
  p = tpu_vm.parser()
  p.prog = "python -m synthetic_pretraining.launch.paper_tables"
  p.description = __doc__
  p.add_argument("--table", type=int, choices=(1, 2, 3), required=True)
  p.add_argument("--bucket", required=True, help="gs:// prefix for every MODEL_DIR")
  p.add_argument("--downstream", type=_csv, default=DOWNSTREAM)
  p.add_argument("--pretrain_tasks", type=_csv, default=TABLE1_TASKS)
  p.add_argument("--stats_sources", type=_csv, default=("set",))
  p.add_argument("--schemes", type=_csv, default=SCHEMES)
  p.add_argument("--values", type=_csv, default=("0.4",), help="Table 3 layer-norm values")
  p.add_argument("--seeds", type=_csv, default=("42",))
  return p


def _finetune(args, task, label, seed, *extra):
  model_dir = f"{args.bucket}/finetune/{task}/{label}/seed_{seed}"
  command = [*TRAIN, f"--gin_file=gin/experiments/finetune/{task}.gin", *extra,
             f"--gin.MODEL_DIR='{model_dir}'", f"--gin.SEED={seed}",
             f"--gin.run_label.label='{label}'"]  # the method's name in the report (run.json)
  return model_dir, command


def grid(args):
  """(commands to run on the workers, finetuning MODEL_DIRs) of the chosen table."""
  pretrain = {"1": args.pretrain_tasks, "2": args.stats_sources, "3": ()}[str(args.table)]
  commands = [[*TRAIN, f"--gin_file=gin/experiments/pretrain/{t}.gin",
               f"--gin.MODEL_DIR='{args.bucket}/pretrain/{t}'"] for t in pretrain]
  inits = []  # (label, extra train flags)
  if args.table == 1:
    commands.append(["gsutil", "-m", "cp", "-r", NATURAL_T5X_CHECKPOINT, NATURAL_LOCAL])
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
    commands.append(command)
  return commands, run_dirs


def main(argv=None) -> int:
  """Entry point (see the module docstring)."""
  args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
  unknown = [t for t in args.downstream if t not in DOWNSTREAM]
  if unknown:
    print(f"error: unknown downstream task(s) {unknown}; choose from {', '.join(DOWNSTREAM)}",
          file=sys.stderr)
    return 2
  try:
    source = tpu_vm.check(args)
  except tpu_vm.LaunchError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  tpu_vm.prepare(args, source)
  commands, run_dirs = grid(args)
  print(f"# Table {args.table}: {len(commands)} commands on every worker, "
        f"{len(run_dirs)} finetuning runs")
  tpu_vm.execute([tpu_vm.run_command(args, c) for c in commands], args.dry_run)
  report = ["python3", "-m", "synthetic_pretraining.report", *run_dirs,
            f"--output_dir={args.bucket}/report/table{args.table}", "--metrics=default"]
  tpu_vm.execute([report], args.dry_run)
  return 0


if __name__ == "__main__":
  sys.exit(main())
