"""k-center, k-means, DBAL and BADGE against brute-force references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import cluster
from jal.acquisition import badge
from jal.acquisition import kcenter
from jal.acquisition import kmeans
from jal.acquisition import uncertainty


def _points(n, d, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _numpy_kcenter(x, labeled, b):
  """Farthest-first with the full distance matrix, ties to the lowest index."""
  x = np.asarray(x, np.float64)
  d = ((x[:, None] - x[None]) ** 2).sum(-1)
  min_d = d[:, labeled].min(1) if labeled.any() else np.full(len(x), np.inf)
  available, picks = ~labeled, []
  for _ in range(b):
    j = int(np.argmax(np.where(available, min_d, -np.inf)))
    picks.append(j)
    available[j] = False
    min_d = np.minimum(min_d, d[:, j])
  return picks


def _labeled(n, count, seed=1):
  mask = np.zeros(n, bool)
  mask[np.random.default_rng(seed).choice(n, count, replace=False)] = True
  return mask


@pytest.mark.parametrize('n,d,num_labeled,b', [(200, 5, 12, 10),
                                               (150, 32, 0, 8),
                                               (97, 3, 60, 20)])
def test_kcenter_matches_brute_force(n, d, num_labeled, b):
  x = _points(n, d, seed=n)
  labeled = _labeled(n, num_labeled)
  select = jax.jit(functools.partial(acquisition.query, acquisition.get('kcenter')),
                 static_argnums=3)
  got = select(jax.random.key(0), {'embeddings': jnp.asarray(x)},
               jnp.asarray(labeled), b)
  np.testing.assert_array_equal(got, _numpy_kcenter(x, labeled, b))


def test_kcenter_breaks_ties_by_lowest_index():
  # Integer grid: exact float distances, many ties.
  x = np.array([[i, j] for i in range(5) for j in range(5)], np.float32)
  labeled = np.zeros(25, bool)
  labeled[12] = True  # the centre
  got = kcenter.kcenter_select(jnp.asarray(x), jnp.asarray(labeled), 6, 7)
  np.testing.assert_array_equal(got, _numpy_kcenter(x, labeled, 6))
  assert int(got[0]) == 0  # four corners tie; the lowest index wins


def test_kcenter_pca_option_equals_kcenter_on_projected_features():
  x = _points(120, 10, seed=3)
  labeled = _labeled(120, 5)
  got = acquisition.query(acquisition.get('kcenter'), 
      jax.random.key(0), {'embeddings': jnp.asarray(x)}, jnp.asarray(labeled),
      6, pca_dim=3)
  projected = np.asarray(cluster.pca_project(x, 3))
  np.testing.assert_array_equal(got, _numpy_kcenter(projected, labeled, 6))


def _blobs(num_blobs=4, per_blob=30, d=3, seed=0):
  rng = np.random.default_rng(seed)
  means = rng.normal(0, 50, (num_blobs, d))
  x = np.concatenate([m + rng.normal(0, 1, (per_blob, d)) for m in means])
  return x.astype(np.float32), np.repeat(np.arange(num_blobs), per_blob)


def test_kmeans_picks_the_point_nearest_each_blob_mean():
  x, blob = _blobs()
  labeled = np.zeros(len(x), bool)
  labeled[::7] = True
  got = np.asarray(acquisition.query(acquisition.get('kmeans'), 
      jax.random.key(0), {'embeddings': jnp.asarray(x)}, jnp.asarray(labeled),
      4))
  want = []
  for b in range(4):
    members = np.flatnonzero((blob == b) & ~labeled)
    mean = x[members].mean(0)
    want.append(members[((x[members] - mean) ** 2).sum(1).argmin()])
  assert sorted(got.tolist()) == sorted(want)


def test_kmeans_select_only_picks_positive_weights():
  x = _points(80, 4)
  weights = np.zeros(80, np.float32)
  weights[10:30] = 1.0
  got = np.asarray(jax.jit(kmeans.kmeans_select, static_argnums=3)(
      jax.random.key(1), x, weights, 20))
  assert sorted(got.tolist()) == list(range(10, 30))


def _log_probs(n, c, seed=0):
  logits = np.random.default_rng(seed).normal(0, 2, (n, c))
  return (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(
      np.float32)


def test_dbal_picks_from_the_margin_prefilter():
  n, b, beta = 120, 5, 3
  x, log_probs = _points(n, 4), _log_probs(n, 3)
  labeled = _labeled(n, 30)
  inputs = {'embeddings': jnp.asarray(x), 'log_probs': jnp.asarray(
      log_probs)[None]}
  select = jax.jit(functools.partial(acquisition.query, acquisition.get('dbal'),
                                     beta=beta), static_argnums=3)
  got = np.asarray(select(jax.random.key(0), inputs, jnp.asarray(labeled), b))
  score = np.asarray(uncertainty.margin(jnp.asarray(log_probs)[None]))
  prefilter = np.argsort(-np.where(labeled, -np.inf, score),
                         kind='stable')[:beta * b]
  assert len(set(got.tolist())) == b
  assert set(got.tolist()) <= set(prefilter.tolist())
  # beta = 1: the k-means has one centre per candidate, so it picks them all.
  got1 = acquisition.query(acquisition.get('dbal'), jax.random.key(0), inputs,
                                        jnp.asarray(labeled), b, beta=1)
  assert sorted(np.asarray(got1).tolist()) == sorted(prefilter[:b].tolist())


def _grad_embeddings(params, h):
  """Per-point gradient of CE at the predicted label w.r.t. [W | b], by grad."""
  w, bias = params

  def loss(params, h_i):
    w, bias = params
    logits = h_i @ w + bias
    label = jnp.argmax(logits)
    return -jax.nn.log_softmax(logits)[label]

  gw, gb = jax.vmap(jax.grad(loss), in_axes=(None, 0))((w, bias), h)
  # [N, D, C] and [N, C] → [N, C, D + 1], the layout of `badge.materialize`.
  return jnp.concatenate([jnp.swapaxes(gw, 1, 2), gb[:, :, None]], axis=2
                         ).reshape(h.shape[0], -1)


@pytest.mark.parametrize('include_bias', [True, False])
def test_badge_factorized_gradients_match_jax_grad(include_bias):
  rng = np.random.default_rng(0)
  n, d, c = 25, 6, 4
  h = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(d, c)), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(c,)), jnp.float32)
  g = _grad_embeddings((w, bias), h)
  if not include_bias:
    g = g.reshape(n, c, d + 1)[:, :, :d].reshape(n, -1)
  a = badge.loss_gradient_wrt_logits(jax.nn.log_softmax(h @ w + bias))
  np.testing.assert_allclose(badge.materialize(a, h, include_bias), g,
                             atol=1e-5)
  gram = np.asarray(g, np.float64) @ np.asarray(g, np.float64).T
  norms = np.diag(gram)
  np.testing.assert_allclose(badge.factorized_sq_norms(a, h, include_bias),
                             norms, rtol=1e-4, atol=1e-5)
  to_point = badge.factorized_sq_distances(a, h, include_bias)
  for j in (0, 7, 24):
    np.testing.assert_allclose(to_point(j), norms + norms[j] - 2 * gram[:, j],
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_badge_factorized_selection_equals_materialized(seed):
  rng = np.random.default_rng(seed)
  n, d, c, b = 80, 8, 5, 12
  h = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  log_probs = jnp.asarray(_log_probs(n, c, seed))
  labeled = jnp.asarray(_labeled(n, 20, seed))
  key = jax.random.key(seed)
  got = acquisition.query(acquisition.get('badge'), 
      key, {'embeddings': h, 'log_probs': log_probs[None]}, labeled, b)
  g = badge.materialize(badge.loss_gradient_wrt_logits(log_probs), h)
  first = jnp.argmax(jnp.where(labeled, -jnp.inf, jnp.sum(g * g, 1)))
  want = cluster.kmeans_plusplus(
      key, lambda j: cluster.sq_distances_to(g, g[j]),
      (~labeled).astype(jnp.float32), b, first=first)
  np.testing.assert_array_equal(got, want)
  assert not np.asarray(labeled)[np.asarray(got)].any()
