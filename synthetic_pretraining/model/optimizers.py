"""Adafactor with the paper's settings and t5x's learning-rate schedules, built on optax."""
from typing import Callable, Optional

import gin
import jax.numpy as jnp
import optax

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


@gin.configurable
def create_learning_rate_scheduler(factors: str = "constant * rsqrt_decay",
                                   base_learning_rate: float = 0.5,
                                   warmup_steps: int = 1000,
                                   decay_factor: float = 0.5,
                                   steps_per_decay: int = 20000,
                                   steps_per_cycle: int = 100000,
                                   total_steps: Optional[int] = None) -> Schedule:
  """t5x's product-of-factors schedule.

  Factors (joined by '*'): constant (base_learning_rate), linear_warmup (min(1, step/warmup)),
  rsqrt_decay (1/sqrt(max(step, warmup))), rsqrt_normalized_decay (sqrt(warmup)/sqrt(max(step,
  warmup))), decay_every (decay_factor^(step//steps_per_decay)), cosine_decay (over
  steps_per_cycle), linear_decay (to 0 at total_steps). The paper pretrains with 'rsqrt_decay'
  and warm-up 10,000 (lr = 1/sqrt(max(step, 10000))) and finetunes with 'constant'.
  """
  names = [name.strip() for name in factors.split("*") if name.strip()]
  known = {"constant", "linear_warmup", "rsqrt_decay", "rsqrt_normalized_decay", "decay_every",
           "cosine_decay", "linear_decay"}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"Unknown learning-rate factor(s) {unknown}; known: {sorted(known)}.")
  if "linear_decay" in names and not total_steps:
    raise ValueError("The 'linear_decay' factor needs total_steps.")

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    value = jnp.asarray(1.0, jnp.float32)
    for name in names:
      if name == "constant":
        value *= base_learning_rate
      elif name == "linear_warmup":
        value *= jnp.minimum(1.0, step / max(warmup_steps, 1))
      elif name == "rsqrt_decay":
        value /= jnp.sqrt(jnp.maximum(step, warmup_steps))
      elif name == "rsqrt_normalized_decay":
        value *= jnp.sqrt(float(warmup_steps)) / jnp.sqrt(jnp.maximum(step, warmup_steps))
      elif name == "decay_every":
        value *= decay_factor ** (step // steps_per_decay)
      elif name == "cosine_decay":
        progress = jnp.maximum(0.0, (step - warmup_steps) / float(steps_per_cycle))
        value *= jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * (progress % 1.0))))
      elif name == "linear_decay":
        value *= jnp.maximum(0.0, 1.0 - step / total_steps)
    return value

  return schedule


@gin.configurable
def adafactor(learning_rate: Schedule = gin.REQUIRED, decay_rate: float = 0.8,
              clipping_threshold: Optional[float] = 1.0, multiply_by_parameter_scale: bool = True,
              min_dim_size_to_factor: int = 128, epsilon1: float = 1e-30, beta1: Optional[float] = None,
              factored: bool = True) -> optax.GradientTransformation:
  """Adafactor as the paper ran it (t5x defaults with decay rate 0.8).

  Second moments are factored for matrices whose two largest dims are >= min_dim_size_to_factor;
  updates are clipped to RMS `clipping_threshold` and scaled by the parameter's RMS (floored at
  epsilon2 = 1e-3, optax's default). `beta1=None` keeps no first moment, as the paper.
  """
  return optax.adafactor(learning_rate=learning_rate, min_dim_size_to_factor=min_dim_size_to_factor,
                         decay_rate=decay_rate, decay_offset=0,
                         multiply_by_parameter_scale=multiply_by_parameter_scale,
                         clipping_threshold=clipping_threshold, momentum=beta1, eps=epsilon1,
                         factored=factored)


@gin.configurable
def create_optimizer(optimizer_fn: Callable[..., optax.GradientTransformation] = adafactor,
                     learning_rate: Optional[Schedule] = None) -> optax.GradientTransformation:
  """The optimizer the trainer uses: `optimizer_fn(learning_rate=...)` (Adafactor by default)."""
  return create_optimizer_and_schedule(optimizer_fn, learning_rate)[0]


def create_optimizer_and_schedule(optimizer_fn=None, learning_rate: Optional[Schedule] = None):
  """(optimizer, learning-rate schedule): the trainer logs the rate the optimizer used.

  Unset arguments take `create_optimizer`'s gin bindings, so both describe the same run.
  """
  if optimizer_fn is None or learning_rate is None:
    bound = {k: v for k, v in gin.get_bindings(create_optimizer).items()}
    optimizer_fn = optimizer_fn or bound.get("optimizer_fn", adafactor)
    learning_rate = learning_rate or bound.get("learning_rate")
  learning_rate = learning_rate or create_learning_rate_scheduler()
  return optimizer_fn(learning_rate=learning_rate), learning_rate
