"""Runs many binary invocations cheaply: one interpreter imports the binaries once, then forks.

Each job runs in a forked child exactly as `python -m synthetic_pretraining.<binary> ARGS` would
after the imports: the child calls `startup.start` (help, quiet start: the native-stderr filter
and library log levels) and runs the binary's module as `__main__`, with its descriptors 1 and 2
on fresh files, so the test reads the raw bytes of its stdout and stderr and its exit status.
What the heavy imports themselves print is checked by tests that start truly fresh processes.

Protocol: each line on stdin is a JSON list of jobs {"module", "args", "cwd", "env", "stdout",
"stderr"}; the answer is one JSON line, the list of exit codes (a signal: -signum), in order.
At most `--jobs` children run at once.
"""
import json
import os
import runpy
import sys
import warnings

# Not precompile: run as `__main__` it registers its gin configurable `precompile_inputs` again,
# under `__main__`, and a preloaded copy would make that name ambiguous (a fresh `python -m`
# process has only the one); its imports are the train binary's, so a child imports it quickly.
PRELOAD = ("synthetic_pretraining.train", "synthetic_pretraining.eval",
           "synthetic_pretraining.infer", "synthetic_pretraining.inspect_checkpoint",
           "synthetic_pretraining.export_data", "synthetic_pretraining.export_hf",
           "synthetic_pretraining.position_split", "synthetic_pretraining.stats_init.__main__",
           "synthetic_pretraining.report", "synthetic_pretraining.tasks", "toy_tasks")


def _child(job) -> None:
  code = 1
  try:
    os.chdir(job.get("cwd") or os.getcwd())
    os.environ.update(job.get("env") or {})
    for entry in reversed((job.get("env") or {}).get("PYTHONPATH", "").split(os.pathsep)):
      if entry:
        sys.path.insert(0, entry)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
      out = os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
      os.dup2(out, fd)
      os.close(out)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = sys.__stderr__ = os.fdopen(2, "w", buffering=1)
    from synthetic_pretraining import startup  # pylint: disable=import-outside-toplevel
    startup._started = False  # pylint: disable=protected-access
    startup.start(job["module"], job["args"])
    sys.argv = [job["module"], *job["args"]]
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="runpy")
    try:
      runpy.run_module(job["module"], run_name="__main__", alter_sys=True)
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  except BaseException:  # pylint: disable=broad-except
    import traceback  # pylint: disable=import-outside-toplevel
    traceback.print_exc()
    code = 99
  finally:
    try:
      sys.stdout.flush()
      sys.stderr.flush()
    finally:
      os._exit(code)  # pylint: disable=protected-access


def run_jobs(jobs, parallel: int):
  """Runs `jobs` in forked children, `parallel` at a time; returns their exit codes in order."""
  codes, running, pending = [None] * len(jobs), {}, list(enumerate(jobs))
  while pending or running:
    while pending and len(running) < parallel:
      index, job = pending.pop(0)
      pid = os.fork()
      if pid == 0:
        _child(job)
      running[pid] = index
    pid, status = os.wait()
    if pid in running:
      codes[running.pop(pid)] = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                                 else -os.WTERMSIG(status))
  return codes


def main() -> None:
  parallel = int(sys.argv[1]) if len(sys.argv) > 1 else 2
  for name in PRELOAD:
    __import__(name)
  print(json.dumps("ready"), flush=True)
  for line in sys.stdin:
    print(json.dumps(run_jobs(json.loads(line), parallel)), flush=True)


if __name__ == "__main__":
  main()
