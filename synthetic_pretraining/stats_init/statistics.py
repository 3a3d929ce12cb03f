"""Group statistics computed under jit on sharded arrays, exactly and mesh-independently.

Per parameter, three passes over its (sharded) array, each returning only a few scalars:

  1. min and max (which also catch NaN and inf);
  2. the sum of the values;
  3. the sum of squared deviations from the parameter's own mean (two-pass: no cancellation).

Sums are *exact*, so they do not depend on the order in which XLA or the cross-device
reductions add: a parameter's statistics, and so every drawn value, are bitwise the same on one
device and on any mesh. Each value v (scaled by a power of two so that |v| < 2^30, which is
exact) is cut into integer "digits" d_i = floor(v / 2^(b i)) - 2^b floor(v / 2^(b (i+1))); their
weighted sum telescopes to floor(v + 1/2), dropping only bits below 2^-30 of the largest magnitude.
Digits are small integers, so float32 sums of them along the last axis are exact whatever the
order; the row sums then go on as int32 limbs with carries. Each digit is reduced by its own
jitted call so that XLA fuses it into one pass without materialising temporaries. Limbs reach
the host as int32 scalars and are combined there with Python integers and fractions: group
means and population standard deviations are exact up to the float32 rounding of each squared
deviation. No host ever holds more than scalars of a parameter.
"""
import dataclasses
import functools
import math
from fractions import Fraction
from typing import Dict, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from synthetic_pretraining.stats_init.errors import StatsInitError

_BITS = 30          # scaled magnitudes stay below 2^30
_LIMB = 10          # int32 limbs of 10 bits: sums over axes of length <= 2^20 fit in int32
_NUM_LIMBS = 8      # 80 bits: room for 2^30 * 2^48 elements
_MAX_AXIS = 1 << 20
_MASK = (1 << _LIMB) - 1


@dataclasses.dataclass(frozen=True)
class Moments:
  """Exact first and second moments of one parameter.

  Attributes:
    count: number of values.
    total: the sum of the values (exact rational).
    shift: the float32 value the squares were centred on (the parameter's rounded mean).
    centred_sq: the sum of float32 (x - shift)^2 (exact rational of the rounded squares).
  """
  count: int
  total: Fraction
  shift: Fraction
  centred_sq: Fraction


@dataclasses.dataclass(frozen=True)
class GroupStatistics:
  """Pooled statistics of a group: element count, mean and population std (ddof 0)."""
  count: int
  mean: float
  std: float


def _digit_bits(last_axis: int) -> int:
  """Digit width b such that a float32 sum of `last_axis` digits below 2^b stays exact."""
  return min(8, 24 - max(last_axis, 1).bit_length())


def _normalise(limbs):
  """Propagates carries so that every limb but the top one lies in [0, 2^10)."""
  out = list(limbs)
  for i in range(len(out) - 1):
    out[i + 1] = out[i + 1] + (out[i] >> _LIMB)
    out[i] = out[i] & _MASK
  return out


def _int_sum(rows):
  """Exact sum of an int32 array with |values| < 2^30, as _NUM_LIMBS limbs of 10 bits."""
  limbs = [rows & _MASK, (rows >> _LIMB) & _MASK, rows >> (2 * _LIMB)]
  limbs += [jnp.zeros_like(rows)] * (_NUM_LIMBS - len(limbs))
  for axis in reversed(range(rows.ndim)):
    limbs = _normalise([jnp.sum(l, axis=axis, dtype=jnp.int32) for l in limbs])
  return jnp.stack(limbs)


@functools.partial(jax.jit, static_argnums=1)
def _digit_sum(x, square, shift, pre, post, low, high, carry):
  """Exact sum over the array of one digit of floor(v + 1/2), as int32 limbs.

  v = scale * x, or scale * (x - shift)^2 when `square`, with the power-of-two scale applied as
  two float32 factors (`pre` before squaring, `post` after) so that neither the scaled values
  nor their squares leave float32's normal range; the digit is
  floor(v' * low) - carry * floor(v' * high) with v' = v + 1/2, low = 2^(-b i),
  high = 2^(-b (i + 1)) and carry = 2^b (0 for the top digit). The digit is traced, so one
  compilation per pass serves every digit (a traced `square` would stop XLA fusing the pass).
  """
  x = jnp.asarray(x, jnp.float32)
  x = x.reshape((1,)) if x.ndim == 0 else x
  d = (x - shift) * pre if square else x * pre
  v = (d * d if square else d) * post + np.float32(0.5)
  digits = jnp.floor(v * low) - carry * jnp.floor(v * high)
  rows = jnp.sum(digits, axis=-1)   # exact: every partial sum is an integer below 2^24
  return _int_sum(rows.astype(jnp.int32))


@jax.jit
def _min_max(x):
  """[min, max, number of non-finite values] (as float32).

  The count is needed because XLA:CPU's cross-device min/max reductions drop NaN: a NaN in
  one shard of a sharded array does not reach the result.
  """
  x = jnp.asarray(x, jnp.float32)
  bad = jnp.sum(~jnp.isfinite(x), dtype=jnp.int32).astype(jnp.float32)
  return jnp.stack([jnp.min(x), jnp.max(x), bad])


