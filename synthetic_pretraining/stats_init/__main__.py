r"""Writes a statistics-only initialised checkpoint that INITIAL_CHECKPOINT_PATH loads.

  python -m synthetic_pretraining.stats_init --gin_file=gin/models/t5_1_0/small.gin \
    --checkpoint=runs/lime --scheme=per_param_grouping___init_scale --output_dir=runs/init \
    [--stats_out=stats.json] [--seed=42] [--output_format=t5x] [--gin.NAME=VALUE ...]

Sources (--checkpoint): one of our checkpoints or MODEL_DIRs, a t5x checkpoint (msgpack file,
tensorstore or orbax directory), or a stats.json (then --scheme may be left out). Instead of a
scheme, `--set NAME=VALUE` / `--std NAME=STD` (repeatable) set parameter sets of an otherwise
random model to a constant / draw them from N(0, STD) (Table 3: --set pre_attn_ln=0.4).
The model comes from the gin files; parameters outside every group keep the random
initialisation the trainer would give them with the same seed. stats.json goes to --stats_out,
by default OUTPUT_DIR/stats.json. `--list_schemes` prints the valid schemes.
`--output_format=t5x` writes OUTPUT_DIR/checkpoint_0 in t5x's layout instead, for t5x's own
INITIAL_CHECKPOINT_PATH (docs/t5x.md).
"""
import dataclasses
import logging
import sys

import gin
import jax
from flax import traverse_util

from synthetic_pretraining import errors
from synthetic_pretraining import cli
from synthetic_pretraining.training import accelerators
from synthetic_pretraining.checkpointing import orbax_format
from synthetic_pretraining import gin_utils
from synthetic_pretraining.model import models
from synthetic_pretraining.model import partitioning
from synthetic_pretraining import paths
from synthetic_pretraining import startup
from synthetic_pretraining.checkpointing import t5x_writer
from synthetic_pretraining.stats_init import artifact
from synthetic_pretraining.stats_init import groupings
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import sampling
from synthetic_pretraining.stats_init import transform
from synthetic_pretraining.stats_init.errors import StatsInitError


def _parser() -> cli.ArgumentParser:
  p = cli.ArgumentParser(prog="python -m synthetic_pretraining.stats_init",
                         description=__doc__.split("\n")[0])
  p.add_argument("--checkpoint", help="statistics source (checkpoint, t5x checkpoint, stats.json)")
  p.add_argument("--stats_file", help="a stats.json to re-create an initialisation from")
  p.add_argument("--scheme", help="init_id, e.g. per_param_grouping___init_scale")
  p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                 help="set a parameter set (or full-match pattern) to a constant")
  p.add_argument("--std", action="append", default=[], metavar="NAME=STD",
                 help="draw a parameter set (or pattern) from N(0, STD)")
  p.add_argument("--output_dir", help="where to write the params-only checkpoint")
  p.add_argument("--output_format", choices=("orbax", "t5x"), default="orbax",
                 help="orbax: our params-only checkpoint (INITIAL_CHECKPOINT_PATH=OUTPUT_DIR); "
                      "t5x: t5x's layout (INITIAL_CHECKPOINT_PATH=OUTPUT_DIR/checkpoint_0)")
  p.add_argument("--stats_out", help="where to write stats.json (default OUTPUT_DIR/stats.json)")
  p.add_argument("--seed", type=int, default=42, help="the run's seed (as trainer.train.seed)")
  p.add_argument("--keep_random", action="append", default=None, metavar="PATTERN",
                 help=f"never draw these from statistics (default {list(groupings.EMBEDDINGS)})")
  p.add_argument("--list_schemes", action="store_true", help="print the valid schemes and exit")
  return p


def _values(items, flag):
  """{'pre_attn_ln': -0.4} from ['pre_attn_ln=-0.4'] (split at the first '=', so any sign)."""
  out = {}
  for item in items:
    name, _, value = item.partition("=")
    try:
      out[name] = float(value)
    except ValueError:
      name = ""
    if not name:
      raise StatsInitError(f"--{flag} expects NAME=NUMBER, got {item!r}.")
  return out


def _init_key(seed: int) -> jax.Array:
  # As trainer.Trainer: its random initialisation uses the first half of split(key(seed)).
  return jax.random.split(jax.random.key(seed))[0]


