"""Stochastic batch acquisition: weights, Gumbel-top-k sampling frequencies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal.acquisition import bayesian
from jal.acquisition import stochastic


def test_log_weights_follow_the_three_formulas():
  scores = jnp.array([0.5, 2.0, 0.0, 1.0])
  labeled = jnp.array([False, False, False, True])
  np.testing.assert_allclose(
      stochastic.log_weights(scores, labeled, 'power', 2.0),
      2.0 * np.log([0.5, 2.0, 1.0, 1.0]) + [0, 0, -np.inf, 0])
  np.testing.assert_allclose(
      stochastic.log_weights(scores, labeled, 'softmax', 3.0),
      3.0 * np.array([0.5, 2.0, 0.0, 1.0]))
  # Ranks among unlabeled points: 2.0 → 1, 0.5 → 2, 0.0 → 3; labeled last.
  np.testing.assert_allclose(
      stochastic.log_weights(scores, labeled, 'softrank', 1.5)[:3],
      -1.5 * np.log([2.0, 1.0, 3.0]), rtol=1e-6)


def test_gumbel_top_1_samples_proportionally_to_weights():
  weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
  labeled = jnp.array([False, False, False, False, True])
  log_w = jnp.log(jnp.asarray(weights))
  draws = jax.vmap(lambda k: stochastic.gumbel_top_k(k, log_w, labeled, 1))(
      jax.random.split(jax.random.key(0), 20000))[:, 0]
  frequencies = np.bincount(np.asarray(draws), minlength=5) / 20000
  np.testing.assert_allclose(frequencies, np.append(weights[:4] / 10, 0),
                             atol=0.015)


def test_gumbel_top_2_matches_sequential_sampling_without_replacement():
  weights = np.array([1.0, 2.0, 3.0])
  labeled = jnp.zeros(3, bool)
  draws = np.asarray(jax.vmap(lambda k: stochastic.gumbel_top_k(
      k, jnp.log(jnp.asarray(weights)), labeled, 2))(
          jax.random.split(jax.random.key(1), 30000)))
  for first in range(3):
    for second in range(3):
      if first == second:
        continue
      expected = (weights[first] / 6) * (
          weights[second] / (6 - weights[first]))
      observed = np.mean((draws[:, 0] == first) & (draws[:, 1] == second))
      assert abs(observed - expected) < 0.015, (first, second)


@pytest.mark.parametrize('name', ['power_bald', 'power_entropy',
                                  'softmax_bald', 'softmax_entropy',
                                  'softrank_bald', 'softrank_entropy'])
def test_strategies_return_distinct_unlabeled_indices(name):
  logits = np.random.default_rng(0).normal(0, 2, (5, 30, 4))
  log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))
  labeled = jnp.arange(30) % 4 == 0
  strategy = acquisition.get(name)
  got = np.asarray(acquisition.query(strategy, jax.random.key(3),
                                   {'mc_log_probs': log_probs}, labeled, 12,
                                   beta=2.0))
  assert len(set(got.tolist())) == 12
  assert not np.asarray(labeled)[got].any()


def test_large_beta_power_bald_approaches_top_k():
  logits = np.random.default_rng(1).normal(0, 2, (5, 40, 4))
  log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))
  labeled = jnp.zeros(40, bool)
  got = acquisition.query(acquisition.get('power_bald'), 
      jax.random.key(0), {'mc_log_probs': log_probs}, labeled, 3, beta=1e4)
  top = np.argsort(-np.asarray(bayesian.bald(log_probs)))[:3]
  np.testing.assert_array_equal(np.sort(got), np.sort(top))
