"""Cluster-Margin: pool clustering and round-robin against references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import linkage
from jal.acquisition import cluster_margin
from jal.acquisition import uncertainty


def _points(n, d, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _numpy_round_robin(priority, valid, ids, b):
  """Clusters from fewest valid members up; turn r takes each one's r-th."""
  members = {}
  for i in np.argsort(priority, kind='stable'):
    if valid[i]:
      members.setdefault(int(ids[i]), []).append(int(i))
  order = sorted(members, key=lambda c: (len(members[c]), c))
  picks, turn = [], 0
  while len(picks) < b:
    for c in order:
      if turn < len(members[c]) and len(picks) < b:
        picks.append(members[c][turn])
    turn += 1
  return picks


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_round_robin_matches_reference(seed):
  rng = np.random.default_rng(seed)
  m, b = 40, 17
  ids = rng.integers(0, 6, m).astype(np.int32) * 3  # ids need not be dense
  valid = rng.uniform(size=m) < 0.8
  candidates = np.arange(100, 100 + m, dtype=np.int32)
  key = jax.random.key(seed)
  got = cluster_margin.round_robin(key, candidates, valid, ids, b)
  priority = np.asarray(jax.random.uniform(key, (m,)))
  want = candidates[_numpy_round_robin(priority, valid, ids, b)]
  np.testing.assert_array_equal(got, want)


def test_hac_pool_clusters_exact_when_sample_covers_pool():
  x = _points(50, 3)
  got = cluster_margin.hac_pool_clusters(jax.random.key(0), x, 4,
                                         sample_size=50)
  np.testing.assert_array_equal(got, linkage.average_linkage(x, 4))


def test_hac_pool_clusters_extends_sample_by_nearest_neighbour():
  x = _points(300, 2, seed=1)
  key = jax.random.key(3)
  got = np.asarray(cluster_margin.hac_pool_clusters(key, x, 5, sample_size=40,
                                                    chunk_size=64))
  sample = np.asarray(jax.random.choice(key, 300, (40,), replace=False))
  sample_ids = np.asarray(linkage.average_linkage(x[sample], 5))
  d = ((x[:, None] - x[sample][None]) ** 2).sum(-1)
  np.testing.assert_array_equal(got, sample_ids[d.argmin(1)])
  assert len(set(got.tolist())) == 5


def test_cluster_margin_select_uses_lowest_margins_and_spreads_clusters():
  n, b, multiple = 200, 6, 3
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 2, (n, 4))
  log_probs = jnp.asarray(logits - np.log(np.exp(logits).sum(-1,
                                                             keepdims=True)),
                          jnp.float32)[None]
  labeled = np.zeros(n, bool)
  labeled[::5] = True
  cluster_ids = jnp.asarray(np.arange(n) % 4, jnp.int32)
  strategy = acquisition.get('cluster_margin')
  hparams = acquisition.check_hparams(strategy,
                                      {'margin_multiple': multiple})
  key = jax.random.key(1)
  got, state = jax.jit(lambda k, i, l, s: strategy.select(
      k, i, l, s, b, **hparams))(
          key, {'log_probs': log_probs}, jnp.asarray(labeled), cluster_ids)
  got = np.asarray(got)
  # The cluster ids are the experiment's state: select hands them back.
  np.testing.assert_array_equal(state, cluster_ids)
  candidates = np.asarray(acquisition.top_k_unlabeled(
      uncertainty.margin(log_probs), jnp.asarray(labeled), multiple * b))
  want = cluster_margin.round_robin(key, candidates,
                                    ~labeled[candidates],
                                    np.asarray(cluster_ids)[candidates], b)
  np.testing.assert_array_equal(got, want)
  # Six picks over four clusters: every cluster gets one or two.
  counts = np.bincount(np.asarray(cluster_ids)[got], minlength=4)
  assert counts.min() >= 1 and counts.max() <= 2


def test_cluster_margin_init_gives_cluster_per_pool_point():
  x = _points(120, 4)
  strategy = acquisition.get('cluster_margin')
  hparams = acquisition.check_hparams(strategy,
                                      {'num_clusters': 7, 'hac_sample': 60})
  ids = jax.jit(lambda k, i, l: strategy.init(k, i, l, **hparams))(
      jax.random.key(0), {'embeddings': jnp.asarray(x)},
      jnp.zeros(120, bool))
  assert ids.shape == (120,) and ids.dtype == jnp.int32
  assert set(np.asarray(ids).tolist()) == set(range(7))
