"""Registering synthetic tasks with SeqIO, including your own in a few lines.

    from synthetic_pretraining import synthetic

    def sample(rng):                      # rng: synthetic.TaskRandom, seeded per example
      return rng.tokens(rng.randint(rng.min_length, rng.max_length))

    def rotate(body):                     # the output for a body
      return body[1:] + body[:1]

    synthetic.register_task("rotate", sample, rotate)

The task then reads like the paper's: input = encode('rotate') + [extra_id_0] + body, target =
rotate(body) (or [extra_id_3] if empty), both ending in EOS; bodies are redrawn until their length
lies in the configured range; train and validation are disjoint; every shard generates its own.

Vocabulary: a task registered without an explicit `vocabulary` is registered with the one the gin
macro `VOCABULARY` gives (`vocabularies.configured_vocabulary()`), and registered again with the
new one whenever that changes (`sync_vocabulary`, run when gin finalizes its config and before our
binaries look a task up), so a task module may be imported before or after gin parses.
"""
import functools
import inspect
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import gin
import seqio

from synthetic_pretraining.data import vocabularies
from synthetic_pretraining.synthetic import simple_tasks
from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace
from synthetic_pretraining.synthetic.sources import SyntheticSource

_DEFAULT_PREFIX = object()
# Text tasks are tokenized at load time, without keeping the raw text (as the authors did).
TOKENIZE = functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False)


# Registrations that follow the configured vocabulary: key -> [register(vocabulary), vocabulary].
_FOLLOWERS: Dict[str, List[Any]] = {}


def follow_vocabulary(key: str, register: Callable[[seqio.Vocabulary], Any]) -> Any:
  """Runs `register(vocabulary)` now with the configured vocabulary, and again when it changes.

  `register` adds (replacing) tasks and mixtures whose features use the vocabulary it is given;
  a task module calls this once at import. A later call with the same `key` replaces the earlier
  registration function; if that key already follows this vocabulary (a module imported again),
  nothing is registered again. Returns what `register` returned (None when skipped).
  """
  vocabulary = _vocabulary_at_import()
  known = _FOLLOWERS.get(key)
  _FOLLOWERS[key] = [register, vocabulary]
  if known is not None and known[1] == vocabulary:
    return None
  return register(vocabulary)


def sync_vocabulary(vocabulary: Optional[seqio.Vocabulary] = None) -> seqio.Vocabulary:
  """Registers the following tasks again if `vocabulary` (default: the configured one) differs.

  Mixtures defined outside a `follow_vocabulary` registration keep the tasks they were built from.
  Returns the vocabulary the tasks now use.
  """
  if vocabulary is None:
    vocabulary = vocabularies.configured_vocabulary()
  for entry in _FOLLOWERS.values():
    if entry[1] != vocabulary:
      entry[0](vocabulary)
      entry[1] = vocabulary
  return vocabulary


def _vocabulary_at_import() -> seqio.Vocabulary:
  """The configured vocabulary; while gin may still be parsing, the unbound default if need be.

  A task module imported from a gin file (`import tasks`) can run before the file binding
  `VOCABULARY` has been parsed; gin's finalize hook below then registers the tasks again.
  """
  try:
    return vocabularies.configured_vocabulary()
  except Exception as e:  # pylint: disable=broad-except
    if gin.config_is_locked():
      raise
    logging.info("VOCABULARY cannot be evaluated yet (%s); tasks follow it once gin finalizes.", e)
    return seqio.ByteVocabulary(extra_ids=vocabularies.NUM_EXTRA_IDS)  # until gin finalizes


@gin.config.register_finalize_hook
def _follow_configured_vocabulary(config):
  """When a binary (ours or t5x's) finalizes gin, tasks take the vocabulary it configured."""
  del config
  if _FOLLOWERS:
    sync_vocabulary()


def output_features(vocabulary: Optional[seqio.Vocabulary] = None, inputs: bool = True):
  """inputs/targets features with EOS, in `vocabulary` (default: the configured one, now)."""
  if vocabulary is None:
    vocabulary = vocabularies.configured_vocabulary()
  names = ("inputs", "targets") if inputs else ("targets",)
  return {k: seqio.Feature(vocabulary, add_eos=True) for k in names}


def add_task(name: str, source: seqio.DataSource, preprocessors: Sequence[Callable] = (),
             replace: bool = False, vocabulary: Optional[seqio.Vocabulary] = None,
             inputs: bool = True) -> seqio.Task:
  """Registers `source` under `name` with EOS-terminated inputs/targets features.

  SeqIO's own shuffling is off: synthetic examples are already i.i.d., and a shuffle buffer
  would make seed=None runs irreproducible and bloat iterator checkpoints.
  """
  if replace and name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  return seqio.TaskRegistry.add(
      name, source=source,
      preprocessors=list(preprocessors) + [seqio.preprocessors.append_eos_after_trim],
      output_features=output_features(vocabulary, inputs), shuffle_buffer_size=None,
      metric_fns=[])


