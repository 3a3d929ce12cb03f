"""Registers the paper's synthetic pre-training tasks under the authors' SeqIO ids.

lime (mixture of induct, deduct, abduct at equal rates), nonsense_summary, nesting_language, and
the 18 simple tasks: set, identity, delete, sort, union, replace, duplicate, intersect, reverse,
deduplicate, search, longest_word, length, count, first_token, last_token, set1_minus_set2,
set2_minus_set1. All generate on the fly in the vocabulary the gin macro `VOCABULARY` gives (the
one t5x's model files bind), registered again whenever that changes (`registry.sync_vocabulary`).
"""
import seqio

from synthetic_pretraining.synthetic import (lime, nesting_language, nonsense_summary, registry,
                                             simple_tasks, span_corruption)
from synthetic_pretraining.synthetic.sources import SyntheticSource

NESTING_VALIDATION_SENTENCES = 50_000  # ~2,300 chunks of 568 tokens at inputs length 512


def register(vocabulary: seqio.Vocabulary) -> None:
  """Registers (or replaces) every synthetic task and the lime mixture for `vocabulary`."""

  def add(name, source, **kwargs):
    registry.add_task(name, source, replace=True, vocabulary=vocabulary, **kwargs)

  for task in simple_tasks.TASKS.values():
    add(task.name, SyntheticSource(task.name, registry.simple_task_builder(task),
                                   vocabulary=vocabulary))

  for mode in lime.MODES:
    add(mode, SyntheticSource(mode, lime.builder(mode), length_range=(0, lime.MAX_LENGTH),
                              vocabulary=vocabulary,
                              config=lime.length_range))  # bounds: gin lime_length_range
  if "lime" in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove("lime")  # a mixture holds the task objects it was built from
  seqio.MixtureRegistry.add("lime", list(lime.MODES), default_rate=1)

  add("nonsense_summary",
      SyntheticSource("nonsense_summary", nonsense_summary.build, text=True, length_range=(0, 0),
                      vocabulary=vocabulary),
      preprocessors=[registry.TOKENIZE])

  add("nesting_language",
      SyntheticSource("nesting_language", nesting_language.build, features=("targets",),
                      length_range=(0, 0), validation_size=NESTING_VALIDATION_SENTENCES,
                      config=nesting_language.language_config, vocabulary=vocabulary),
      preprocessors=[span_corruption.span_corruption])


registry.follow_vocabulary(__name__, register)
