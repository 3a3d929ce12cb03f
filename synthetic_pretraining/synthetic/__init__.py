"""Synthetic pre-training data: the paper's tasks as seeded, on-the-fly SeqIO sources.

Modules: `common` (token space, per-example random stream), `simple_tasks` (the 18 token tasks),
`lime`, `nonsense_summary`, `nesting_language` with `span_corruption`, `sources` (the seqio
DataSource), `file_source` (the authors' file format), `registry` (registering tasks, yours too);
beyond the paper, `dyck` (k-Dyck and k-shuffle-Dyck) and `cellular_automata` (elementary
cellular automata). Importing `tasks` registers the paper's tasks under the authors' ids, and
these under `dyck`, `shuffle_dyck`, `dyck_completion`, `cellular_automaton` and
`cellular_automaton_next_rows` (tasks/formal.py).
"""
# Every family is imported so that all their gin configurables exist before a config is parsed.
from synthetic_pretraining.synthetic import lime, nesting_language, nonsense_summary, span_corruption  # noqa: F401
from synthetic_pretraining.synthetic import cellular_automata, dyck  # noqa: F401
from synthetic_pretraining.synthetic.common import TaskRandom, TokenSpace
from synthetic_pretraining.synthetic.file_source import AuthorsFileSource, format_line
from synthetic_pretraining.synthetic.registry import add_task, register_file_task, register_task
from synthetic_pretraining.synthetic.sources import SyntheticSource, split_sizes
from synthetic_pretraining.synthetic.simple_tasks import length_range
