"""Average-linkage HAC against scikit-learn's AgglomerativeClustering."""

import jax
import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering

from jal import linkage


def _points(n, d, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _same_partition(a, b):
  a, b = np.asarray(a), np.asarray(b)
  pairs = set(zip(a.tolist(), b.tolist()))
  return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize('num_clusters', [1, 2, 5, 12])
def test_average_linkage_matches_sklearn(num_clusters):
  x = _points(60, 3, seed=num_clusters)
  got = jax.jit(linkage.average_linkage, static_argnums=1)(x, num_clusters)
  want = AgglomerativeClustering(n_clusters=num_clusters,
                                 linkage='average').fit_predict(x)
  assert len(set(np.asarray(got).tolist())) == num_clusters
  assert _same_partition(got, want)


def test_average_linkage_matches_sklearn_on_blobs():
  rng = np.random.default_rng(8)
  means = rng.normal(0, 6, (8, 4))
  x = (means[rng.integers(0, 8, 300)] + rng.normal(size=(300, 4))).astype(
      np.float32)
  for num_clusters in (3, 8, 40):
    got = linkage.average_linkage(x, num_clusters)
    want = AgglomerativeClustering(n_clusters=num_clusters,
                                   linkage='average').fit_predict(x)
    assert _same_partition(got, want)


def test_average_linkage_distance_threshold_matches_sklearn():
  x = _points(50, 2, seed=7)
  got = linkage.average_linkage(x, 1, distance_threshold=1.0)
  want = AgglomerativeClustering(n_clusters=None, distance_threshold=1.0,
                                 linkage='average').fit_predict(x)
  assert _same_partition(got, want)
