"""Cluster-Margin (Citovsky et al. 2021): margin filter, HAC diversity.

Once per experiment (the strategy's `init`, at the first query), the pool's
embeddings are clustered by hierarchical agglomerative clustering (HAC) with
average linkage; the cluster id of every pool point is the strategy's state. Each
round takes the `margin_multiple · query_size` unlabeled points of lowest
margin p₁ − p₂, then picks `query_size` of them round-robin over their
clusters, from the cluster with the fewest such points to the largest,
taking a random member of each cluster per turn.

How the clustering scales: exact HAC needs the N×N linkage matrix and O(N³)
time (O(N² log N) with priority queues), out of reach for pools of 10^5–10^6.
jal runs exact average-linkage HAC (`jal.linkage.average_linkage`) on a
uniform random subsample of `hac_sample` pool points (m² memory, m³/… time:
a few seconds for m = 2000), cutting it at `num_clusters` clusters (or at
`distance_threshold`), and then gives every pool point the cluster of its
nearest subsample point (a 1-nearest-neighbour assignment in chunks,
O(N·m·D) time, O(N) memory). With `hac_sample` ≥ N the clustering is exact.
"""

import jax
import jax.numpy as jnp

from jal import checks
from jal import cluster
from jal import linkage
from jal.acquisition import ranges
from jal.acquisition import uncertainty
from jal.acquisition.base import Strategy, top_k_unlabeled_first


def hac_pool_clusters(key: jax.Array, features: jax.Array, num_clusters: int,
                      sample_size: int = 2000,
                      distance_threshold: float | None = None,
                      chunk_size: int = cluster.DEFAULT_CHUNK) -> jax.Array:
  """Average-linkage HAC on a subsample, extended to the pool by 1-NN.

  Args:
    key: PRNG key of the subsample.
    features: [N, D] float32.
    num_clusters: static number of clusters to cut the tree at.
    sample_size: static subsample size m (the whole pool if m ≥ N).
    distance_threshold: optional linkage distance to stop merging at.
    chunk_size: pool rows per [chunk, m] tile.

  Returns:
    [N] int32 cluster ids.
  """
  n, _ = checks.points(features, 'features')
  checks.positive_int(num_clusters, 'num_clusters')
  checks.positive_int(sample_size, 'sample_size')
  if distance_threshold is not None and checks.concrete(distance_threshold):
    ranges.check(ranges.POSITIVE, float(distance_threshold),
                 'distance_threshold')
  if sample_size >= n:
    sample = jnp.arange(n)
  else:
    sample = jax.random.choice(key, n, (sample_size,), replace=False)
  sample_points = features[sample]
  sample_ids = linkage.average_linkage(sample_points, num_clusters,
                                       distance_threshold)
  nearest, _ = cluster.assign(features, sample_points, chunk_size=chunk_size)
  return sample_ids[nearest]


def round_robin(key: jax.Array, candidates: jax.Array, valid: jax.Array,
                cluster_ids: jax.Array, query_size: int) -> jax.Array:
  """`query_size` candidates taken round-robin over clusters.

  Turn r takes the r-th member (in a random order) of every cluster still
  holding one, visiting clusters from fewest valid candidates to most (then
  by cluster id).

  Args:
    key: PRNG key of the order inside each cluster.
    candidates: [M] int32 pool indices.
    valid: [M] bool; invalid candidates come after every valid one.
    cluster_ids: [M] int32 cluster of each candidate.
    query_size: static, at most the number of valid candidates.

  Returns:
    [query_size] int32 pool indices.
  """
  (m,) = checks.array(candidates, 1, 'candidates', '[M]')
  checks.mask(valid, 'valid', m)
  checks.size(checks.array(cluster_ids, 1, 'cluster_ids', '[M]')[0], m,
              'cluster_ids', 'entries', 'one per candidate')
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, valid, 'query_size', 'candidates are valid')
  # Sorted by cluster, valid members first, in random order within each:
  # position inside the cluster's run = turn at which it is taken.
  by_cluster = jnp.lexsort((jax.random.uniform(key, (m,)), ~valid,
                            cluster_ids))
  sorted_ids = cluster_ids[by_cluster]
  position = jnp.arange(m)
  starts = jnp.concatenate([jnp.array([True]),
                            sorted_ids[1:] != sorted_ids[:-1]])
  segment_start = jax.lax.cummax(jnp.where(starts, position, 0))
  rank = jnp.zeros((m,), jnp.int32).at[by_cluster].set(
      (position - segment_start).astype(jnp.int32))
  segment = jnp.cumsum(starts) - 1
  sizes = jax.ops.segment_sum(valid[by_cluster].astype(jnp.int32), segment, m)
  size = jnp.zeros((m,), jnp.int32).at[by_cluster].set(sizes[segment])
  rank = jnp.where(valid, rank, m)
  order = jnp.lexsort((cluster_ids, size, rank))
  return candidates[order[:query_size]].astype(jnp.int32)


HPARAMS = dict(margin_multiple=10, num_clusters=200, hac_sample=2000,
               distance_threshold=None, chunk_size=cluster.DEFAULT_CHUNK)


def _init(key, inputs, labeled_mask, *, margin_multiple, num_clusters,
          hac_sample, distance_threshold, chunk_size):
  """[N] int32 cluster ids of the pool, kept for the whole experiment."""
  del labeled_mask, margin_multiple
  return hac_pool_clusters(key, inputs['embeddings'], num_clusters,
                           hac_sample, distance_threshold, chunk_size)


def _select(key, inputs, labeled_mask, cluster_ids, query_size, *,
            margin_multiple, num_clusters, hac_sample, distance_threshold,
            chunk_size):
  del num_clusters, hac_sample, distance_threshold, chunk_size
  num_candidates = min(margin_multiple * query_size, labeled_mask.shape[0])
  candidates = top_k_unlabeled_first(uncertainty.margin(inputs['log_probs']),
                                     labeled_mask, num_candidates)
  selected = round_robin(key, candidates, ~labeled_mask[candidates],
                         cluster_ids[candidates], query_size)
  return selected, cluster_ids


RANGES = dict(margin_multiple=ranges.POSITIVE_INT,
              num_clusters=ranges.POSITIVE_INT,
              hac_sample=ranges.POSITIVE_INT,
              distance_threshold=ranges.optional(ranges.POSITIVE,
                                                 'no threshold'),
              chunk_size=ranges.POSITIVE_INT)

STRATEGIES = (Strategy('cluster_margin', ('log_probs', 'embeddings'), _select,
                       init=_init, hparams=HPARAMS, ranges=RANGES),)
