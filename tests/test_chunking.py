"""Chunked loops and the shared entropy against plain numpy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import chunking
from jal import information

N = 10
_X = np.random.default_rng(0).normal(size=(N, 3)).astype(np.float32)


def _fn(rows):
  """A pytree of per-row results of two dtypes; [B] int32 → [B], [B, 3]."""
  x = jnp.asarray(_X)[rows]
  return {'rows': rows + 1, 'doubled': 2.0 * x}


def _numpy_map_masked(mask, chunk):
  """Rows of the first ⌈|mask| / c⌉ chunks of the masked-first order, else 0."""
  c = min(chunk, N)
  mask = np.ones(N, bool) if mask is None else np.asarray(mask)
  order = np.argsort(~mask, kind='stable')
  padded = np.concatenate([order, order[:-(-N // c) * c - N]])
  covered = np.zeros(N, bool)
  covered[padded[:-(-int(mask.sum()) // c) * c]] = True
  return {'rows': np.where(covered, np.arange(N) + 1, 0),
          'doubled': np.where(covered[:, None], 2.0 * _X, 0.0)}


def _masks():
  rng = np.random.default_rng(1)
  return [np.zeros(N, bool), np.ones(N, bool), np.arange(N) == 7,
          rng.random(N) < 0.3, rng.random(N) < 0.6]


def _assert_matches(got, want):
  assert got['rows'].dtype == jnp.int32 and got['rows'].shape == (N,)
  assert got['doubled'].dtype == jnp.float32
  np.testing.assert_array_equal(got['rows'], want['rows'])
  np.testing.assert_array_equal(got['doubled'], want['doubled'])


@pytest.mark.parametrize('n,chunk,want', [(0, 4, 0), (1, 4, 1), (4, 4, 1),
                                          (5, 4, 2), (10, 3, 4), (3, 16, 1)])
def test_num_chunks_is_the_ceiling(n, chunk, want):
  assert chunking.num_chunks(n, chunk) == want
  assert int(jax.jit(chunking.num_chunks, static_argnums=1)(n, chunk)) == want


@pytest.mark.parametrize('chunk', [1, 3, 4, 10, 16])
def test_map_masked_without_mask_computes_every_row(chunk):
  got = jax.jit(lambda: chunking.map_masked(_fn, N, chunk))()
  _assert_matches(got, _numpy_map_masked(None, chunk))
  np.testing.assert_array_equal(got['doubled'], 2.0 * _X)


@pytest.mark.parametrize('chunk', [1, 3, 4, 10, 16])
@pytest.mark.parametrize('mask_index', range(5))
def test_map_masked_runs_only_the_chunks_covering_the_mask(chunk, mask_index):
  mask = _masks()[mask_index]
  want = _numpy_map_masked(mask, chunk)
  got = chunking.map_masked(_fn, N, chunk, jnp.asarray(mask))
  _assert_matches(got, want)
  jitted = jax.jit(functools.partial(chunking.map_masked, _fn, N, chunk))
  _assert_matches(jitted(jnp.asarray(mask)), want)
  np.testing.assert_array_equal(got['doubled'][mask], 2.0 * _X[mask])
  if not mask.any():
    assert not np.any(got['rows']) and not np.any(got['doubled'])


@pytest.mark.parametrize('chunk', [3, 16])
def test_map_masked_vmaps_over_masks(chunk):
  masks = np.stack(_masks())
  got = jax.jit(jax.vmap(
      lambda m: chunking.map_masked(_fn, N, chunk, m)))(jnp.asarray(masks))
  for i, mask in enumerate(masks):
    _assert_matches(jax.tree.map(lambda a, i=i: a[i], got),
                    _numpy_map_masked(mask, chunk))


def test_entropy_matches_numpy_with_zero_probabilities():
  rng = np.random.default_rng(2)
  probs = rng.dirichlet(np.ones(4), size=(5, 3)).astype(np.float32)
  probs[0, 0] = [1, 0, 0, 0]
  probs[1, :, 2] = 0
  probs /= probs.sum(-1, keepdims=True)
  p = probs.astype(np.float64)
  terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1)), 0)
  np.testing.assert_allclose(information.entropy(probs), terms.sum(-1),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(information.entropy(probs, (-2, -1)),
                             terms.sum((-2, -1)), rtol=1e-6, atol=1e-7)
  assert information.entropy(probs)[0, 0] == 0.0
  assert np.all(np.isfinite(information.entropy(probs)))
