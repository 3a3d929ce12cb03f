"""Registers the formal-language and procedural generators (not the paper's; docs/decoder_only.md).

Language-model streams (inputs: the task name encoded, then extra_id_0; targets: the whole
string, which is what a causal or prefix language model learns; train and validation are
disjoint in their targets):

  dyck                          a k-Dyck string (`dyck_config`)
  shuffle_dyck                  a k-shuffle-Dyck string (`shuffle_dyck_config`)
  cellular_automaton            an elementary cellular automaton's rows (`cellular_automaton_config`)

Input -> target tasks (inputs: the task-name prefix, then the body, as the simple tasks):

  dyck_completion               a Dyck prefix -> its shortest completion (the closing brackets)
  cellular_automaton_next_rows  the first rows -> the rows after them

All follow the configured vocabulary (`registry.follow_vocabulary`), like the paper's tasks.
"""
import seqio

from synthetic_pretraining.synthetic import cellular_automata, dyck, registry
from synthetic_pretraining.synthetic.sources import SyntheticSource

DESCRIPTIONS = {
    "dyck": "k-Dyck strings, balanced and depth-bounded, as an LM stream in targets (formal language)",
    "shuffle_dyck": "k-shuffle-Dyck strings, each bracket type balanced, types interleaved, as an "
                    "LM stream in targets (formal language)",
    "dyck_completion": "a k-Dyck prefix -> its shortest completion, the closing brackets "
                       "(formal language)",
    "cellular_automaton": "rows of an elementary cellular automaton (a rule or a Wolfram class) "
                          "as an LM stream in targets (procedural)",
    "cellular_automaton_next_rows": "the first rows of an elementary cellular automaton -> the "
                                    "rows after them (procedural)",
}

# name -> (build, gin configuration it reads, the feature distinct between splits)
GENERATORS = {
    "dyck": (dyck.lm_builder("dyck", shuffle=False), dyck.dyck_config, "targets"),
    "shuffle_dyck": (dyck.lm_builder("shuffle_dyck", shuffle=True), dyck.shuffle_dyck_config,
                     "targets"),
    "dyck_completion": (dyck.completion_builder("dyck_completion"), dyck.dyck_config, "inputs"),
    "cellular_automaton": (cellular_automata.lm_builder("cellular_automaton"),
                           cellular_automata.cellular_automaton_config, "targets"),
    "cellular_automaton_next_rows": (
        cellular_automata.next_rows_builder("cellular_automaton_next_rows"),
        cellular_automata.cellular_automaton_config, "inputs"),
}


def register(vocabulary: seqio.Vocabulary) -> None:
  """Registers (or replaces) every task of this module for `vocabulary`."""
  for name, (build, config, key) in GENERATORS.items():
    source = SyntheticSource(name, build, length_range=(0, 0), config=config, key_feature=key,
                             description=DESCRIPTIONS[name], vocabulary=vocabulary)
    registry.add_task(name, source, replace=True, vocabulary=vocabulary)


registry.follow_vocabulary(__name__, register)
