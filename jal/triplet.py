"""Triplet loss with online semi-hard negative mining, for training embedders.

The embedder of seed 001's camera-trap pipeline (issue 12) may be trained with
a triplet loss whose negatives are mined inside each minibatch, as in FaceNet
(Schroff et al., 2015): every (anchor, positive) pair of the batch gets one
negative, drawn at random among the *semi-hard* ones, those farther from the
anchor than the positive but still within the margin. Mining and loss run
inside `jit` on fixed shapes: the batch's [B, B] distances and a [B, B, B]
array of Gumbel noise, with no Python loop over the batch and no host round
trip. Rows of weight 0 (the padding `jal.train.minibatch` adds to the last
batch) take no part, neither in pairs nor as negatives.

Distances are squared Euclidean distances between L2-normalized embeddings,
as in FaceNet, so they lie in [0, 4].
"""

import jax
import jax.numpy as jnp

from jal import cluster

# FaceNet's margin α (Schroff et al., 2015, §3); seed 001 does not give one.
DEFAULT_MARGIN = 0.2

# Rows are divided by max(‖x‖, _MIN_NORM), so a row of zeros stays zero.
_MIN_NORM = 1e-12


def sq_distances(embeddings: jax.Array) -> jax.Array:
  """Squared Euclidean distances between all rows of a batch.

  Args:
    embeddings: [B, D] float.

  Returns:
    [B, B] float, d[i, j] = ‖x_i − x_j‖², clipped at 0 (the expansion
    ‖x_i‖² − 2⟨x_i, x_j⟩ + ‖x_j‖² can round slightly below 0).
  """
  return cluster.pairwise_sq_distances(embeddings, embeddings)


def l2_normalize(embeddings: jax.Array) -> jax.Array:
  """Rows divided by max(‖x‖, 1e-12); rows of zeros stay zero, gradient finite.

  Args:
    embeddings: [B, D] float.

  Returns:
    [B, D] float, rows of unit norm (or zero).
  """
  sq = jnp.sum(jnp.square(embeddings), axis=-1, keepdims=True)
  # rsqrt(max(‖x‖², ε²)) rather than 1 / max(‖x‖, ε): the same value, but the
  # gradient of ‖x‖ at x = 0 would be NaN, that of ‖x‖² is 0.
  return embeddings * jax.lax.rsqrt(jnp.maximum(sq, _MIN_NORM**2))


def semihard_negatives(key: jax.Array, sq_dist: jax.Array, labels: jax.Array,
                       weights: jax.Array, margin: float | jax.Array
                       ) -> tuple[jax.Array, jax.Array]:
  """Mines one negative for every (anchor, positive) pair of a batch.

  With d = `sq_dist`, the valid negatives of anchor a are the rows n with a
  label other than a's and weight > 0. For the pair (a, p):
    1. if the semi-hard set S(a, p) = {n valid : d[a,p] < d[a,n] <
       d[a,p] + margin} is not empty, one member drawn uniformly at random:
       the argmax over S of Gumbel noise g[a, p, n], with
       g = jax.random.gumbel(key, [B, B, B]);
    2. else, if some valid n has d[a,n] ≥ d[a,p] + margin (easy negatives),
       the one with the smallest d[a,n] (its loss is 0);
    3. else (every valid negative is at most as far as the positive), the one
       with the largest d[a,n], the least hard negative.
  Ties in 2 and 3 go to the lowest index. A pair whose anchor has no valid
  negative at all is dropped from `pair_mask`.

  Args:
    key: PRNG key for the random choice in rule 1.
    sq_dist: [B, B] float squared distances (see `sq_distances`); treated as
      constants (pass them through `jax.lax.stop_gradient` when mining inside
      a loss).
    labels: [B] int32 class labels.
    weights: [B] float; rows of weight 0 (padding) are neither anchors,
      positives nor negatives.
    margin: the triplet margin (a Python or traced float).

  Returns:
    negatives: [B, B] int32, the mined negative n[a, p] of each pair, in
      [0, B); meaningful only where `pair_mask` holds.
    pair_mask: [B, B] bool, a ≠ p, labels[a] = labels[p], both weights > 0,
      and anchor a has at least one valid negative.
  """
  b = labels.shape[0]
  live = weights > 0
  same = labels[:, None] == labels[None, :]
  valid_neg = ~same & live[None, :]                      # [a, n]
  pair_mask = (same & ~jnp.eye(b, dtype=bool) & live[:, None] & live[None, :]
               & jnp.any(valid_neg, axis=1)[:, None])

  d_ap = sq_dist[:, :, None]                             # [a, p, 1]
  d_an = sq_dist[:, None, :]                             # [a, 1, n]
  valid = valid_neg[:, None, :]                          # [a, 1, n]

  # Rule 1: a uniform draw from the semi-hard set (Gumbel-max).
  semihard = valid & (d_an > d_ap) & (d_an < d_ap + margin)   # [a, p, n]
  gumbel = jax.random.gumbel(key, (b, b, b), dtype=sq_dist.dtype)
  rule1 = jnp.argmax(jnp.where(semihard, gumbel, -jnp.inf), axis=2)
  # Rule 2: the closest easy negative.
  easy = valid & (d_an >= d_ap + margin)
  rule2 = jnp.argmin(jnp.where(easy, d_an, jnp.inf), axis=2)
  # Rule 3: the farthest valid negative (it does not depend on p).
  rule3 = jnp.argmax(jnp.where(valid_neg, sq_dist, -jnp.inf), axis=1)

  negatives = jnp.where(jnp.any(semihard, axis=2), rule1,
                        jnp.where(jnp.any(easy, axis=2), rule2,
                                  rule3[:, None]))
  return negatives.astype(jnp.int32), pair_mask


def semihard_triplet_loss(key: jax.Array, embeddings: jax.Array,
                          labels: jax.Array, weights: jax.Array,
                          margin: float | jax.Array = DEFAULT_MARGIN
                          ) -> jax.Array:
  """Mean triplet loss over a batch's pairs, negatives mined semi-hard.

  The embeddings are L2-normalized (`l2_normalize`); negatives are mined by
  `semihard_negatives` on the distances under `stop_gradient`; the loss is
  the mean over `pair_mask` of max(d[a,p] − d[a,n[a,p]] + margin, 0), the
  gradient flowing through the distances only.

  Args:
    key: PRNG key for the random choice among semi-hard negatives.
    embeddings: [B, D] float, unnormalized.
    labels: [B] int32 class labels.
    weights: [B] float; 0 marks padding rows (`jal.train.minibatch` pads the
      last batch with weight 0), which take no part and get zero gradient.
    margin: the triplet margin on squared distances between unit vectors;
      the default 0.2 is FaceNet's (seed 001 gives none).

  Returns:
    Scalar float loss; 0.0 (not NaN) when the batch has no (anchor, positive)
    pair with a valid negative.
  """
  dist = sq_distances(l2_normalize(embeddings))
  negatives, pair_mask = semihard_negatives(
      key, jax.lax.stop_gradient(dist), labels, weights, margin)
  d_an = jnp.take_along_axis(dist, negatives, axis=1)   # [a, p] = d[a, n[a,p]]
  losses = jnp.maximum(dist - d_an + margin, 0.0)
  total = jnp.sum(jnp.where(pair_mask, losses, 0.0))
  return total / jnp.maximum(jnp.sum(pair_mask), 1)
