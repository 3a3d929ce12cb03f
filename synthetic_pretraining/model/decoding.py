"""Autoregressive decoding with a key/value cache: greedy and beam search (t5x's semantics).

Both take `step_fn(tokens [n, 1], cache) -> (logits [n, vocab], cache)` and run inside jit
(`lax.while_loop`), stopping early once every sequence is done. Beam search scores finished
hypotheses by log-probability / ((5 + length) / 6) ** alpha, t5x's brevity penalty; as in
fairseq, an EOS candidate finishes only when it ranks within the top `beams` of the step.
"""
from typing import Callable, Tuple

import jax
import jax.numpy as jnp

StepFn = Callable[[jax.Array, object], Tuple[jax.Array, object]]
NEG_INF = -1.0e7


def greedy(step_fn: StepFn, cache, batch_size: int, max_length: int, eos_id: int,
           first_tokens=None) -> jax.Array:
  """Argmax decoding; returns [batch, max_length] token ids, 0 after each sequence's EOS.

  `first_tokens` [batch] is fed at the first step (default: BOS, id 0); a decoder-only model
  feeds its prefix's last token there, after prefilling the cache with the rest.
  """

  def cond(state):
    i, _, _, done = state
    return (i < max_length) & ~jnp.all(done)

  def body(state):
    i, tokens, cache, done = state
    previous = jax.lax.dynamic_slice_in_dim(tokens, i, 1, axis=1)
    logits, cache = step_fn(previous, cache)
    next_token = jnp.where(done, 0, jnp.argmax(logits, axis=-1).astype(jnp.int32))
    tokens = jax.lax.dynamic_update_slice_in_dim(tokens, next_token[:, None], i + 1, axis=1)
    return i + 1, tokens, cache, done | (next_token == eos_id)

  # Column 0 holds the BOS (id 0) fed at the first step.
  tokens = jnp.zeros((batch_size, max_length + 1), jnp.int32)
  if first_tokens is not None:
    tokens = tokens.at[:, 0].set(jnp.asarray(first_tokens, jnp.int32))
  state = (jnp.array(0), tokens, cache, jnp.zeros((batch_size,), bool))
  _, tokens, _, _ = jax.lax.while_loop(cond, body, state)
  return tokens[:, 1:]


def brevity_penalty(alpha: float, length):
  return jnp.power((5.0 + length) / 6.0, alpha)


def _gather(x, indices):
  """x [batch, beams, ...] -> x[b, indices[b, j], ...] of shape [batch, k, ...]."""
  return jnp.take_along_axis(x, indices.reshape(indices.shape + (1,) * (x.ndim - 2)), axis=1)


def _gather_cache(cache, indices, batch_size: int, beams: int):
  """Reorders every [batch * beams, ...] cache array by beam `indices` [batch, beams]."""
  def gather(path, x):
    # Step counters are shared by all rows; projected encoder outputs are equal across the beams
    # of an example, so neither needs reordering.
    if x.ndim == 0 or "cross" in jax.tree_util.keystr(path):
      return x
    x = _gather(x.reshape((batch_size, beams) + x.shape[1:]), indices)
    return x.reshape((-1,) + x.shape[2:])
  return jax.tree_util.tree_map_with_path(gather, cache)


def beam_search(step_fn: StepFn, cache, batch_size: int, beams: int, max_length: int,
                eos_id: int, alpha: float = 0.6, first_tokens=None) -> Tuple[jax.Array, jax.Array]:
  """Beam search; `cache` is laid out for batch_size * beams rows.

  `first_tokens` [batch * beams] is fed at the first step (default: BOS, id 0), as in `greedy`.

  Returns (sequences [batch, beams, max_length] best first, scores [batch, beams]).
  """
  live_seqs = jnp.zeros((batch_size, beams, max_length + 1), jnp.int32)
  if first_tokens is not None:
    live_seqs = live_seqs.at[:, :, 0].set(
        jnp.asarray(first_tokens, jnp.int32).reshape(batch_size, beams))
  # Only the first beam is live at the start, so the first step does not pick duplicates.
  live_logp = jnp.tile(jnp.array([0.0] + [NEG_INF] * (beams - 1)), (batch_size, 1))
  finished_seqs = jnp.zeros_like(live_seqs)
  finished_scores = jnp.full((batch_size, beams), NEG_INF)
  finished_flags = jnp.zeros((batch_size, beams), bool)

  def cond(state):
    i, _, live_logp, _, finished_scores, finished_flags, _ = state
    best_possible = live_logp[:, 0] / brevity_penalty(alpha, max_length)
    worst_finished = jnp.min(jnp.where(finished_flags, finished_scores, NEG_INF), axis=1)
    all_done = jnp.all(finished_flags, axis=1) & (worst_finished > best_possible)
    return (i < max_length) & ~jnp.all(all_done)

  def body(state):
    i, live_seqs, live_logp, finished_seqs, finished_scores, finished_flags, cache = state
    previous = jax.lax.dynamic_slice_in_dim(live_seqs, i, 1, axis=2).reshape(-1, 1)
    logits, cache = step_fn(previous, cache)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch_size, beams, -1)
    vocab = log_probs.shape[-1]
    candidates = (live_logp[:, :, None] + log_probs).reshape(batch_size, beams * vocab)
    top_logp, top_index = jax.lax.top_k(candidates, 2 * beams)
    top_beam, top_token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
    top_seqs = _gather(live_seqs, top_beam)
    top_seqs = jax.lax.dynamic_update_slice_in_dim(top_seqs, top_token[:, :, None], i + 1, axis=2)
    ends = top_token == eos_id
    # As in fairseq, only EOS candidates ranked within the top `beams` finish (so one beam is
    # exactly greedy search); the other 'beams' candidates keep the live beams full.
    finishing = ends & (jnp.arange(2 * beams) < beams)[None, :]

    # Hypotheses that just emitted EOS compete with the finished ones for the `beams` slots.
    new_scores = jnp.where(finishing, top_logp / brevity_penalty(alpha, i + 1), NEG_INF)
    all_seqs = jnp.concatenate([finished_seqs, top_seqs], axis=1)
    all_scores = jnp.concatenate([finished_scores, new_scores], axis=1)
    all_flags = jnp.concatenate([finished_flags, finishing], axis=1)
    finished_scores, keep = jax.lax.top_k(all_scores, beams)
    finished_seqs = _gather(all_seqs, keep)
    finished_flags = jnp.take_along_axis(all_flags, keep, axis=1)

    # The best `beams` hypotheses that did not end stay live; their caches follow them.
    live_candidates = jnp.where(ends, NEG_INF, top_logp)
    live_logp, keep = jax.lax.top_k(live_candidates, beams)
    live_seqs = _gather(top_seqs, keep)
    cache = _gather_cache(cache, jnp.take_along_axis(top_beam, keep, axis=1), batch_size, beams)
    return i + 1, live_seqs, live_logp, finished_seqs, finished_scores, finished_flags, cache

  state = (jnp.array(0), live_seqs, live_logp, finished_seqs, finished_scores, finished_flags, cache)
  _, live_seqs, live_logp, finished_seqs, finished_scores, finished_flags, _ = jax.lax.while_loop(
      cond, body, state)
  # Rows with no finished hypothesis (max length reached) return their live beams.
  any_finished = jnp.any(finished_flags, axis=1)
  seqs = jnp.where(any_finished[:, None, None], finished_seqs, live_seqs)
  scores = jnp.where(any_finished[:, None], finished_scores,
                     live_logp / brevity_penalty(alpha, max_length))
  return seqs[:, :, 1:], scores
