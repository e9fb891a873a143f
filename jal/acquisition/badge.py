"""BADGE: k-means++ seeding on last-layer gradient embeddings (Ash et al. 2020).

The gradient of the cross-entropy at the predicted label ŷ with respect to
the final linear layer (logits = W h + b) is, per point,

    g = (p − e_ŷ) ⊗ [h, 1]        (weights part ⊗ h, bias part ⊗ 1)

with p the predicted probabilities and h the layer's input (the model's
embedding). BADGE seeds k-means++ on g, which has C·(D + 1) dimensions:
materialized for a pool that is an N×C·(D+1) matrix. jal never builds it:

    ⟨g_i, g_j⟩ = ⟨a_i, a_j⟩ · (⟨h_i, h_j⟩ + 1),    a = p − e_ŷ,

so each seeding step needs one pass over h [N, D] and a [N, C]. As in
BADGE's code, the first centre is the point of largest gradient norm; each
next one is drawn with probability ∝ ‖g − nearest centre‖².
"""

import jax
import jax.numpy as jnp

from jal import checks
from jal import cluster
from jal.acquisition import ranges
from jal.acquisition.base import stateless


def loss_gradient_wrt_logits(log_probs: jax.Array) -> jax.Array:
  """a = p − e_ŷ, the cross-entropy's gradient at the predicted label.

  Args:
    log_probs: [N, C] float32 log-probabilities.

  Returns:
    [N, C] float32.
  """
  probs = jnp.exp(log_probs)
  return probs - jax.nn.one_hot(jnp.argmax(log_probs, -1), probs.shape[-1],
                                dtype=probs.dtype)


def materialize(a: jax.Array, h: jax.Array, include_bias: bool = True
                ) -> jax.Array:
  """[N, C], [N, D] → [N, C·(D + 1)] gradient embeddings (tests, small N).

  Laid out as the gradient of a [C, D + 1] matrix [W | b]; without the bias,
  [N, C·D].
  """
  if include_bias:
    h = jnp.concatenate([h, jnp.ones((h.shape[0], 1), h.dtype)], axis=1)
  return (a[:, :, None] * h[:, None, :]).reshape(a.shape[0], -1)


def factorized_sq_norms(a: jax.Array, h: jax.Array,
                        include_bias: bool = True) -> jax.Array:
  """[N] ‖g_i‖² = ‖a_i‖² (‖h_i‖² + 1)."""
  return (jnp.sum(jnp.square(a), axis=1) *
          (jnp.sum(jnp.square(h), axis=1) + float(include_bias)))


def factorized_sq_distances(a: jax.Array, h: jax.Array,
                            include_bias: bool = True):
  """`j -> [N]` squared distances ‖g_i − g_j‖², never forming g.

  Args:
    a: [N, C] from `loss_gradient_wrt_logits`.
    h: [N, D] embeddings.
    include_bias: whether g has the bias part.

  Returns:
    A function of a traced index j returning [N] float32; each call reads
    a and h once.
  """
  hp = jax.lax.Precision.HIGHEST
  g_sq = factorized_sq_norms(a, h, include_bias)

  def to_point(j):
    dots = (jnp.matmul(a, a[j], precision=hp) *
            (jnp.matmul(h, h[j], precision=hp) + float(include_bias)))
    return jnp.maximum(g_sq - 2.0 * dots + g_sq[j], 0.0)

  return to_point


def badge_select(key: jax.Array, log_probs: jax.Array, embeddings: jax.Array,
                 candidates: jax.Array, query_size: int,
                 include_bias: bool = True) -> jax.Array:
  """k-means++ seeding over the candidates' gradient embeddings.

  Args:
    key: PRNG key of the D² draws.
    log_probs: [N, C] float32.
    embeddings: [N, D] float32 inputs of the final linear layer.
    candidates: [N] bool (the unlabeled points).
    query_size: static, at most the number of candidates.
    include_bias: whether the gradient includes the bias's part.

  Returns:
    [query_size] int32 distinct candidate indices in seeding order; the
    first is the candidate of largest gradient norm (lowest index on ties).

  Raises:
    ConfigError: a bad argument (e.g. more picks than candidates), named.
  """
  n, _ = checks.points(embeddings, 'embeddings')
  checks.mask(candidates, 'candidates', n)
  checks.log_probs(log_probs, 'log_probs', 2, '[N, C] (one pass)', n=n,
                   rows=candidates if checks.concrete(candidates) else None)
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, candidates, 'query_size',
                    'candidates are True')
  a = loss_gradient_wrt_logits(log_probs)
  g_sq = factorized_sq_norms(a, embeddings, include_bias)
  first = jnp.argmax(jnp.where(candidates, g_sq, -jnp.inf))
  return cluster.kmeans_plusplus(
      key, factorized_sq_distances(a, embeddings, include_bias),
      candidates.astype(jnp.float32), query_size, first=first)


def _select(key, inputs, labeled_mask, query_size, include_bias: bool = True):
  return badge_select(key, inputs['log_probs'][0], inputs['embeddings'],
                      ~labeled_mask, query_size, include_bias)


STRATEGIES = (stateless('badge', ('log_probs', 'embeddings'), _select,
                        ranges=dict(include_bias=ranges.BOOL)),)
