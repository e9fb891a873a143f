"""Cold-start strategies: TypiClust and ProbCover.

Both choose typical, well-spread points without trusting the model's
predictions, which suits the first rounds with few labels. They run on the
model's embeddings (`inputs['embeddings']`); to run them on a fixed
embedding of your own (e.g. a self-supervised one, as in the papers), call
`typiclust_select` / `probcover_select` with those features:

    picks = probcover_select(key, my_features, labeled_mask, 100)

- TypiClust (Hacohen et al. 2022): k-means with min(|L| + b, max_clusters)
  clusters; b times, take the cluster with the fewest labeled (or already
  picked) points, largest first, and pick its most typical unlabeled point,
  typicality being the inverse mean distance to its k nearest neighbours
  inside the cluster.
- ProbCover (Yehuda et al. 2022): greedy maximum coverage of δ-balls: each
  pick is the point whose ball holds the most points not yet covered (by a
  labeled or picked point's ball). Balls are read off a k-nearest-neighbour
  graph built in chunks (O(N·k) memory), so a ball holds at most k + 1
  points. δ defaults to the paper's choice: the largest radius at which a
  fraction `purity` of the balls hold a single k-means cluster (with
  `num_classes` clusters). Once every point is covered, picks are random.

Building the k-NN graph is O(N²·D) work (chunked, linear memory).
"""

import math

import jax
import jax.numpy as jnp

from jal import checks
from jal import cluster
from jal.acquisition import ranges
from jal.acquisition.base import stateless


_RADIUS = ranges.optional(ranges.POSITIVE, 'chosen from the purity')
_PURITY = ranges.interval(0, 1, low_open=True)


def _check_picks(features, labeled_mask, query_size: int) -> int:
  """Checks the arguments every selection takes; returns N."""
  n, _ = checks.points(features, 'features')
  checks.mask(labeled_mask, 'labeled_mask', n)
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, labeled_mask, 'query_size',
                    'pool points are unlabeled', count_false=True)
  return n


def typicality(features: jax.Array, cluster_ids: jax.Array,
               num_neighbours: int = 20, chunk_size: int = 1024
               ) -> jax.Array:
  """1 / mean distance to the k nearest neighbours in the same cluster.

  Args:
    features: [N, D] float32.
    cluster_ids: [N] int32.
    num_neighbours: static k; clusters with fewer than k + 1 points average
      over the neighbours they have.
    chunk_size: rows per tile side.

  Returns:
    [N] float32 (0 for a point alone in its cluster).
  """
  sq, _ = cluster.knn(features, num_neighbours, cluster_ids, chunk_size)
  found = jnp.isfinite(sq)
  total = jnp.sum(jnp.where(found, jnp.sqrt(jnp.where(found, sq, 0.0)), 0.0),
                  axis=1)
  count = jnp.sum(found, axis=1)
  mean = total / jnp.maximum(count, 1)
  return jnp.where(count > 0, 1.0 / (mean + 1e-12), 0.0)


def typiclust_select(key: jax.Array, features: jax.Array,
                     labeled_mask: jax.Array, query_size: int,
                     max_clusters: int = 500, num_neighbours: int = 20,
                     min_cluster_size: int = 5, num_iters: int = 10,
                     chunk_size: int = 1024) -> jax.Array:
  """TypiClust picks on any fixed features.

  Args:
    key: PRNG key of the k-means++ seeding.
    features: [N, D] float32.
    labeled_mask: [N] bool.
    query_size: static, at most the unlabeled count.
    max_clusters: static cap on the number of clusters.
    num_neighbours: k of the typicality.
    min_cluster_size: clusters smaller than this are used only when no
      larger cluster has an unlabeled point left.
    num_iters: Lloyd iterations.
    chunk_size: rows per tile.

  Returns:
    [query_size] int32 distinct unlabeled indices.

  Raises:
    ConfigError: a bad argument, named.
  """
  n = _check_picks(features, labeled_mask, query_size)
  for name, value, low in (('max_clusters', max_clusters, 1),
                           ('num_neighbours', num_neighbours, 1),
                           ('min_cluster_size', min_cluster_size, 1),
                           ('num_iters', num_iters, 0),
                           ('chunk_size', chunk_size, 1)):
    checks.int_at_least(value, low, name)
  k_max = min(max_clusters, n)
  num_clusters = jnp.minimum(jnp.sum(labeled_mask) + query_size, k_max)
  in_use = jnp.arange(k_max) < num_clusters
  x_sq = cluster.sq_norms(features)
  seeds = cluster.kmeans_plusplus(
      key, lambda j: cluster.sq_distances_to(features, features[j], x_sq),
      jnp.ones((n,), jnp.float32), k_max)
  centres = cluster.lloyd(features, jnp.ones((n,), jnp.float32),
                          features[seeds], num_iters, in_use, chunk_size)
  ids, _ = cluster.assign(features, centres, in_use, chunk_size)
  typical = typicality(features, ids, num_neighbours, chunk_size)
  sizes = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), ids, k_max)
  covered = jax.ops.segment_sum(labeled_mask.astype(jnp.int32), ids, k_max)

  def step(t, carry):
    covered, available, picks = carry
    open_ = jax.ops.segment_max(available.astype(jnp.int32), ids, k_max) > 0
    big = open_ & (sizes >= min_cluster_size)
    open_ = jnp.where(jnp.any(big), big, open_)
    least = jnp.min(jnp.where(open_, covered, n + 1))
    chosen = jnp.argmax(jnp.where(open_ & (covered == least), sizes, -1))
    pick = jnp.argmax(jnp.where(available & (ids == chosen), typical,
                                -jnp.inf))
    return (covered.at[chosen].add(1), available.at[pick].set(False),
            picks.at[t].set(pick))

  _, _, picks = jax.lax.fori_loop(
      0, query_size, step,
      (covered, ~labeled_mask, jnp.zeros((query_size,), jnp.int32)))
  return picks