def run(args, gin_files, bindings) -> str:
  """Builds the initialisation described by `args`; returns the stats.json path."""
  custom = bool(args.set or args.std)
  if args.scheme is not None:
    procedures.parse_scheme(args.scheme)
  sources_given = [s for s in (args.checkpoint, args.stats_file) if s]
  if custom == bool(sources_given) or len(sources_given) > 1:
    raise StatsInitError("Give one statistics source (--checkpoint or --stats_file) with a "
                         "--scheme, or --set/--std values, not both.")
  if not custom and args.scheme is None and not (args.stats_file or
                                                 args.checkpoint.endswith(".json")):
    raise StatsInitError(f"--scheme is required; one of: {', '.join(procedures.scheme_names())}.")
  if not args.output_dir:
    raise StatsInitError("--output_dir is required.")
  paths.check_writable_dir(args.output_dir, "--output_dir")
  if args.stats_out:
    paths.check_writable_dir(paths.as_path(args.stats_out).parent, "--stats_out's folder")
  if paths.exists(paths.join(args.output_dir, "params")):
    raise errors.OutputExistsError(f"{args.output_dir} already holds a checkpoint; choose an empty directory.")
  if paths.exists(paths.join(t5x_writer.checkpoint_dir(args.output_dir), "checkpoint")):
    raise errors.OutputExistsError(f"{args.output_dir} already holds a t5x checkpoint; choose an empty "
                          "directory.")
  if not gin_files:
    raise StatsInitError("Give the model with --gin_file (e.g. gin/models/t5_1_0/small.gin).")
  gin.clear_config()  # a fresh configuration per call, also when called in-process
  gin_utils.parse(gin_files, bindings)

  jax.config.update("jax_threefry_partitionable", True)
  model = models.EncoderDecoderModel()
  partitioner = partitioning.PjitPartitioner()
  shardings = traverse_util.flatten_dict(partitioner.param_shardings(model.logical_axes()), sep="/")
  shapes = traverse_util.flatten_dict(model.param_shapes(), sep="/")
  abstract = {p: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=shardings[p])
              for p, s in shapes.items()}

  if custom:
    plan = transform.custom_plan(abstract, _values(args.set, "set"), _values(args.std, "std"))
  else:
    source = args.stats_file or args.checkpoint
    keep = tuple(args.keep_random) if args.keep_random is not None else groupings.EMBEDDINGS
    if args.scheme is None:
      plan = transform.plan_from_stats(artifact.read(source), abstract)
    else:
      plan = transform.build_plan(args.scheme, source, abstract, keep_random=keep)

  # Random values only for what the plan leaves alone (XLA drops the rest of the init).
  members = plan.members()
  kept = sorted(p for p in abstract if p not in members)
  random_part = jax.jit(
      lambda key: {p: v for p, v in traverse_util.flatten_dict(
          model.init_params(key), sep="/").items() if p in kept},
      out_shardings={p: shardings[p] for p in kept})(_init_key(args.seed))
  params = dict(random_part)
  params.update(sampling.draw_members(plan, abstract, args.seed))
  summary = transform.summarize(plan, abstract)
  meta = {"model": dataclasses.asdict(model.config), "seed": args.seed,
          "stats_init": {"scheme": plan.scheme, "source": plan.source, "groups": summary.groups}}
  if args.output_format == "t5x":
    t5x_writer.write_checkpoint(args.output_dir, params, step=0)
  else:
    orbax_format.save_params(args.output_dir, traverse_util.unflatten_dict(params, sep="/"), meta)
  stats_out = paths.as_str(args.stats_out or paths.join(args.output_dir, "stats.json"))
  artifact.write(plan, stats_out)
  if jax.process_index() == 0:
    print(f"{plan.scheme}: {summary.groups} groups, {summary.drawn_arrays} arrays "
          f"({summary.drawn_values:,} values) drawn from the statistics of {plan.source}; "
          f"{summary.kept_arrays} kept random.\nWrote {paths.as_str(args.output_dir)} "
          f"and {stats_out}.")
  return stats_out


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input, `cli.run`)."""
  accelerators.hide_gpus_from_tensorflow()  # before JAX allocates (TensorFlow: data only)
  return cli.run(_main, argv)


def _main(argv) -> int:
  startup.configure_logging(logging.INFO)
  gin_files, bindings, rest = gin_utils.split_gin_args(argv)
  args = _parser().parse_args(rest)
  if args.list_schemes:
    print("\n".join(procedures.scheme_names()))
    return 0
  run(args, gin_files, bindings)  # user errors: one line through cli.run
  return 0


if __name__ == "__main__":
  sys.exit(main())  # --verbose: the traceback of a refused run
