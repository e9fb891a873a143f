"""Random sampling and the classic uncertainty scores.

Every score reads `log_probs: [K, N, C]` and first averages the K passes'
probabilities into the predictive distribution p [N, C] (K = 1 for a plain
deterministic pass). DeepAL+ names the MC-dropout ("D") versions
`*_dropout`; they differ only in the predictions they are fed.
"""

import jax
import jax.numpy as jnp

from jal import checks
from jal import information
from jal.acquisition.base import score_strategy, stateless, top_k_unlabeled


def check_rank(log_probs) -> None:
  """Raises unless `log_probs` is [K, N, C] (a shape check: free under jit)."""
  checks.array(log_probs, 3, 'log_probs', '[K, N, C] (K passes, N points, C '
               'classes; add a leading axis to one [N, C] pass)',
               floating=True)


def mean_probs(log_probs: jax.Array) -> jax.Array:
  """[K, N, C] log-probabilities → [N, C] mean probabilities."""
  check_rank(log_probs)
  return jnp.mean(jnp.exp(log_probs), axis=0)


def entropy(log_probs: jax.Array) -> jax.Array:
  """H[p] = −Σ_c p_c log p_c of the mean prediction; [K, N, C] → [N]."""
  return information.entropy(mean_probs(log_probs))


def margin(log_probs: jax.Array) -> jax.Array:
  """1 − (p_(1) − p_(2)), the top-two gap, so that small gaps score high."""
  if log_probs.shape[-1] < 2:
    checks.log_probs(log_probs, 'log_probs', 3, '[K, N, C]')  # raises
  top2, _ = jax.lax.top_k(mean_probs(log_probs), 2)
  return 1.0 - (top2[:, 0] - top2[:, 1])


def least_confidence(log_probs: jax.Array) -> jax.Array:
  """1 − max_c p_c."""
  return 1.0 - jnp.max(mean_probs(log_probs), axis=-1)


def var_ratio(log_probs: jax.Array) -> jax.Array:
  """1 − f_mode / K, f_mode being how many of the K passes vote for the mode.

  Freeman's variation ratio (Freeman 1965; Gal et al. 2017), the `var_ratio`
  strategy, on K stochastic passes. With K = 1 every pass agrees and the
  score is 0 everywhere; use it with stochastic predictions. DeepAL+'s
  "VarRatio" is another score: `var_ratio_deepalplus`.
  """
  check_rank(log_probs)
  num_classes = log_probs.shape[-1]
  votes = jax.nn.one_hot(jnp.argmax(log_probs, -1), num_classes).sum(axis=0)
  return 1.0 - jnp.max(votes, axis=-1) / log_probs.shape[0]


def var_ratio_deepalplus(log_probs: jax.Array) -> jax.Array:
  """DeepAL+'s "VarRatio": 1 − max_c p_c of one deterministic pass.

  DeepAL+ (Zhan et al. 2022, eq. 5 and `query_strategies/var_ratio.py`)
  scores 1 − max p on the eval-mode prediction, not Freeman's mode frequency
  over stochastic passes (`var_ratio`); its ranking equals
  `least_confidence`'s. Registered as `var_ratio_deepalplus` (needs
  'log_probs', K = 1).
  """
  return 1.0 - jnp.max(mean_probs(log_probs), axis=-1)


def _random_select(key, inputs, labeled_mask, query_size):
  del inputs
  return top_k_unlabeled(jax.random.uniform(key, labeled_mask.shape),
                         labeled_mask, query_size)


STRATEGIES = (
    stateless('random', (), _random_select),
    score_strategy('entropy', entropy),
    score_strategy('margin', margin),
    score_strategy('least_confidence', least_confidence),
    score_strategy('var_ratio', var_ratio, needs='mc_log_probs'),
    score_strategy('var_ratio_deepalplus', var_ratio_deepalplus),
)
