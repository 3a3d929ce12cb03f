"""Lists the registered tasks and mixtures: `python -m synthetic_pretraining.tasks`.

  python -m synthetic_pretraining.tasks                      every task and mixture, one line each
  python -m synthetic_pretraining.tasks --module=my_tasks    also those your module registers
  python -m synthetic_pretraining.tasks --task=set           is `set` registered? (else: the
                                                             closest names)

Flags:
  --module=NAME   a module to import first (what MIXTURE_OR_TASK_MODULE names); repeatable.
  --task=NAME     check one name: prints its line, or fails in one line with the closest names.

Each line is the SeqIO id, its kind (task or mixture), its splits and a one-line description.
Use an id as MIXTURE_OR_TASK_NAME, e.g. --gin.MIXTURE_OR_TASK_NAME="'set'".
"""
import functools
import inspect
import sys
from typing import List

from synthetic_pretraining import cli


# The paper's tasks whose sources do not describe themselves (others: their source's docstring).
KNOWN = {
    "induct": "LIME induction: infer the rule from a case and its result (synthetic)",
    "deduct": "LIME deduction: apply a rule to a case (synthetic)",
    "abduct": "LIME abduction: infer the case from a rule and its result (synthetic)",
    "nonsense_summary": "summarise nonsense text by its templates (synthetic)",
    "nesting_language": "the nesting-dependency artificial language (synthetic)",
    "natural_text": "span corruption on the shipped natural text (natural pre-training)",
    "squad_offline": "SQuAD from the shipped offline copy (downstream, no download)",
    "squad_v010_allanswers": "SQuAD v1.1 from TFDS (downstream; needs TFDS data)",
    "cnndm_10k": "CNN/DailyMail summarisation, 10k examples (downstream; files under DATA_DIR)",
    "mtop": "MTOP semantic parsing (downstream; files under DATA_DIR)",
    "webqsp": "WebQuestionsSP semantic parsing (downstream; files under DATA_DIR)",
    "retrosynthesis": "USPTO-50k retrosynthesis (downstream; files under DATA_DIR)",
    "code_translation": "code translation (downstream; files under DATA_DIR)",
}


def _first_line(text) -> str:
  return (inspect.cleandoc(text).splitlines() or [""])[0].strip() if text else ""


def describe(task_or_mixture) -> str:
  """A one-line description of a registered SeqIO task or mixture."""
  import seqio  # pylint: disable=import-outside-toplevel
  if isinstance(task_or_mixture, seqio.Mixture):
    names = sorted(t.name for t in task_or_mixture.tasks)
    shown = ", ".join(names[:6]) + (f", ... ({len(names)} tasks)" if len(names) > 6 else "")
    return f"mixture of {shown}"
  source = getattr(task_or_mixture, "source", None)
  text = getattr(source, "description", None) or KNOWN.get(task_or_mixture.name)
  if not text:
    text = _simple_task_description(task_or_mixture.name)
  if not text:
    fn = getattr(source, "_dataset_fn", None)
    while isinstance(fn, functools.partial):
      fn = fn.func
    text = _first_line(getattr(fn, "__doc__", None))
  if not text:
    text = _first_line(type(source).__doc__) if source is not None else ""
  return _first_line(text) or "(no description)"


def _simple_task_description(name: str) -> str:
  # pylint: disable-next=import-outside-toplevel
  from synthetic_pretraining.synthetic import simple_tasks
  task = getattr(simple_tasks, "TASKS", {}).get(name)
  if task is None:
    return ""
  doc = _first_line(getattr(task.target, "__doc__", None))
  return f"the paper's simple task {name!r}" + (f": {doc}" if doc else "")


def lines(modules: List[str]) -> List[str]:
  """One line per registered task and mixture, sorted by name."""
  import seqio  # pylint: disable=import-outside-toplevel
  from synthetic_pretraining.data import pipeline  # pylint: disable=import-outside-toplevel
  pipeline.import_task_modules([pipeline.TASKS_MODULE, *modules])
  out = []
  names = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
  width = max((len(n) for n in names), default=0)
  for name in names:
    out.append(_line(name, width))
  return out


def _line(name: str, width: int = 0) -> str:
  import seqio  # pylint: disable=import-outside-toplevel
  item = seqio.get_mixture_or_task(name)
  kind = "mixture" if isinstance(item, seqio.Mixture) else "task"
  try:
    splits = ",".join(item.splits) if kind == "task" else ""
  except Exception:  # pylint: disable=broad-except  (a source that cannot list its splits)
    splits = ""
  return f"{name:<{width}}  {kind:<7}  {splits:<22}  {describe(item)}"


def main(argv=None) -> int:
  """Entry point; returns an exit code (1 with a one-line error for bad input, `cli.run`)."""
  return cli.run(_main, argv)


def _main(argv) -> int:
  parser = cli.ArgumentParser(prog="python -m synthetic_pretraining.tasks",
                              description=__doc__.split("\n")[0])
  parser.add_argument("--module", action="append", default=[])
  parser.add_argument("--task")
  args = parser.parse_args(argv)
  if args.task:
    from synthetic_pretraining.data import pipeline  # pylint: disable=import-outside-toplevel
    pipeline.get_mixture_or_task(args.task, [pipeline.TASKS_MODULE, *args.module])
    print(_line(args.task))
    return 0
  for line in lines(args.module):
    print(line)
  return 0


if __name__ == "__main__":
  sys.exit(main())
