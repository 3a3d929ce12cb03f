"""synthetic_pretraining: pre-training T5 on synthetic tasks (Wu, Li & Liang, NeurIPS 2022) in JAX/Flax."""
from synthetic_pretraining import startup as _startup
from synthetic_pretraining import resources as _resources

# `python -m synthetic_pretraining.<binary>`: --help and a quiet start, before any heavy import.
_startup.on_import()

# In a checkout the task registrations are the top-level tasks/ folder; installed, the subpackage.
_resources.alias_checkout_tasks()
