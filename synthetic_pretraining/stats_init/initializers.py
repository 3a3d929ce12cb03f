"""Gin-configurable parameter initialisers for the trainer (`trainer.InitConfig.param_initializer`).

Each is called as `initializer(random_params, *, partitioner, seed) -> params` with the freshly
random-initialised, sharded parameters, and returns a tree of the same structure, shapes,
dtypes and shardings. gin/init/<init_id>.gin binds them for each scheme of the paper:

    --gin_file=gin/init/per_param_grouping___init_scale.gin --gin.STATS_SOURCE="'runs/lime'"
"""
import logging
from typing import Mapping, Optional, Sequence

import gin

from synthetic_pretraining.checkpointing import resolver
from synthetic_pretraining.stats_init import artifact
from synthetic_pretraining.stats_init import groupings
from synthetic_pretraining.stats_init import procedures
from synthetic_pretraining.stats_init import sampling
from synthetic_pretraining.stats_init import transform
from synthetic_pretraining.stats_init.errors import StatsInitError

GIN_MODULE = "synthetic_pretraining.stats_init"


def _finish(plan: artifact.Plan, random_params, seed: int, stats_out: Optional[str]):
  if stats_out:
    artifact.write(plan, stats_out)
  summary = transform.summarize(plan, random_params)
  logging.info("Initialisation %s from %s: %d groups, %d arrays (%d values) drawn, %d kept "
               "random.", plan.scheme, plan.source, summary.groups, summary.drawn_arrays,
               summary.drawn_values, summary.kept_arrays)
  return sampling.apply_plan(plan, random_params, seed)


@gin.configurable(module=GIN_MODULE)
class StatisticsInitializer:
  """Statistics-only initialisation: groups drawn from a checkpoint's (or stats.json's) statistics.

  Attributes (gin):
    scheme: the paper's init_id, e.g. 'per_param_grouping___init_scale' (optional with a
      stats_file, which names its scheme).
    checkpoint: the statistics source: our checkpoint or MODEL_DIR, a t5x checkpoint, or a
      stats.json file.
    stats_file: a stats.json file (instead of `checkpoint`).
    keep_random: parameters (paths or full-match patterns) never drawn from statistics.
    stats_out: if set, where to write the stats.json of this initialisation.
    seed: seed of the draws; None uses the run's seed.
    chunk_bytes: how much of the checkpoint is held at once while computing statistics.
  """

  def __init__(self, scheme: Optional[str] = None, checkpoint: Optional[str] = None,
               stats_file: Optional[str] = None,
               keep_random: Sequence[str] = groupings.EMBEDDINGS,
               stats_out: Optional[str] = None, seed: Optional[int] = None,
               chunk_bytes: int = transform.DEFAULT_CHUNK_BYTES):
    if (checkpoint is None) == (stats_file is None):
      raise StatsInitError("StatisticsInitializer needs exactly one of `checkpoint` (a "
                           "checkpoint or stats.json path, e.g. STATS_SOURCE) and `stats_file`.")
    if scheme is None and stats_file is None and not str(checkpoint).endswith(".json"):
      raise StatsInitError("StatisticsInitializer needs a `scheme` (one of "
                           f"{', '.join(procedures.PAPER_SCHEMES)}, ...).")
    if scheme is not None:
      procedures.parse_scheme(scheme)  # an unknown scheme fails before any work
    self.scheme, self.checkpoint, self.stats_file = scheme, checkpoint, stats_file
    self.keep_random, self.stats_out, self.seed = tuple(keep_random), stats_out, seed
    self.chunk_bytes = chunk_bytes

  def plan(self, params) -> artifact.Plan:
    """The groups and statistics for a model with these parameters (arrays or abstract)."""
    if self.stats_file is not None:
      return transform.plan_from_stats(artifact.read(self.stats_file), params, self.scheme)
    source = self.checkpoint
    if self.scheme is None:
      return transform.plan_from_stats(artifact.read(source), params)
    return transform.build_plan(self.scheme, source, params, keep_random=self.keep_random,
                                chunk_bytes=self.chunk_bytes)

  def check(self, abstract_params) -> None:
    """Before a run creates anything: the source exists, and a stats.json source is valid and
    fits the model (a checkpoint source is read only when the run starts)."""
    source = self.stats_file or self.checkpoint
    if str(source).endswith(".json"):
      self.plan(abstract_params)
    else:
      resolver.resolve(source)

  def __call__(self, random_params, *, partitioner=None, seed: int = 0):
    """`random_params` with the scheme's groups redrawn (shardings are taken from the arrays)."""
    del partitioner
    return _finish(self.plan(random_params), random_params,
                   self.seed if self.seed is not None else seed, self.stats_out)


@gin.configurable(module=GIN_MODULE)
class CustomValueInitializer:
  """Sets chosen parameters of an otherwise random model to a constant or N(0, std) (Table 3).

  Attributes (gin):
    constants: {name: value}; a name is a set of `groupings.PARAMETER_SETS` (pre_attn_ln,
      pre_self_attn_ln, pre_cross_attn_ln, pre_mlp_ln, q, k, v, o, mlp, enc_relpos,
      dec_relpos, after_enc_ln, after_dec_ln) or a full-match path pattern. Any float,
      negative ones included.
    stds: {name: std}: members drawn from N(0, std).
    stats_out, seed: as `StatisticsInitializer`.
  """

  def __init__(self, constants: Optional[Mapping[str, float]] = None,
               stds: Optional[Mapping[str, float]] = None, stats_out: Optional[str] = None,
               seed: Optional[int] = None):
    if not constants and not stds:
      raise StatsInitError("CustomValueInitializer needs `constants` or `stds`.")
    self.constants, self.stds = dict(constants or {}), dict(stds or {})
    self.stats_out, self.seed = stats_out, seed

  def plan(self, params) -> artifact.Plan:
    return transform.custom_plan(params, self.constants, self.stds)

  def __call__(self, random_params, *, partitioner=None, seed: int = 0):
    del partitioner
    return _finish(self.plan(random_params), random_params,
                   self.seed if self.seed is not None else seed, self.stats_out)