def _scale_exponent(bound: float) -> int:
  """e with bound < 2^e; values (or squares) are scaled by 2^(30 - e)."""
  return math.frexp(bound)[1]


def _scale_factors(k: int, square: bool):
  """(pre, post): float32 powers of two whose product (pre^2 * post when squaring) is 2^k.

  One float32 factor reaches only 2^±126, while scaling the squares of parameters near 1e-30
  needs far more; each factor stays a normal float32, so every multiplication is exact.
  """
  clamp = lambda v: max(-126, min(127, v))
  first = clamp(k // 2 if square else k)
  rest = k - (2 * first if square else first)
  if clamp(rest) != rest:
    raise StatsInitError(f"values of magnitude 2^{_BITS - k} are out of the exact statistics' range")
  return np.float32(2.0 ** first), np.float32(2.0 ** rest)


def _exact_sum(x, square: bool, shift, e: int):
  """Dispatches one reduction per digit; returns a function collecting the exact integer."""
  shape = x.shape if x.ndim else (1,)
  bits = _digit_bits(shape[-1])
  num_digits = -(-(_BITS + 1) // bits)
  f32 = lambda v: np.float32(v)
  # Each call is waited for before the next is dispatched: with more (fake) devices than cores,
  # XLA:CPU can deadlock when several programs' cross-device reductions are in flight at once.
  pre, post = _scale_factors(_BITS - e, square)
  parts = [jax.block_until_ready(
      _digit_sum(x, bool(square), f32(shift), pre, post, f32(2.0 ** (-bits * i)),
                 f32(2.0 ** (-bits * (i + 1))), f32(2.0 ** bits if i + 1 < num_digits else 0)))
           for i in range(num_digits)]

  def collect() -> int:
    total = 0
    for i, limbs in enumerate(jax.device_get(parts)):
      total += sum(int(v) << (_LIMB * j) for j, v in enumerate(np.asarray(limbs))) << (bits * i)
    return total
  return collect


def _check_shape(path: str, shape: Sequence[int]) -> None:
  if any(d > _MAX_AXIS for d in shape):
    raise StatsInitError(f"{path}: axes longer than {_MAX_AXIS} are not supported by the exact "
                         f"statistics (shape {tuple(shape)}).")


def parameter_moments(arrays: Mapping[str, jax.Array]) -> Dict[str, Moments]:
  """Exact moments of each (possibly sharded) array."""
  names = sorted(arrays)
  for name in names:
    _check_shape(name, arrays[name].shape)
  extremes = {n: jax.device_get(_min_max(arrays[n])) for n in names}  # one at a time (above)
  bounds, pending = {}, {}
  for n in names:
    lo, hi, bad = (float(v) for v in extremes[n])
    if bad or not (math.isfinite(lo) and math.isfinite(hi)):
      raise StatsInitError(f"{n} holds non-finite values ({int(bad)} of "
                           f"{int(np.prod(arrays[n].shape))} are NaN or inf); no statistics.")
    bounds[n] = (lo, hi)
    e = _scale_exponent(max(abs(lo), abs(hi)))
    pending[n] = (e, _exact_sum(arrays[n], False, 0.0, e))
  totals = {n: Fraction(collect()) * Fraction(2) ** (e - _BITS)
            for n, (e, collect) in pending.items()}
  shifts = {}
  for n in names:
    count = max(int(np.prod(arrays[n].shape)), 1)
    shifts[n] = np.float32(float(totals[n] / count))
    lo, hi = bounds[n]
    # float32 rounding can push a square slightly past the float64 bound: leave a margin.
    bound = max(abs(lo - float(shifts[n])), abs(hi - float(shifts[n]))) ** 2 * (1 + 2**-20)
    e = _scale_exponent(bound)
    pending[n] = (e, _exact_sum(arrays[n], True, shifts[n], e))
  return {n: Moments(count=int(np.prod(arrays[n].shape)), total=totals[n],
                     shift=Fraction(float(shifts[n])),
                     centred_sq=Fraction(collect()) * Fraction(2) ** (e - _BITS))
          for n, (e, collect) in pending.items()}


def pool(moments: Iterable[Moments]) -> GroupStatistics:
  """Mean and population std of the union of several parameters' values (exact rationals).

  Each member's squares were centred on its own shift c; around the pooled mean m,
  sum (x - m)^2 = sum (x - c)^2 - 2 (m - c) sum (x - c) + n (m - c)^2.
  """
  moments = list(moments)
  count = sum(m.count for m in moments)
  if count == 0:
    raise ValueError("A statistics group has no values.")
  mean = sum((m.total for m in moments), Fraction(0)) / count
  m2 = Fraction(0)
  for m in moments:
    delta = mean - m.shift
    m2 += m.centred_sq - 2 * delta * (m.total - m.count * m.shift) + m.count * delta * delta
  return GroupStatistics(count=count, mean=float(mean), std=math.sqrt(max(float(m2 / count), 0.0)))
