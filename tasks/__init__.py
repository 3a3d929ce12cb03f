"""SeqIO task registrations: `MIXTURE_OR_TASK_MODULE = 'tasks'` makes every task available."""
