r"""Run a command on every worker of a Cloud TPU VM (single host or pod slice).

  python -m synthetic_pretraining.launch.tpu_vm --tpu=my-tpu --zone=europe-west4-a --accelerator=v3-32 --create \
    --setup -- python3 -m synthetic_pretraining.train \
      --gin_file=gin/experiments/pretrain/set.gin --gin.MODEL_DIR="'gs://my-bucket/pretrain/set'"

Steps, each a gcloud command (printed, not run, with --dry_run):
  --create  creates the TPU VM unless one of that name exists (then it is reused);
  --setup   copies this checkout (git archive of HEAD) to every worker and installs it with the
            TPU extra (`pip install -e '.[tpu]'`);
  then the command after `--` runs on all workers at once (`--worker=all`). The JAX
  multi-controller runtime connects the workers; each feeds its own slice of the batch.
MODEL_DIR must be on gs:// for pods: every worker writes its shards of the checkpoints there.
"""
import argparse
import re
import shlex
import subprocess
import sys
from typing import List, Sequence

REMOTE_DIR = "synthetic_pretraining"
ARCHIVE = "/tmp/synthetic_pretraining.tar.gz"
DEFAULT_RUNTIME = {"v2": "tpu-ubuntu2204-base", "v3": "tpu-ubuntu2204-base",
                   "v4": "tpu-ubuntu2204-base", "v5litepod": "v2-alpha-tpuv5-lite",
                   "v5p": "v2-alpha-tpuv5", "v6e": "v2-alpha-tpuv6e"}
# Chips (v4 and later) or cores (v2, v3) per host, to tell how many workers a slice has.
UNITS_PER_HOST = {"v2": 8, "v3": 8, "v4": 8, "v5p": 8, "v5litepod": 4, "v6e": 4}


def num_workers(accelerator: str) -> int:
  """Hosts of a slice: v3-8 -> 1, v3-32 -> 4, v4-32 -> 4 (v4 counts TensorCores), v5litepod-16 -> 4."""
  match = re.fullmatch(r"(v\d+[a-z]*|v5litepod)-(\d+)", accelerator)
  if not match or match.group(1) not in UNITS_PER_HOST:
    raise ValueError(f"Unknown accelerator type {accelerator!r}; expected e.g. v3-8, v3-32, "
                     f"v4-32, v5litepod-16 (families: {', '.join(UNITS_PER_HOST)}).")
  return max(1, int(match.group(2)) // UNITS_PER_HOST[match.group(1)])


def _gcloud(verb: str, args: argparse.Namespace, *rest: str) -> List[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", verb, *rest, f"--zone={args.zone}",
          *([f"--project={args.project}"] if args.project else [])]


def create_commands(args) -> List[List[str]]:
  """describe (reuse if it exists) and create."""
  family = args.accelerator.rsplit("-", 1)[0]
  version = args.runtime or DEFAULT_RUNTIME[family]
  return [_gcloud("describe", args, args.tpu),
          _gcloud("create", args, args.tpu, f"--accelerator-type={args.accelerator}",
                  f"--version={version}", *(["--spot"] if args.spot else []))]


def setup_commands(args) -> List[List[str]]:
  """Ship HEAD of this checkout to every worker and install it with the TPU extra."""
  install = (f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && "
             f"tar -xzf {ARCHIVE.rsplit('/', 1)[1]} -C {REMOTE_DIR} && cd {REMOTE_DIR} && "
             "python3 -m pip install -q -e '.[tpu]'")
  return [["git", "archive", "--format=tar.gz", f"--output={ARCHIVE}", "HEAD"],
          _gcloud("scp", args, ARCHIVE, f"{args.tpu}:~/", "--worker=all"),
          _gcloud("ssh", args, args.tpu, "--worker=all", f"--command={install}")]


def run_command(args, command: Sequence[str]) -> List[str]:
  """The user's command on all workers, from the installed checkout."""
  remote = f"cd {REMOTE_DIR} && " + " ".join(shlex.quote(c) for c in command)
  return _gcloud("ssh", args, args.tpu, "--worker=all", f"--command={remote}")


def parser() -> argparse.ArgumentParser:
  """The flags shared with launch.paper_tables."""
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tpu", required=True, help="TPU VM name")
  p.add_argument("--zone", required=True)
  p.add_argument("--project", default=None)
  p.add_argument("--accelerator", default="v3-8", help="e.g. v3-8, v3-32, v4-32, v5litepod-16")
  p.add_argument("--runtime", default=None, help="TPU VM software version (default per family)")
  p.add_argument("--spot", action="store_true", help="create a Spot TPU VM")
  p.add_argument("--create", action="store_true", help="create the TPU VM unless it exists")
  p.add_argument("--setup", action="store_true", help="copy and install this checkout")
  p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  return p


def show(command: Sequence[str]) -> str:
  return " ".join(shlex.quote(c) for c in command)


def execute(commands: Sequence[Sequence[str]], dry_run: bool) -> None:
  """Runs (or prints) commands in order; stops at the first failure with its exit code."""
  for command in commands:
    print(("" if dry_run else "+ ") + show(command), flush=True)
    if not dry_run:
      result = subprocess.run(list(command), check=False)
      if result.returncode:
        sys.exit(f"error: command failed with exit code {result.returncode}: {show(command)}")


def prepare(args) -> None:
  """--create and --setup, printed or run."""
  print(f"# {args.tpu}: {args.accelerator}, {num_workers(args.accelerator)} worker(s)")
  if args.create:
    describe, create = create_commands(args)
    if args.dry_run:
      print(f"# reused if `{show(describe)}` succeeds, else:")
      execute([create], True)
    elif subprocess.run(describe, capture_output=True, check=False).returncode == 0:
      print(f"# {args.tpu} exists: reusing it")
    else:
      execute([create], False)
  if args.setup:
    execute(setup_commands(args), args.dry_run)


def main(argv=None) -> int:
  """Entry point: flags, then `--` and the command to run on every worker."""
  argv = list(sys.argv[1:] if argv is None else argv)
  command = argv[argv.index("--") + 1:] if "--" in argv else []
  own = argv[:argv.index("--")] if "--" in argv else argv
  args = parser().parse_args(own)
  try:
    num_workers(args.accelerator)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  prepare(args)
  if command:
    execute([run_command(args, command)], args.dry_run)
  return 0


if __name__ == "__main__":
  sys.exit(main())
