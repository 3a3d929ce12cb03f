r"""Run a command on every worker of a Cloud TPU VM (single host or pod slice).

  python -m synthetic_pretraining.launch.tpu_vm --tpu=my-tpu --zone=europe-west4-a \
    --accelerator=v3-32 --create --setup --extra=my_tasks.py -- python3 -m synthetic_pretraining.train \
      --gin_file=gin/experiments/pretrain/set.gin --gin.MODEL_DIR="'gs://my-bucket/pretrain/set'"

Steps, each printed one command per line (and not run) with --dry_run:
  --create  creates the TPU VM unless one of that name exists (then it is reused);
  --setup   packs the checkout (--source; by default the one this package is imported from) and
            copies it to every worker, then installs it there with the TPU extra
            (`pip install -e '.[tpu]'`). --ship=worktree (the default) packs the working tree as
            it is now: tracked files with their uncommitted changes, and new files git does not
            ignore; --ship=head packs the committed HEAD only. Each --extra=PATH (a module or a
            folder, e.g. your own task module) goes to `user_modules/` on every worker, which is
            on the command's PYTHONPATH (so MIXTURE_OR_TASK_MODULE='my_tasks' finds it);
  then the command after `--` runs on all workers at once (`--worker=all`), from the installed
  copy. The JAX multi-controller runtime connects the workers; each feeds its own slice of the
  batch. MODEL_DIR must be on gs:// for pods: every worker writes its shards of the checkpoints
  there.
"""
import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, List, Optional, Sequence

from synthetic_pretraining.launch import commands

REMOTE_DIR = "synthetic_pretraining"  # under the home directory of every worker
USER_MODULES = "user_modules"  # inside REMOTE_DIR: the --extra paths, on the command's PYTHONPATH
MANIFEST = "SHIPPED.json"  # inside REMOTE_DIR: what was shipped (commit, changed files, extras)
DEFAULT_RUNTIME = {"v2": "tpu-ubuntu2204-base", "v3": "tpu-ubuntu2204-base",
                   "v4": "tpu-ubuntu2204-base", "v5litepod": "v2-alpha-tpuv5-lite",
                   "v5p": "v2-alpha-tpuv5", "v6e": "v2-alpha-tpuv6e"}
# Chips (v4 and later) or cores (v2, v3) per host, to tell how many workers a slice has.
UNITS_PER_HOST = {"v2": 8, "v3": 8, "v4": 8, "v5p": 8, "v5litepod": 4, "v6e": 4}


class LaunchError(Exception):
  """Bad input of a launcher: one line, exit code 2."""


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


# Packing ------------------------------------------------------------------------------------------

def default_source() -> Optional[str]:
  """The checkout this package is imported from (None for an installed package)."""
  from synthetic_pretraining import resources  # pylint: disable=import-outside-toplevel
  checkout = resources._checkout_dir()  # pylint: disable=protected-access
  return str(checkout) if checkout is not None else None


def _git(source: str, *argv: str) -> bytes:
  try:
    return subprocess.run(["git", "-C", source, *argv], capture_output=True, check=True).stdout
  except FileNotFoundError:
    raise LaunchError("--setup needs git to list the files of the checkout.") from None
  except subprocess.CalledProcessError as e:
    raise LaunchError(f"--source={source}: git {' '.join(argv[:2])} failed: "
                      f"{e.stderr.decode(errors='replace').strip().splitlines()[-1:]}") from None


def check_source(args) -> str:
  """The checkout to ship: a git work tree holding setup.py; and every --extra exists."""
  source = args.source or default_source()
  if source is None:
    raise LaunchError("--setup ships a checkout of synthetic_pretraining, and this one is "
                      "installed: pass --source=DIR (a git checkout of the project).")
  if not os.path.isfile(os.path.join(source, "setup.py")):
    raise LaunchError(f"--source={source} is not a checkout of the project (no setup.py).")
  if _git(source, "rev-parse", "--is-inside-work-tree").strip() != b"true":
    raise LaunchError(f"--source={source} is not a git work tree.")
  for extra in args.extra:
    if not os.path.exists(extra):
      raise LaunchError(f"--extra={extra} does not exist.")
  return source


