"""Chunked distances, k-means and k-NN against plain numpy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import cluster


def _points(n, d, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _sq_dist(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return ((a[:, None] - b[None]) ** 2).sum(-1)


@pytest.mark.parametrize('chunk', [1, 7, 50, 64])
def test_map_rows_and_fold_rows_cover_every_row_once(chunk):
  x = jnp.arange(50 * 3, dtype=jnp.float32).reshape(50, 3)
  doubled = jax.jit(lambda x: cluster.map_rows(lambda r: 2 * r, (x,), chunk))(x)
  np.testing.assert_array_equal(doubled, 2 * np.asarray(x))
  total = cluster.fold_rows(
      lambda acc, fresh, r: acc + jnp.sum(jnp.where(fresh[:, None], r, 0), 0),
      jnp.zeros(3), (x,), chunk)
  np.testing.assert_allclose(total, np.asarray(x).sum(0))


@pytest.mark.parametrize('num_in_subset', [0, 1, 9, 40])
def test_min_sq_distances_to_subset_matches_full_matrix(num_in_subset):
  x = _points(90, 5)
  mask = np.zeros(90, bool)
  mask[np.random.default_rng(1).choice(90, num_in_subset, replace=False)] = True
  got = jax.jit(functools.partial(cluster.min_sq_distances_to_subset,
                                  chunk_size=16, subset_chunk=4))(x, mask)
  if num_in_subset == 0:
    assert np.all(np.isinf(got))
  else:
    np.testing.assert_allclose(got, _sq_dist(x, x[mask]).min(1), rtol=1e-4,
                               atol=1e-4)


def test_pairwise_and_single_point_distances():
  x, y = _points(20, 6), _points(5, 6, seed=2)
  np.testing.assert_allclose(cluster.pairwise_sq_distances(x, y),
                             _sq_dist(x, y), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(cluster.sq_distances_to(x, y[3]),
                             _sq_dist(x, y[3:4])[:, 0], rtol=1e-5, atol=1e-5)


def _numpy_kmeans_plusplus(key, x, weights, k, first=None):
  """Plain k-means++ fed the same Gumbel draws as the documented scheme."""
  n = len(x)
  d = _sq_dist(x, x)
  gumbel = lambda t: np.asarray(jax.random.gumbel(jax.random.fold_in(key, t),
                                                  (n,)), np.float64)
  available = weights > 0
  with np.errstate(divide='ignore'):
    if first is None:
      first = int(np.argmax(np.where(available, np.log(weights) + gumbel(0),
                                     -np.inf)))
    picks = [first]
    available[first] = False
    for t in range(1, k):
      min_sq = d[:, picks].min(1)
      score = np.log(weights * min_sq) + gumbel(t)
      picks.append(int(np.argmax(np.where(available, score, -np.inf))))
      available[picks[-1]] = False
  return picks


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_kmeans_plusplus_matches_numpy_reference(seed):
  x = jnp.asarray(_points(60, 4, seed))
  weights = np.random.default_rng(seed).uniform(0.5, 2.0, 60)
  weights[:10] = 0.0  # never picked
  key = jax.random.key(seed)
  got = cluster.kmeans_plusplus(
      key, lambda j: cluster.sq_distances_to(x, x[j]),
      jnp.asarray(weights, jnp.float32), 8)
  want = _numpy_kmeans_plusplus(key, x, weights, 8)
  np.testing.assert_array_equal(got, want)
  assert np.all(np.asarray(got) >= 10)


def test_kmeans_plusplus_draws_second_centre_with_d2_probabilities():
  x = jnp.array([[0.0], [1.0], [3.0], [7.0]], jnp.float32)
  first = 0
  draw = jax.jit(jax.vmap(lambda key: cluster.kmeans_plusplus(
      key, lambda j: cluster.sq_distances_to(x, x[j]), jnp.ones(4), 2,
      first=first)[1]))
  second = np.asarray(draw(jax.random.split(jax.random.key(0), 20000)))
  freq = np.bincount(second, minlength=4) / len(second)
  d2 = np.array([0.0, 1.0, 9.0, 49.0])
  np.testing.assert_allclose(freq, d2 / d2.sum(), atol=0.012)


def test_kmeans_plusplus_duplicates_stay_distinct():
  x = jnp.zeros((6, 2), jnp.float32)
  got = cluster.kmeans_plusplus(jax.random.key(0), lambda j: cluster.
                                sq_distances_to(x, x[j]), jnp.ones(6), 6)
  assert sorted(np.asarray(got).tolist()) == list(range(6))


def test_assign_and_one_lloyd_step_match_numpy():
  x = _points(70, 3)
  w = np.random.default_rng(3).uniform(0, 1, 70).astype(np.float32)
  centres = x[:5] + 0.1
  nearest, sq = cluster.assign(x, centres, chunk_size=16)
  d = _sq_dist(x, centres)
  np.testing.assert_array_equal(nearest, d.argmin(1))
  np.testing.assert_allclose(sq, d.min(1), rtol=1e-4, atol=1e-5)
  got = cluster.lloyd(x, w, centres, 1, chunk_size=16)
  want = np.stack([(w[d.argmin(1) == c, None] * x[d.argmin(1) == c]).sum(0) /
                   w[d.argmin(1) == c].sum() for c in range(5)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_lloyd_keeps_an_empty_centre_and_ignores_masked_ones():
  x = np.array([[0.0], [0.2], [10.0], [10.2]], np.float32)
  centres = np.array([[0.0], [10.0], [100.0], [5.0]], np.float32)
  got = cluster.lloyd(x, jnp.ones(4), centres, 3,
                      centre_mask=jnp.array([True, True, True, False]))
  np.testing.assert_allclose(got[:, 0], [0.1, 10.1, 100.0, 5.0], atol=1e-5)


def test_nearest_distinct_matches_rule():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(40, 2)).astype(np.float32)
  candidates = rng.uniform(size=40) < 0.7
  # Centre 3 sits far away: it wins no candidate and fills in last.
  centres = np.concatenate([x[:3] + 0.01, [[50.0, 50.0]]]).astype(np.float32)
  got = np.asarray(cluster.nearest_distinct(x, centres, candidates, 8))
  d = _sq_dist(x, centres)
  owner = np.where(candidates, d.argmin(1), -1)
  want = []
  for c in range(4):
    members = np.flatnonzero(owner == c)
    want.append(members[d[members, c].argmin()] if len(members) else None)
  free = candidates.copy()
  free[[w for w in want if w is not None]] = False
  for c in range(4):
    if want[c] is None:
      want[c] = int(np.argmin(np.where(free, d[:, c], np.inf)))
      free[want[c]] = False
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('use_groups', [False, True])
def test_knn_matches_full_matrix(use_groups):
  x = _points(45, 3, seed=5)
  groups = np.arange(45) % 3 if use_groups else np.zeros(45, int)
  sq, idx = cluster.knn(x, 4, jnp.asarray(groups) if use_groups else None,
                        chunk_size=8)
  d = _sq_dist(x, x)
  d[np.arange(45), np.arange(45)] = np.inf
  d[groups[:, None] != groups[None, :]] = np.inf
  want_idx = np.argsort(d, axis=1, kind='stable')[:, :4]
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(sq, np.take_along_axis(d, want_idx, 1), rtol=1e-4,
                             atol=1e-5)


def test_pca_project_matches_numpy_svd():
  x = _points(100, 6) * np.array([5, 3, 1, 0.5, 0.2, 0.1], np.float32)
  got = np.asarray(cluster.pca_project(x, 3))
  centred = x - x.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  want = centred @ vt[:3].T
  np.testing.assert_allclose(np.abs(got), np.abs(want), rtol=1e-3, atol=1e-3)
