"""BALD, mean-std and the MC-dropout scores against plain numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal.acquisition import bayesian


def _log_probs(k, n, c, seed=0):
  logits = np.random.default_rng(seed).normal(0, 2, (k, n, c))
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _numpy_bald(log_probs):
  p = np.exp(log_probs)
  mean = p.mean(0)
  entropy_of_mean = -(mean * np.log(mean)).sum(-1)
  mean_entropy = np.mean([-(q * np.log(q)).sum(-1) for q in p], axis=0)
  return entropy_of_mean - mean_entropy


def _numpy_mean_std(log_probs):
  p = np.exp(log_probs)
  k = p.shape[0]
  mean = p.sum(0) / k
  std = np.sqrt(((p - mean)**2).sum(0) / k)
  return std.mean(-1)


@pytest.mark.parametrize('k', [1, 7])
def test_bald_matches_numpy_and_is_nonnegative(k):
  log_probs = _log_probs(k, 40, 5, seed=k)
  got = bayesian.bald(jnp.asarray(log_probs, jnp.float32))
  np.testing.assert_allclose(got, _numpy_bald(log_probs), atol=1e-5)
  assert np.all(np.asarray(got) > -1e-5)


def test_bald_is_zero_when_passes_agree():
  log_probs = np.repeat(_log_probs(1, 20, 4), 6, axis=0)
  np.testing.assert_allclose(bayesian.bald(jnp.asarray(log_probs)), 0,
                             atol=1e-5)


@pytest.mark.parametrize('k', [1, 6])
def test_mean_std_matches_numpy(k):
  log_probs = _log_probs(k, 40, 5, seed=10 + k)
  np.testing.assert_allclose(
      bayesian.mean_std(jnp.asarray(log_probs, jnp.float32)),
      _numpy_mean_std(log_probs), atol=1e-6)


def test_zero_rows_of_labeled_points_give_finite_scores():
  log_probs = _log_probs(5, 10, 3)
  log_probs[:, :4] = 0.0  # uncomputed labeled rows
  for score in (bayesian.bald, bayesian.mean_std):
    assert np.all(np.isfinite(score(jnp.asarray(log_probs, jnp.float32))))


@pytest.mark.parametrize('name,reference', [
    ('bald', _numpy_bald), ('mean_std', _numpy_mean_std),
    ('entropy_dropout',
     lambda lp: -(np.exp(lp).mean(0) * np.log(np.exp(lp).mean(0))).sum(-1)),
    ('margin_dropout',
     lambda lp: 1 - np.diff(np.sort(np.exp(lp).mean(0), -1)[:, -2:], axis=-1
                            )[:, 0]),
    ('least_confidence_dropout', lambda lp: 1 - np.exp(lp).mean(0).max(-1)),
])
def test_strategies_pick_top_scores_on_mc_passes(name, reference):
  log_probs = _log_probs(6, 50, 4, seed=3)
  labeled = np.zeros(50, bool)
  labeled[::3] = True
  strategy = acquisition.get(name)
  assert strategy.needs == ('mc_log_probs',)
  got = acquisition.query(strategy, jax.random.key(0),
                        {'mc_log_probs': jnp.asarray(log_probs, jnp.float32)},
                        jnp.asarray(labeled), 5)
  scores = np.where(labeled, -np.inf, reference(log_probs))
  np.testing.assert_array_equal(np.sort(got), np.sort(np.argsort(-scores)[:5]))
