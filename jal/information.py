"""Information measures of predictive distributions, shared by the scores.

One entropy for every acquisition score (entropy, BALD, BatchBALD, EPIG), so
that the convention 0·log 0 = 0 is written once.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import entr


def entropy(probs: jax.Array, axis=-1) -> jax.Array:
  """H[p] = −Σ p log p in nats, with 0·log 0 = 0.

  Args:
    probs: float probabilities holding one distribution along `axis`, e.g.
      [N, C] with axis=-1 or the joint [B, M, C, C] with axis=(-2, -1).
    axis: int or tuple of ints summed over.

  Returns:
    `probs`'s shape without `axis`, e.g. [N] or [B, M].
  """
  return jnp.sum(entr(probs), axis=axis)
