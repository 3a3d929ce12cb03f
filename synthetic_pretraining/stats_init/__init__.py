"""Statistics-only initialisation (the paper's Tables 2 and 3), sharding-aware.

A fresh model whose parameter groups are drawn from the per-group statistics of a trained
checkpoint: `groupings` (declarative rules over t5x paths), `procedures` (init_mean_std,
init_scale; schemes = the paper's init_ids), `statistics` (exact, mesh-independent group
statistics under jit), `sampling` (per-path keys, draws into the target shardings), `sources`
(our and t5x checkpoints), `artifact` (stats.json), `transform` (scheme + source -> plan),
`initializers` (gin), and the CLI `python -m synthetic_pretraining.stats_init`.
"""
from synthetic_pretraining.stats_init.artifact import Plan
from synthetic_pretraining.stats_init.errors import ArchitectureMismatchError
from synthetic_pretraining.stats_init.errors import GroupingError
from synthetic_pretraining.stats_init.errors import StatsFileError
from synthetic_pretraining.stats_init.errors import StatsInitError
from synthetic_pretraining.stats_init.errors import UnknownSchemeError
from synthetic_pretraining.stats_init.groupings import EMBEDDINGS
from synthetic_pretraining.stats_init.groupings import register_grouping
from synthetic_pretraining.stats_init.groupings import Rule
from synthetic_pretraining.stats_init.initializers import CustomValueInitializer
from synthetic_pretraining.stats_init.initializers import StatisticsInitializer
from synthetic_pretraining.stats_init.procedures import PAPER_SCHEMES
from synthetic_pretraining.stats_init.procedures import scheme_names
from synthetic_pretraining.stats_init.sampling import apply_plan
from synthetic_pretraining.stats_init.sources import load_t5x_params
from synthetic_pretraining.stats_init.transform import build_plan
from synthetic_pretraining.stats_init.transform import custom_plan
