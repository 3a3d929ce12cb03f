"""SeqIO task registrations: `MIXTURE_OR_TASK_MODULE = 'synthetic_pretraining.tasks'` makes every
task available.

An installed package carries this folder as `synthetic_pretraining.tasks` (setup.py); in a checkout
`synthetic_pretraining.resources` gives it that name too. Imports name the package, so importing
the folder as plain `tasks` (the older module name) registers the same modules, once.

Tasks use the vocabulary of the gin macro `VOCABULARY` (t5x's name), so this module works under
any binary: ours, or t5x's `train`, which imports MIXTURE_OR_TASK_MODULE after locking gin.
"""
import gin

# Our modules declare gin configurables, which gin refuses once its config is locked.
with gin.unlock_config():
  # The synthetic pre-training tasks, the formal-language and procedural generators (dyck,
  # shuffle_dyck, cellular_automaton, ...), the paper's downstream tasks, and those on shipped
  # data (squad_offline, natural_text).
  from synthetic_pretraining.tasks import synthetic  # noqa: F401
  from synthetic_pretraining.tasks import formal  # noqa: F401
  from synthetic_pretraining.tasks import natural  # noqa: F401
  from synthetic_pretraining.tasks import offline  # noqa: F401
