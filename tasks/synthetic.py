"""Registers the paper's synthetic pre-training tasks under the authors' SeqIO ids.

lime (mixture of induct, deduct, abduct at equal rates), nonsense_summary, nesting_language, and
the 18 simple tasks: set, identity, delete, sort, union, replace, duplicate, intersect, reverse,
deduplicate, search, longest_word, length, count, first_token, last_token, set1_minus_set2,
set2_minus_set1. All generate on the fly in the gin-configured vocabulary.
"""
import seqio

from synthetic_pretraining.synthetic import (lime, nesting_language, nonsense_summary, registry,
                                             simple_tasks, span_corruption)
from synthetic_pretraining.synthetic.sources import SyntheticSource

NESTING_VALIDATION_SENTENCES = 50_000  # ~2,300 chunks of 568 tokens at inputs length 512


def _add(name, source, **kwargs):
  if name not in seqio.TaskRegistry.names():
    registry.add_task(name, source, **kwargs)


for _task in simple_tasks.TASKS.values():
  _add(_task.name, SyntheticSource(_task.name, registry.simple_task_builder(_task)))

for _mode in lime.MODES:
  _add(_mode, SyntheticSource(_mode, lime.builder(_mode), length_range=(0, lime.MAX_LENGTH),
                              config=lime.length_range))  # bounds: gin lime_length_range
if "lime" not in seqio.MixtureRegistry.names():
  seqio.MixtureRegistry.add("lime", list(lime.MODES), default_rate=1)

_add("nonsense_summary",
     SyntheticSource("nonsense_summary", nonsense_summary.build, text=True, length_range=(0, 0)),
     preprocessors=[registry.TOKENIZE])

_add("nesting_language",
     SyntheticSource("nesting_language", nesting_language.build, features=("targets",),
                     length_range=(0, 0), validation_size=NESTING_VALIDATION_SENTENCES,
                     config=nesting_language.language_config),
     preprocessors=[span_corruption.span_corruption])
