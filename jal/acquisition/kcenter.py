"""Greedy core-set (k-center) selection (Sener & Savarese 2018).

Farthest-first traversal in embedding space: each pick is the unlabeled point
farthest from every labeled and already-picked point. The starting distances
to the labeled set are computed in tiles (`jal.cluster.min_sq_distances_to_
subset`), then the `query_size` picks run in one loop that updates the
minimum distances in O(N·D) per pick. Memory stays O(N·D): DeepAL+'s N×N
distance matrix, and the PCA to 32 dimensions it needed, are not required
(`pca_dim` remains available as an option).
"""

import jax

from jal import checks
from jal import cluster
from jal.acquisition import ranges
from jal.acquisition.base import stateless


def kcenter_select(features: jax.Array, labeled_mask: jax.Array,
                   query_size: int, chunk_size: int = cluster.DEFAULT_CHUNK
                   ) -> jax.Array:
  """Greedy k-center picks on any fixed features.

  Args:
    features: [N, D] float32.
    labeled_mask: [N] bool; the labeled points are the initial centres.
    query_size: static number of picks, at most the unlabeled count.
    chunk_size: pool rows per distance tile.

  Returns:
    [query_size] int32 unlabeled indices in pick order; ties go to the lowest
    index (with no labeled point, the first pick is the lowest unlabeled
    index).

  Raises:
    ConfigError: a bad argument (e.g. more picks than unlabeled points),
      named.
  """
  n, _ = checks.points(features, 'features')
  checks.mask(labeled_mask, 'labeled_mask', n)
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, labeled_mask, 'query_size',
                    'pool points are unlabeled', count_false=True)
  min_sq = cluster.min_sq_distances_to_subset(features, labeled_mask,
                                              chunk_size)
  return cluster.farthest_first(features, min_sq, ~labeled_mask, query_size)


def _select(key, inputs, labeled_mask, query_size, pca_dim: int = 0,
            chunk_size: int = cluster.DEFAULT_CHUNK):
  """`kcenter`; `pca_dim` > 0 first projects the embeddings by PCA."""
  del key
  features = inputs['embeddings']
  if pca_dim:
    checks.int_in(pca_dim, 0, features.shape[-1],
                  'config.hparams.kcenter.pca_dim',
                  f'0: no PCA; the embeddings have {features.shape[-1]} '
                  'features')
    features = cluster.pca_project(features, pca_dim)
  return kcenter_select(features, labeled_mask, query_size, chunk_size)


STRATEGIES = (stateless('kcenter', ('embeddings',), _select,
                        ranges=dict(pca_dim=ranges.NON_NEGATIVE_INT,
                                    chunk_size=ranges.POSITIVE_INT)),)
