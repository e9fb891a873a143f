"""EPIG: expected predictive information gain (Bickford Smith et al. 2023).

EPIG(x) = E_{x*}[ I[y; y* | x, x*] ], the information a label at x carries
about the prediction at a target input x*, averaged over targets drawn from
the unlabeled pool. With K stochastic passes as posterior samples,
p(y, y*) = mean_k p_k(y | x) p_k(y* | x*), and

  I[y; y*] = H[p(y)] + H[p(y*)] − H[p(y, y*)].

The targets are `num_targets` unlabeled points drawn uniformly (with
replacement) with the strategy's key; candidates are scored in chunks.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jal import checks
from jal import chunking
from jal import errors
from jal import information
from jal.acquisition import ranges
from jal.acquisition import uncertainty
from jal.acquisition.base import stateless, top_k_unlabeled


def sample_targets(key: jax.Array, labeled_mask: jax.Array,
                   num_targets: int) -> jax.Array:
  """[num_targets] int32 unlabeled indices, uniform with replacement.

  Raises:
    ConfigError: `num_targets` < 1, or no unlabeled point (when known).
  """
  checks.mask(labeled_mask, 'labeled_mask')
  checks.positive_int(num_targets, 'num_targets')
  if checks.concrete(labeled_mask) and np.all(np.asarray(labeled_mask)):
    raise errors.ConfigError(
        'labeled_mask marks every pool point labeled, but the targets are '
        'drawn from the unlabeled ones; leave some unlabeled.')
  logits = jnp.where(labeled_mask, -jnp.inf, 0.0)
  return jax.random.categorical(key, logits, shape=(num_targets,)).astype(
      jnp.int32)


@functools.partial(jax.jit, static_argnames=('chunk_size',))
def epig_scores(log_probs: jax.Array, target_log_probs: jax.Array, *,
                chunk_size: int = 256) -> jax.Array:
  """EPIG of every pool point against a set of targets.

  Args:
    log_probs: [K, N, C] log-probabilities of the candidates.
    target_log_probs: [K, M, C] log-probabilities of the targets.
    chunk_size: candidates scored at once (the work array is
      chunk_size × M × C × C).

  Returns:
    [N] float32, ≥ 0 up to rounding.
  """
  uncertainty.check_rank(log_probs)
  checks.array(target_log_probs, 3, 'target_log_probs', '[K, M, C]')
  checks.size(target_log_probs.shape[0], log_probs.shape[0],
              'target_log_probs', 'passes (axis 0)', 'as many as log_probs')
  checks.size(target_log_probs.shape[2], log_probs.shape[2],
              'target_log_probs', 'classes (axis 2)', 'as many as log_probs')
  checks.positive_int(chunk_size, 'chunk_size')
  num_passes, n, _ = log_probs.shape
  target_probs = jnp.exp(target_log_probs)  # [K, M, C]
  target_entropy = jnp.mean(information.entropy(jnp.mean(target_probs, 0)))

  def score(rows):  # [B] → [B]
    probs = jnp.exp(log_probs[:, rows])  # [K, B, C]
    joint = jnp.einsum('kbc,kmd->bmcd', probs, target_probs) / num_passes
    joint_entropy = jnp.mean(information.entropy(joint, (-2, -1)), axis=-1)
    return (information.entropy(jnp.mean(probs, 0)) + target_entropy -
            joint_entropy)

  return chunking.map_masked(score, n, chunk_size)


def _select(key, inputs, labeled_mask, query_size, num_targets: int = 100,
            chunk_size: int = 256):
  log_probs = inputs['mc_log_probs']
  targets = sample_targets(key, labeled_mask, num_targets)
  scores = epig_scores(log_probs, log_probs[:, targets], chunk_size=chunk_size)
  return top_k_unlabeled(scores, labeled_mask, query_size)


STRATEGIES = (stateless('epig', ('mc_log_probs',), _select,
                        ranges=dict(num_targets=ranges.POSITIVE_INT,
                                    chunk_size=ranges.POSITIVE_INT)),)
