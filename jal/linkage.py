"""Agglomerative (hierarchical) clustering of a small point set.

Unlike `jal.cluster`, whose functions stay in linear memory over the pool,
this holds the m×m linkage matrix of the m points it clusters; strategies run
it on a subsample (`jal.acquisition.cluster_margin`).
"""

import jax
import jax.numpy as jnp

from jal import cluster


def average_linkage(x: jax.Array, num_clusters: int,
                    distance_threshold: float | None = None) -> jax.Array:
  """Agglomerative clustering with average linkage, on a small point set.

  Merges the two clusters of least mean pairwise Euclidean distance, updating
  the linkage of the merged cluster by the Lance–Williams formula
  d(k, i ∪ j) = (n_i d(k, i) + n_j d(k, j)) / (n_i + n_j), until
  `num_clusters` remain or the least linkage reaches `distance_threshold`
  (as scikit-learn's `AgglomerativeClustering`).
  It holds the m×m linkage matrix (O(m²) memory) and each row's nearest
  cluster; a merge updates two rows and columns and re-scans only the rows
  whose nearest cluster was one of the two merged, so a whole clustering
  typically takes O(m²) time (O(m³) at worst). m must stay moderate (a few
  thousand); see `jal.acquisition.cluster_margin` for pools.

  Args:
    x: [m, D] float32 points.
    num_clusters: static lower bound on the number of clusters (≥ 1).
    distance_threshold: optional; stop when the least linkage is ≥ it.

  Returns:
    [m] int32 cluster ids 0, 1, …, numbered by their lowest member.
  """
  m = x.shape[0]
  rows = jnp.arange(m)
  dist = jnp.sqrt(cluster.pairwise_sq_distances(x, x))
  dist = jnp.where(jnp.eye(m, dtype=bool), jnp.inf, dist)
  threshold = jnp.inf if distance_threshold is None else distance_threshold

  def keep_merging(carry):
    _, nearest_d, _, _, _, count = carry
    return (count > num_clusters) & (jnp.min(nearest_d) < threshold)

  def rescan(carry):
    dist, nearest_d, nearest_i, stale = carry
    r = jnp.argmax(stale)
    return (dist, nearest_d.at[r].set(jnp.min(dist[r])),
            nearest_i.at[r].set(jnp.argmin(dist[r])), stale.at[r].set(False))

  def merge(carry):
    dist, nearest_d, nearest_i, sizes, label, count = carry
    i = jnp.argmin(nearest_d)
    j = nearest_i[i]
    keep, gone = jnp.minimum(i, j), jnp.maximum(i, j)
    merged = ((sizes[keep] * dist[keep] + sizes[gone] * dist[gone]) /
              (sizes[keep] + sizes[gone]))
    merged = merged.at[keep].set(jnp.inf).at[gone].set(jnp.inf)
    dist = dist.at[keep, :].set(merged).at[:, keep].set(merged)
    dist = dist.at[gone, :].set(jnp.inf).at[:, gone].set(jnp.inf)
    sizes = sizes.at[keep].add(sizes[gone]).at[gone].set(0.0)
    label = jnp.where(label == gone, keep, label)
    # Rows that pointed at a merged cluster may now be farther from every
    # cluster: re-scan them. Others only get closer to the merged one.
    stale = ((nearest_i == keep) | (nearest_i == gone) | (rows == keep)) & (
        sizes > 0)
    closer = merged < nearest_d
    nearest_i = jnp.where(closer, keep, nearest_i)
    nearest_d = jnp.where(closer, merged, nearest_d).at[gone].set(jnp.inf)
    _, nearest_d, nearest_i, _ = jax.lax.while_loop(
        lambda c: jnp.any(c[3]), rescan, (dist, nearest_d, nearest_i, stale))
    return dist, nearest_d, nearest_i, sizes, label, count - 1

  init = (dist, jnp.min(dist, axis=1), jnp.argmin(dist, axis=1),
          jnp.ones((m,), x.dtype), rows, jnp.asarray(m))
  label = jax.lax.while_loop(keep_merging, merge, init)[4]
  is_root = label == rows
  compact = jnp.cumsum(is_root) - 1
  return compact[label].astype(jnp.int32)