def _with_space(target: Callable) -> Callable[[list, TokenSpace], Any]:
  """Accepts target(body) as well as target(body, space)."""
  try:
    params = [p for p in inspect.signature(target).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  except (TypeError, ValueError):
    params = [None, None]
  if len(params) >= 2:
    return target
  return lambda body, space: target(body)


def register_task(name: str, sample_fn: Optional[Callable[[TaskRandom], Sequence[int]]] = None,
                  target_fn: Optional[Callable] = None, *,
                  example_fn: Optional[Callable[[TaskRandom], Tuple[Any, Any]]] = None,
                  prefix: Any = _DEFAULT_PREFIX,
                  length_range: Optional[Tuple[int, int]] = None,
                  validation_size: Optional[int] = None, train_size: Optional[int] = None,
                  vocabulary: Optional[seqio.Vocabulary] = None,
                  replace: bool = False) -> seqio.Task:
  """Registers a synthetic task built from a sampling and a target function (or one function).

  Args:
    name: the SeqIO task id.
    sample_fn: rng -> body ids. `rng` is a `TaskRandom` (a `random.Random` seeded per example)
      with `rng.tokens(n)`, `rng.space` (ids and dividers), `rng.min_length`/`rng.max_length`.
    target_fn: body -> output ids (or body, space -> ...); an int is one id, a string is
      encoded with the vocabulary, an empty output becomes [extra_id_3].
    example_fn: instead of the two above, rng -> (input ids, target ids): full control, no
      prefix, no length range.
    prefix: text whose encoding (then extra_id_0) starts every input; default the task name,
      None for no prefix.
    length_range: (min, max) body length for this task; default `simple_tasks.length_range`.
    validation_size, train_size: override `sources.split_sizes` for this task.
    vocabulary: generate for this vocabulary; None follows the configured one (`VOCABULARY`),
      registering the task again when that changes.
    replace: replace an existing task of the same name.

  Returns:
    The registered `seqio.Task`.
  """
  if not replace and name in seqio.TaskRegistry.names():
    raise ValueError(f"Task {name!r} is already registered; pass replace=True to replace it.")
  if example_fn is not None:
    if sample_fn is not None or target_fn is not None:
      raise ValueError("Give either example_fn, or sample_fn and target_fn, not both.")

    def build(space):
      del space

      def generate(rng):
        inputs, targets = example_fn(rng)
        return {"inputs": [int(t) for t in inputs],
                "targets": simple_tasks.output_ids(targets, rng.space)}
      return generate
  else:
    if sample_fn is None or target_fn is None:
      raise ValueError(f"register_task({name!r}) needs sample_fn and target_fn (or example_fn).")
    task = simple_tasks.SimpleTask(name=name, prefix=name if prefix is _DEFAULT_PREFIX else prefix,
                                   sample=sample_fn, target=_with_space(target_fn))
    build = simple_task_builder(task)

  def register(vocab):
    source = SyntheticSource(name, build, length_range=length_range,
                             validation_size=validation_size, train_size=train_size,
                             vocabulary=vocab)
    return add_task(name, source, replace=True, vocabulary=vocab)
  return _register_with(name, register, vocabulary)


def _register_with(name: str, register: Callable[[seqio.Vocabulary], seqio.Task],
                   vocabulary: Optional[seqio.Vocabulary]) -> seqio.Task:
  """Registers with a fixed vocabulary, or follows the configured one when it is None."""
  _FOLLOWERS.pop(f"task:{name}", None)  # a new definition replaces the old one
  if vocabulary is not None:
    return register(vocabulary)
  return follow_vocabulary(f"task:{name}", register)


def simple_task_builder(task: simple_tasks.SimpleTask):
  """A SyntheticSource `build` function for a body-to-output task."""

  def build(space: TokenSpace):
    prefix = simple_tasks.prefix_ids(task, space)
    return lambda rng: simple_tasks.make_example(task, rng, prefix)
  return build


def register_file_task(name: str, split_to_filepattern, *, kind: str = "pairs",
                       on_error: str = "raise", replace: bool = False,
                       vocabulary: Optional[seqio.Vocabulary] = None,
                       shuffle_buffer_size: int = 10_000) -> seqio.Task:
  """Registers files in the authors' format (their released data, or `export_data` output).

  Args:
    name: the SeqIO task id.
    split_to_filepattern: {'train': 'data/set/train.txt', 'validation': 'data/set/valid.txt'}.
    kind: 'pairs' ([input ids]<TAB>[target ids]: simple tasks, LIME), 'sequence' ([ids] per line,
      trained with span corruption: nesting language) or 'text' (document<TAB>summary, tokenized
      with the vocabulary: nonsense summary).
    on_error: 'raise' (an error naming file and line) or 'skip' (reported and counted).
    replace: replace an existing task of the same name.
    vocabulary: the vocabulary the ids belong to; None follows the configured one.
    shuffle_buffer_size: SeqIO's example shuffle buffer for these files.
  """
  from synthetic_pretraining.synthetic import file_source, span_corruption  # pylint: disable=import-outside-toplevel
  if kind not in ("pairs", "sequence", "text"):
    raise ValueError(f"kind must be 'pairs', 'sequence' or 'text', got {kind!r}")
  if not replace and name in seqio.TaskRegistry.names():
    raise ValueError(f"Task {name!r} is already registered; pass replace=True to replace it.")
  features = ("targets",) if kind == "sequence" else ("inputs", "targets")
  preprocessors = {"pairs": [], "sequence": [span_corruption.span_corruption],
                   "text": [TOKENIZE]}[kind]

  def register(vocab):
    source = file_source.AuthorsFileSource(split_to_filepattern, features, text=kind == "text",
                                           on_error=on_error, vocabulary=vocab)
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(
        name, source=source,
        preprocessors=preprocessors + [seqio.preprocessors.append_eos_after_trim],
        output_features=output_features(vocab), shuffle_buffer_size=shuffle_buffer_size,
        metric_fns=[])
  return _register_with(name, register, vocabulary)
