"""Stochastic predictions: K MC-dropout passes over the pool.

`mc_dropout_log_probs` is a `vmap` over K dropout keys of one chunked
evaluation-mode forward pass (batch norm frozen, dropout on).
"""

import functools

import jax

from jal import models
from jal import train


@functools.partial(jax.jit, static_argnames=('graphdef', 'num_passes',
                                             'chunk_size'))
def mc_dropout_log_probs(key: jax.Array, graphdef, variables: models.Variables,
                         images: jax.Array, *, num_passes: int,
                         chunk_size: int = 1000,
                         include_mask: jax.Array | None = None) -> jax.Array:
  """Log-probabilities of `num_passes` MC-dropout passes.

  Args:
    key: PRNG key; pass k uses `fold_in(key, k)`.
    graphdef: model structure.
    variables: trained variables.
    images: [N, H, W, C] float32.
    num_passes: K.
    chunk_size: images per forward pass.
    include_mask: [N] bool; if given, only these images are sure to be
      computed (see `jal.train.predict`).

  Returns:
    [K, N, C] float32 log-probabilities.
  """

  def one_pass(k):
    logits, _ = train.predict(graphdef, variables, images,
                              chunk_size=chunk_size,
                              dropout_key=jax.random.fold_in(key, k),
                              include_mask=include_mask)
    return jax.nn.log_softmax(logits)

  return jax.vmap(one_pass)(jax.numpy.arange(num_passes))