def shipped_files(source: str, ship: str) -> List[str]:
  """Paths (relative to `source`) that --ship packs: HEAD's files, or the working tree's
  (tracked files that still exist, and untracked files that git does not ignore)."""
  if ship == "head":
    listing = _git(source, "ls-tree", "-r", "-z", "--name-only", "HEAD")
  else:
    listing = _git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
  names = sorted({n.decode() for n in listing.split(b"\0") if n})
  if ship == "head":
    return names
  return [n for n in names if os.path.lexists(os.path.join(source, n))]


def changed_files(source: str) -> List[str]:
  """Files of the working tree that differ from HEAD (modified, added, deleted, untracked)."""
  entries = iter(_git(source, "status", "--porcelain", "-z", "--untracked-files=all").split(b"\0"))
  changed = set()
  for entry in entries:
    if len(entry) > 3:
      changed.add(entry[3:].decode())
      if entry[:1] in (b"R", b"C"):
        next(entries, None)  # the origin of a rename or copy
  return sorted(changed)


def _no_caches(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
  parts = info.name.split("/")
  return None if "__pycache__" in parts or info.name.endswith(".pyc") else info


def pack(args, source: str, archive: str) -> dict:
  """Writes the gzipped tar that --setup ships; returns its manifest (also packed)."""
  head = _git(source, "rev-parse", "HEAD").decode().strip()
  changed = changed_files(source) if args.ship == "worktree" else []
  manifest = {"source": os.path.abspath(source), "head": head, "ship": args.ship,
              "changed_since_head": changed,
              "extras": [os.path.basename(os.path.normpath(e)) for e in args.extra]}
  with tarfile.open(archive, "w:gz") as tar:
    if args.ship == "head":
      tree = _git(source, "archive", "--format=tar", "HEAD")
      with tarfile.open(fileobj=io.BytesIO(tree)) as committed:
        for member in committed.getmembers():
          tar.addfile(member, committed.extractfile(member) if member.isfile() else None)
    else:
      for name in shipped_files(source, "worktree"):
        tar.add(os.path.join(source, name), arcname=name, recursive=False)
    for extra, name in zip(args.extra, manifest["extras"]):
      tar.add(extra, arcname=f"{USER_MODULES}/{name}", filter=_no_caches)
    data = (json.dumps(manifest, indent=1) + "\n").encode()
    info = tarfile.TarInfo(MANIFEST)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
  return manifest


def archive_path(args) -> str:
  return os.path.join(tempfile.gettempdir(), f"synthetic_pretraining-{args.tpu}.tar.gz")


def setup_commands(args, archive: str) -> List[List[str]]:
  """Copy the packed checkout to every worker and install it with the TPU extra."""
  name = os.path.basename(archive)
  install = (f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar -xzf {name} -C {REMOTE_DIR} "
             f"&& cd {REMOTE_DIR} && python3 -m pip install -q -e '.[tpu]'")
  return [_gcloud("scp", args, archive, f"{args.tpu}:~/", "--worker=all"),
          _gcloud("ssh", args, args.tpu, "--worker=all", f"--command={install}")]


def describe_pack(args, source: str, archive: str) -> List[str]:
  """Comment lines saying what --setup packs (for the dry run and the log)."""
  if args.ship == "head":
    head = _git(source, "rev-parse", "--short", "HEAD").decode().strip()
    what = f"the committed HEAD ({head}) of {source}"
    lines = [f"# pack {what} into {archive}"]
  else:
    files, changed = shipped_files(source, "worktree"), changed_files(source)
    lines = [f"# pack the working tree of {source} into {archive}: {len(files)} files, "
             f"{len(changed)} changed or new since HEAD"
             + (f" ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''})"
                if changed else "")]
  lines += [f"# pack {extra} as {REMOTE_DIR}/{USER_MODULES}/{os.path.basename(os.path.normpath(extra))}"
            for extra in args.extra]
  return lines


# Running ------------------------------------------------------------------------------------------

def remote_line(command: Sequence[str], env: Optional[Dict[str, str]] = None) -> str:
  """The shell line a worker runs: from the installed copy, with user_modules/ importable."""
  variables = {"PYTHONPATH": USER_MODULES, **(env or {})}
  assignments = " ".join(f"{k}={commands.quote_value(v)}" for k, v in variables.items())
  return f"cd {REMOTE_DIR} && {assignments} {commands.show(command)}"


def run_command(args, command: Sequence[str], env: Optional[Dict[str, str]] = None) -> List[str]:
  """The user's command on all workers (gcloud ssh --worker=all)."""
  return _gcloud("ssh", args, args.tpu, "--worker=all",
                 f"--command={remote_line(command, env)}")


def parser() -> argparse.ArgumentParser:
  """The flags shared with paper_tables."""
  p = argparse.ArgumentParser(prog="python -m synthetic_pretraining.launch.tpu_vm",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tpu", required=True, help="TPU VM name")
  p.add_argument("--zone", required=True)
  p.add_argument("--project", default=None)
  p.add_argument("--accelerator", default="v3-8", help="e.g. v3-8, v3-32, v4-32, v5litepod-16")
  p.add_argument("--runtime", default=None, help="TPU VM software version (default per family)")
  p.add_argument("--spot", action="store_true", help="create a Spot TPU VM")
  p.add_argument("--create", action="store_true", help="create the TPU VM unless it exists")
  p.add_argument("--setup", action="store_true",
                 help="pack the checkout, copy it to every worker and install it there")
  p.add_argument("--source", default=None,
                 help="the checkout --setup ships (default: the one this package is imported "
                      "from)")
  p.add_argument("--ship", choices=("worktree", "head"), default="worktree",
                 help="worktree: the files as they are now, uncommitted changes and new files "
                      "included (default); head: the committed HEAD only")
  p.add_argument("--extra", action="append", default=[], metavar="PATH",
                 help=f"a module or folder to ship to {USER_MODULES}/ (on the command's "
                      "PYTHONPATH), e.g. your own task module; repeatable")
  p.add_argument("--dry_run", action="store_true",
                 help="print the commands, one per line, and run nothing")
  return p


def execute(command_list: Sequence[Sequence[str]], dry_run: bool) -> None:
  """Runs (or prints) commands in order; stops at the first failure with its exit code."""
  for command in command_list:
    print(("" if dry_run else "+ ") + commands.show(command), flush=True)
    if not dry_run:
      result = subprocess.run(list(command), check=False)
      if result.returncode:
        sys.exit(f"error: command failed with exit code {result.returncode}: "
                 f"{commands.show(command)}")


def check(args) -> Optional[str]:
  """Validates the flags before anything runs; returns the checkout to ship (with --setup)."""
  try:
    num_workers(args.accelerator)
  except ValueError as e:
    raise LaunchError(str(e)) from None
  if args.extra and not args.setup:
    raise LaunchError("--extra is shipped by --setup: give both.")
  return check_source(args) if args.setup else None


def prepare(args, source: Optional[str]) -> None:
  """--create and --setup, printed or run."""
  print(f"# {args.tpu}: {args.accelerator}, {num_workers(args.accelerator)} worker(s)")
  if args.create:
    describe, create = create_commands(args)
    if args.dry_run:
      print(f"# reused if this succeeds: {commands.show(describe)}")
      execute([create], True)
    elif subprocess.run(describe, capture_output=True, check=False).returncode == 0:
      print(f"# {args.tpu} exists: reusing it")
    else:
      execute([create], False)
  if args.setup:
    archive = archive_path(args)
    for line in describe_pack(args, source, archive):
      print(line, flush=True)
    if not args.dry_run:
      pack(args, source, archive)
    execute(setup_commands(args, archive), args.dry_run)


def main(argv=None) -> int:
  """Entry point: flags, then `--` and the command to run on every worker."""
  argv = list(sys.argv[1:] if argv is None else argv)
  command = argv[argv.index("--") + 1:] if "--" in argv else []
  own = argv[:argv.index("--")] if "--" in argv else argv
  args = parser().parse_args(own)
  try:
    source = check(args)
  except LaunchError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  prepare(args, source)
  if command:
    execute([run_command(args, command)], args.dry_run)
  return 0


if __name__ == "__main__":
  sys.exit(main())
