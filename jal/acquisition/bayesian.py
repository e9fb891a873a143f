"""Bayesian uncertainty scores on K stochastic passes: BALD and mean-std.

The K passes come from the posterior source (`config.posterior`: MC dropout,
a deep ensemble, a Laplace posterior, batch-norm passes); the scores only
see `mc_log_probs: [K, N, C]`.
DeepAL+'s "D" versions of entropy, margin and least confidence are the plain
scores of `jal.acquisition.uncertainty` fed the mean of the K passes.
"""

import jax
import jax.numpy as jnp

from jal import information
from jal.acquisition import uncertainty
from jal.acquisition.base import score_strategy


def bald(log_probs: jax.Array) -> jax.Array:
  """Mutual information I[y; ω] = H[mean_k p_k] − mean_k H[p_k].

  Args:
    log_probs: [K, N, C] log-probabilities of K stochastic passes.

  Returns:
    [N] float32, ≥ 0 up to rounding; zero when all passes agree.
  """
  uncertainty.check_rank(log_probs)
  expected_entropy = jnp.mean(information.entropy(jnp.exp(log_probs)), axis=0)
  return uncertainty.entropy(log_probs) - expected_entropy


def mean_std(log_probs: jax.Array) -> jax.Array:
  """Mean over classes of the standard deviation over passes of p_k(c).

  Args:
    log_probs: [K, N, C].

  Returns:
    [N] float32 (population std, as DeepAL+).
  """
  uncertainty.check_rank(log_probs)
  return jnp.mean(jnp.std(jnp.exp(log_probs), axis=0), axis=-1)


STRATEGIES = (
    score_strategy('bald', bald, needs='mc_log_probs'),
    score_strategy('mean_std', mean_std, needs='mc_log_probs'),
    score_strategy('entropy_dropout', uncertainty.entropy,
                   needs='mc_log_probs'),
    score_strategy('margin_dropout', uncertainty.margin, needs='mc_log_probs'),
    score_strategy('least_confidence_dropout', uncertainty.least_confidence,
                   needs='mc_log_probs'),
)