def purity_radius(key: jax.Array, features: jax.Array, neighbour_sq:
                  jax.Array, neighbours: jax.Array, num_classes: int,
                  purity: float = 0.95) -> jax.Array:
  """ProbCover's δ: the largest radius with ≥ `purity` of balls pure.

  A ball (restricted to the k-NN graph) is pure when all its points share the
  ball centre's k-means cluster. Ball i is pure for every δ ≤ t_i, t_i being
  the distance to its nearest neighbour of another cluster, so δ is the
  ⌊(1 − purity)·N⌋-th smallest t_i.

  Returns:
    scalar float32 δ (+inf when nearly every k-NN list is pure: the balls
    are then the whole k-NN lists).
  """
  n = features.shape[0]
  centres = cluster.kmeans(key, features, jnp.ones((n,), jnp.float32),
                           num_classes)
  ids, _ = cluster.assign(features, centres)
  other = ids[neighbours] != ids[:, None]
  t = jnp.sqrt(jnp.min(jnp.where(other, neighbour_sq, jnp.inf), axis=1))
  return jnp.sort(t)[math.floor((1.0 - purity) * n + 1e-9)]


def probcover_select(key: jax.Array, features: jax.Array,
                     labeled_mask: jax.Array, query_size: int,
                     radius: float | None = None, num_neighbours: int = 20,
                     num_classes: int = 10, purity: float = 0.95,
                     chunk_size: int = 1024) -> jax.Array:
  """ProbCover picks on any fixed features.

  Args:
    key: PRNG key (δ's k-means, and random picks once all is covered).
    features: [N, D] float32.
    labeled_mask: [N] bool.
    query_size: static, at most the unlabeled count.
    radius: δ; None chooses it by `purity_radius`.
    num_neighbours: static k of the graph (ball size cap − 1).
    num_classes: k-means clusters for choosing δ.
    purity: fraction of pure balls for choosing δ.
    chunk_size: rows per tile side.

  Returns:
    [query_size] int32 distinct unlabeled indices; ties between equal
    coverage gains go to the lowest index.

  Raises:
    ConfigError: a bad argument, named.
  """
  _check_picks(features, labeled_mask, query_size)
  if checks.concrete(radius):
    ranges.check(_RADIUS, radius if radius is None else float(radius),
                 'radius')
  ranges.check(_PURITY, purity, 'purity')
  for name, value in (('num_neighbours', num_neighbours),
                      ('num_classes', num_classes), ('chunk_size', chunk_size)):
    checks.positive_int(value, name)
  radius_key, random_key = jax.random.split(key)
  neighbour_sq, neighbours = cluster.knn(features, num_neighbours,
                                         chunk_size=chunk_size)
  if radius is None:
    radius = purity_radius(radius_key, features, neighbour_sq, neighbours,
                           num_classes, purity)
  edges = neighbour_sq < jnp.square(radius)  # [N, k]: i's ball holds j

  def cover(covered, ball_centres):
    hit = edges & ball_centres[:, None]
    covered = covered.at[neighbours.reshape(-1)].max(hit.reshape(-1))
    return covered | ball_centres

  covered = cover(jnp.zeros_like(labeled_mask), labeled_mask)
  tie_break = jax.random.uniform(random_key, labeled_mask.shape)

  def step(t, carry):
    covered, available, picks = carry
    gain = ((~covered).astype(jnp.int32) +
            jnp.sum(edges & ~covered[neighbours], axis=1))
    score = jnp.where(gain > 0, gain.astype(jnp.float32), tie_break - 1.0)
    pick = jnp.argmax(jnp.where(available, score, -jnp.inf))
    covered = cover(covered, jnp.zeros_like(available).at[pick].set(True))
    return covered, available.at[pick].set(False), picks.at[t].set(pick)

  _, _, picks = jax.lax.fori_loop(
      0, query_size, step,
      (covered, ~labeled_mask, jnp.zeros((query_size,), jnp.int32)))
  return picks


def _typiclust(key, inputs, labeled_mask, query_size, max_clusters: int = 500,
               num_neighbours: int = 20, min_cluster_size: int = 5,
               num_iters: int = 10, chunk_size: int = 1024):
  return typiclust_select(key, inputs['embeddings'], labeled_mask,
                          query_size, max_clusters, num_neighbours,
                          min_cluster_size, num_iters, chunk_size)


def _probcover(key, inputs, labeled_mask, query_size,
               radius: float | None = None, num_neighbours: int = 20,
               num_classes: int = 10, purity: float = 0.95,
               chunk_size: int = 1024):
  return probcover_select(key, inputs['embeddings'], labeled_mask,
                          query_size, radius, num_neighbours, num_classes,
                          purity, chunk_size)


STRATEGIES = (
    stateless('typiclust', ('embeddings',), _typiclust,
              ranges=dict(max_clusters=ranges.POSITIVE_INT,
                          num_neighbours=ranges.POSITIVE_INT,
                          min_cluster_size=ranges.POSITIVE_INT,
                          num_iters=ranges.NON_NEGATIVE_INT,
                          chunk_size=ranges.POSITIVE_INT)),
    stateless('probcover', ('embeddings',), _probcover,
              ranges=dict(radius=_RADIUS,
                          num_neighbours=ranges.POSITIVE_INT,
                          num_classes=ranges.POSITIVE_INT, purity=_PURITY,
                          chunk_size=ranges.POSITIVE_INT)),
)
