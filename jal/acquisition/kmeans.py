"""k-means sampling and Diverse mini-Batch Active Learning (DBAL).

- `kmeans`: k-means with `query_size` centres on the unlabeled embeddings,
  then the unlabeled point nearest each centre (DeepAL's KMeansSampling).
- `dbal` (Zhdanov 2019): keep the `beta · query_size` unlabeled points of
  highest margin score 1 − (p₁ − p₂), run k-means with `query_size` centres
  on them weighted by that score, and pick the point nearest each centre.

Both run `jal.cluster.kmeans` (k-means++ seeding, Lloyd iterations,
chunked distances), so memory stays linear in the pool.
"""

import jax
import jax.numpy as jnp

from jal import checks
from jal import cluster
from jal.acquisition import ranges
from jal.acquisition import uncertainty
from jal.acquisition.base import stateless, top_k_unlabeled_first


def kmeans_select(key: jax.Array, features: jax.Array,
                  weights: jax.Array, query_size: int, num_iters: int = 10,
                  chunk_size: int = cluster.DEFAULT_CHUNK) -> jax.Array:
  """Weighted k-means, then the nearest distinct point to each centre.

  Args:
    key: PRNG key for the k-means++ seeding.
    features: [N, D] float32.
    weights: [N] float ≥ 0; only points of positive weight are clustered
      and picked (use 0 for labeled points).
    query_size: static number of centres and picks, at most the number of
      positive weights.
    num_iters: static number of Lloyd iterations.
    chunk_size: pool rows per distance tile.

  Returns:
    [query_size] int32 distinct indices of positive weight, one per centre.

  Raises:
    ConfigError: a bad argument (e.g. more picks than positive weights),
      named.
  """
  n, _ = checks.points(features, 'features')
  checks.array(weights, 1, 'weights', '[N]')
  checks.size(weights.shape[0], n, 'weights', 'entries', 'one per point')
  checks.non_negative(weights, 'weights')
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, weights, 'query_size', 'weights are positive')
  centres = cluster.kmeans(key, features, weights, query_size, num_iters,
                           chunk_size)
  return cluster.nearest_distinct(features, centres, weights > 0, chunk_size)


def _kmeans(key, inputs, labeled_mask, query_size, num_iters: int = 10,
            chunk_size: int = cluster.DEFAULT_CHUNK):
  weights = (~labeled_mask).astype(jnp.float32)
  return kmeans_select(key, inputs['embeddings'], weights, query_size,
                       num_iters, chunk_size)


def _dbal(key, inputs, labeled_mask, query_size, beta: int = 10,
          num_iters: int = 10, chunk_size: int = cluster.DEFAULT_CHUNK):
  """`dbal`: margin pre-filter of `beta · query_size`, weighted k-means."""
  num_candidates = min(beta * query_size, labeled_mask.shape[0])
  scores = uncertainty.margin(inputs['log_probs'])
  candidates = top_k_unlabeled_first(scores, labeled_mask, num_candidates)
  # Fewer unlabeled points than candidates: the surplus are labeled, weight 0.
  weights = jnp.where(labeled_mask[candidates], 0.0,
                      jnp.maximum(scores[candidates], 1e-12))
  picks = kmeans_select(key, inputs['embeddings'][candidates], weights,
                        query_size, num_iters, chunk_size)
  return candidates[picks]


STRATEGIES = (
    stateless('kmeans', ('embeddings',), _kmeans,
              ranges=dict(num_iters=ranges.NON_NEGATIVE_INT,
                          chunk_size=ranges.POSITIVE_INT)),
    stateless('dbal', ('log_probs', 'embeddings'), _dbal,
              ranges=dict(beta=ranges.POSITIVE_INT,
                          num_iters=ranges.NON_NEGATIVE_INT,
                          chunk_size=ranges.POSITIVE_INT)),
)
