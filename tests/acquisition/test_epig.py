"""EPIG against a plain numpy reference; targets come from unlabeled points."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal.acquisition import epig


def _log_probs(k, n, c, seed=0):
  logits = np.random.default_rng(seed).normal(0, 2, (k, n, c))
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _numpy_epig(log_probs, target_log_probs):
  p, q = np.exp(log_probs), np.exp(target_log_probs)
  k, n, c = p.shape
  scores = np.zeros(n)
  for i in range(n):
    total = 0.0
    for m in range(q.shape[1]):
      for y, y_star in itertools.product(range(c), range(q.shape[2])):
        joint = np.mean(p[:, i, y] * q[:, m, y_star])
        marginal = np.mean(p[:, i, y]) * np.mean(q[:, m, y_star])
        total += joint * np.log(joint / marginal)
    scores[i] = total / q.shape[1]
  return scores


@pytest.mark.parametrize('k,c,chunk_size', [(1, 3, 4), (6, 3, 4), (5, 4, 100)])
def test_epig_matches_numpy(k, c, chunk_size):
  log_probs = _log_probs(k, 11, c, seed=k)
  targets = _log_probs(k, 5, c, seed=k + 100)
  got = epig.epig_scores(jnp.asarray(log_probs, jnp.float32),
                         jnp.asarray(targets, jnp.float32),
                         chunk_size=chunk_size)
  np.testing.assert_allclose(got, _numpy_epig(log_probs, targets), atol=1e-5)
  if k == 1:
    np.testing.assert_allclose(got, 0, atol=1e-5)


def test_targets_are_unlabeled():
  labeled = jnp.arange(50) % 5 != 0
  targets = np.asarray(epig.sample_targets(jax.random.key(0), labeled, 200))
  assert not np.asarray(labeled)[targets].any()
  assert len(set(targets.tolist())) == 10


def test_select_ignores_zero_rows_of_labeled_points():
  log_probs = _log_probs(4, 30, 3)
  labeled = np.zeros(30, bool)
  labeled[:10] = True
  log_probs[:, :10] = 0.0
  got = acquisition.query(acquisition.get('epig'), 
      jax.random.key(0), {'mc_log_probs': jnp.asarray(log_probs, jnp.float32)},
      jnp.asarray(labeled), 5, num_targets=40)
  assert len(set(np.asarray(got).tolist())) == 5
  assert np.all(np.asarray(got) >= 10)


def test_epig_joint_uses_one_dropout_function_for_pool_and_targets():
  """Consistent MC dropout: a target that copies a candidate gets the very
  passes of the candidate, so I[y; y*] is the copy's self-information."""
  from jal import config as config_lib
  from jal import models
  from jal import posterior
  model = models.get('mlp', 3, 0.5)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  images = jax.random.normal(jax.random.key(1), (6, 4, 4, 1))
  pool = jnp.concatenate([images, images])  # row i + 6 copies row i
  config = config_lib.default()
  config.posterior_samples = 8
  config.eval_chunk = 4
  log_probs = posterior.get('mc_dropout', model, (4, 4, 1), config).sample(
      jax.random.key(2), variables, pool, None, None)
  got = epig.epig_scores(log_probs[:, :6], log_probs[:, 6:7])
  p = np.exp(np.asarray(log_probs[:, 0], np.float64))  # [K, C], point 0
  joint = np.einsum('kc,kd->cd', p, p) / p.shape[0]
  marginal = p.mean(0)
  entropy = lambda q: -np.sum(q * np.log(q))
  np.testing.assert_allclose(got[0], 2 * entropy(marginal) - entropy(joint),
                             rtol=1e-4)
