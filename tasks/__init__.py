"""SeqIO task registrations: `MIXTURE_OR_TASK_MODULE = 'tasks'` makes every task available.

Tasks use the vocabulary of the gin macro `VOCABULARY` (t5x's name), so this module works under
any binary: ours, or t5x's `train`, which imports MIXTURE_OR_TASK_MODULE after locking gin.
"""
import gin

# Our modules declare gin configurables, which gin refuses once its config is locked.
with gin.unlock_config():
  from tasks import synthetic  # noqa: F401  (registers the synthetic pre-training tasks)
  from tasks import natural  # noqa: F401  (registers the paper's downstream tasks)
  from tasks import offline  # noqa: F401  (squad_offline and natural_text, shipped data)
