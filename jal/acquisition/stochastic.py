"""Stochastic batch acquisition (Kirsch et al. 2023).

Instead of the top-b scores, sample b points without replacement with
probabilities proportional to weights derived from the scores:

- power:    w ∝ s^β          (s ≥ 0, e.g. BALD or entropy)
- softmax:  w ∝ exp(β s)
- softrank: w ∝ rank^−β      (rank 1 = highest score among unlabeled points)

Sampling b without replacement ∝ w is the top-b of log w + Gumbel noise
(Gumbel-top-k), so each strategy is one jittable top-k. β is the
`beta` keyword of `select` (`config.hparams.<name>.beta`, default 1), a
finite β ≥ 0 (β = 0 samples uniformly; a negative β would favour the least
informative points).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jal import checks
from jal import errors
from jal.acquisition import bayesian
from jal.acquisition import ranges
from jal.acquisition import uncertainty
from jal.acquisition.base import Strategy, stateless, top_k_unlabeled


def log_weights(scores: jax.Array, labeled_mask: jax.Array, mode: str,
                beta: float) -> jax.Array:
  """log w of each point's sampling weight.

  Args:
    scores: [N] float, higher = more worth labeling.
    labeled_mask: [N] bool; ranks count unlabeled points only.
    mode: 'power', 'softmax' or 'softrank'.
    beta: the temperature-like exponent β ≥ 0.

  Returns:
    [N] float32; −inf for zero weight (a zero score under 'power').
  """
  n = checks.array(scores, 1, 'scores', '[N]')[0]
  checks.mask(labeled_mask, 'labeled_mask', n)
  if mode not in ('power', 'softmax', 'softrank'):
    raise errors.ConfigError(f"Unknown mode {mode!r}: use 'power', 'softmax' "
                             "or 'softrank'.")
  checks.non_negative(beta, 'beta')
  scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
  if mode == 'power':
    return beta * jnp.log(jnp.maximum(scores, 0.0))
  if mode == 'softmax':
    return beta * scores
  order = jnp.argsort(-jnp.where(labeled_mask, -jnp.inf, scores),
                      stable=True)
  ranks = jnp.zeros(scores.shape, jnp.int32).at[order].set(
      jnp.arange(1, scores.shape[0] + 1, dtype=jnp.int32))
  return -beta * jnp.log(ranks.astype(jnp.float32))


def gumbel_top_k(key: jax.Array, log_w: jax.Array, labeled_mask: jax.Array,
                 query_size: int) -> jax.Array:
  """`query_size` unlabeled indices sampled without replacement ∝ exp(log_w).

  Args:
    key: PRNG key for the Gumbel noise.
    log_w: [N] float log-weights.
    labeled_mask: [N] bool.
    query_size: static sample size.

  Returns:
    [query_size] int32 distinct unlabeled indices, in sampling order.
  """
  gumbel = jax.random.gumbel(key, log_w.shape, log_w.dtype)
  return top_k_unlabeled(log_w + gumbel, labeled_mask, query_size)


def stochastic_strategy(name: str, score: Callable[[jax.Array], jax.Array],
                        mode: str, needs: str = 'mc_log_probs') -> Strategy:
  """A strategy sampling ∝ the `mode` weights of `score(inputs[needs])`."""

  def select(key, inputs, labeled_mask, query_size, beta: float = 1.0):
    log_w = log_weights(score(inputs[needs]), labeled_mask, mode, beta)
    return gumbel_top_k(key, log_w, labeled_mask, query_size)

  return stateless(name, (needs,), select,
                   ranges=dict(beta=ranges.NON_NEGATIVE))


STRATEGIES = tuple(
    stochastic_strategy(f'{mode}_{score_name}', score, mode)
    for mode in ('power', 'softmax', 'softrank')
    for score_name, score in (('bald', bayesian.bald),
                              ('entropy', uncertainty.entropy)))
