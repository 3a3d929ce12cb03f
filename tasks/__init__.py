"""SeqIO task registrations: `MIXTURE_OR_TASK_MODULE = 'tasks'` makes every task available."""
from tasks import synthetic  # noqa: F401  (registers the synthetic pre-training tasks)
from tasks import natural  # noqa: F401  (registers the paper's downstream tasks)
from tasks import offline  # noqa: F401  (squad_offline and natural_text, shipped data)
