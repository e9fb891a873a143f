"""TypiClust and ProbCover against plain numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import cluster
from jal.acquisition import coldstart


def _blobs(num_blobs=3, per_blob=25, d=2, seed=0):
  rng = np.random.default_rng(seed)
  means = rng.normal(0, 40, (num_blobs, d))
  x = np.concatenate([m + rng.normal(0, 1, (per_blob, d)) for m in means])
  return x.astype(np.float32), np.repeat(np.arange(num_blobs), per_blob)


def _sq_dist(x):
  x = np.asarray(x, np.float64)
  return ((x[:, None] - x[None]) ** 2).sum(-1)


def _numpy_typicality(x, ids, k):
  d = np.sqrt(_sq_dist(x))
  d[np.arange(len(x)), np.arange(len(x))] = np.inf
  d[ids[:, None] != ids[None, :]] = np.inf
  out = np.zeros(len(x))
  for i in range(len(x)):
    near = np.sort(d[i])[:k]
    near = near[np.isfinite(near)]
    out[i] = 1 / near.mean() if len(near) else 0.0
  return out


def test_typicality_matches_numpy():
  x, _ = _blobs(seed=1)
  ids = np.arange(len(x)) % 4
  ids[-1] = 9  # alone in its cluster
  got = coldstart.typicality(jnp.asarray(x), jnp.asarray(ids), 5,
                             chunk_size=16)
  # Distances come from ‖x‖² − 2⟨x, y⟩ + ‖y‖² in float32: the blobs lie ~40
  # from the origin, so unit distances carry ~1e-4 relative error.
  np.testing.assert_allclose(got, _numpy_typicality(x, ids, 5), rtol=1e-3)


@pytest.mark.parametrize('labeled_blob', [None, 0])
def test_typiclust_picks_most_typical_point_of_uncovered_blobs(labeled_blob):
  x, blob = _blobs()
  labeled = np.zeros(len(x), bool)
  if labeled_blob is not None:
    labeled[np.flatnonzero(blob == labeled_blob)[0]] = True
  b = 2 if labeled_blob is not None else 3
  got = np.asarray(coldstart.typiclust_select(
      jax.random.key(0), jnp.asarray(x), jnp.asarray(labeled), b,
      max_clusters=3, num_neighbours=5, chunk_size=16))
  typical = _numpy_typicality(x, blob, 5)
  blobs = [c for c in range(3) if c != labeled_blob]
  want = [np.flatnonzero(blob == c)[typical[blob == c].argmax()]
          for c in blobs]
  assert sorted(got.tolist()) == sorted(want)


def _numpy_probcover(x, labeled, b, radius):
  """Greedy max coverage while some point is uncovered (then jal is random)."""
  ball = _sq_dist(x) < radius ** 2  # ball[i, j]: i's ball holds j
  covered = ball[labeled].any(0) | labeled
  available, picks = ~labeled, []
  for _ in range(b):
    gain = (ball & ~covered[None]).sum(1)
    if not np.any(gain[available] > 0):
      break
    j = int(np.argmax(np.where(available, gain, -1)))
    picks.append(j)
    available[j] = False
    covered |= ball[j]
  return picks


@pytest.mark.parametrize('radius', [0.8, 1.5, 3.0])
def test_probcover_matches_greedy_coverage_with_full_balls(radius):
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 6, (60, 2)).astype(np.float32)
  labeled = np.zeros(60, bool)
  labeled[[3, 30]] = True
  b = 5
  got = coldstart.probcover_select(jax.random.key(0), jnp.asarray(x),
                                   jnp.asarray(labeled), b, radius=radius,
                                   num_neighbours=59, chunk_size=16)
  want = _numpy_probcover(x, labeled, b, radius)
  np.testing.assert_array_equal(got[:len(want)], want)
  assert len(set(np.asarray(got).tolist())) == b
  assert not labeled[np.asarray(got)].any()
  if radius == 3.0:
    assert len(want) < b  # the random fill-in after full coverage is covered


@pytest.mark.parametrize('k,purity', [(6, 0.9), (15, 0.7)])
def test_purity_radius_matches_definition(k, purity):
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(80, 2)), jnp.float32)
  key = jax.random.key(5)
  sq, nbrs = cluster.knn(x, k)
  got = coldstart.purity_radius(key, x, sq, nbrs, 3, purity=purity)
  centres = cluster.kmeans(key, x, jnp.ones(80), 3)
  ids = np.asarray(cluster.assign(x, centres)[0])
  d = np.sqrt(_sq_dist(x))
  # t_i: nearest of i's k nearest neighbours lying in another cluster.
  t = np.full(80, np.inf)
  for i in range(80):
    near = [j for j in np.argsort(d[i], kind='stable') if j != i][:k]
    other = [d[i, j] for j in near if ids[j] != ids[i]]
    t[i] = min(other) if other else np.inf
  want = np.sort(t)[round((1 - purity) * 80)]
  assert np.isfinite(want)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert np.mean(t >= want) >= purity


def test_probcover_on_blobs_covers_one_blob_per_pick():
  x, blob = _blobs(num_blobs=3, per_blob=30)
  got = np.asarray(coldstart.probcover_select(
      jax.random.key(0), jnp.asarray(x), jnp.zeros(len(x), bool), 3,
      num_neighbours=29, num_classes=3, chunk_size=32))
  assert sorted(blob[got].tolist()) == [0, 1, 2]
