"""Uncertainty scores against plain numpy references, and top-k selection."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import errors
from jal.acquisition import uncertainty


def _log_probs(k, n, c, seed=0):
  logits = np.random.default_rng(seed).normal(0, 2, (k, n, c))
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _numpy_scores(log_probs):
  """The formulas of the DeepAL+ catalogue, written out plainly."""
  k, n, _ = log_probs.shape
  p = np.exp(log_probs).mean(axis=0)
  entropy = np.array([-sum(q * np.log(q) for q in row if q > 0) for row in p])
  ordered = np.sort(p, axis=1)[:, ::-1]
  margin = 1 - (ordered[:, 0] - ordered[:, 1])
  least = 1 - ordered[:, 0]
  var_ratio = np.zeros(n)
  for i in range(n):
    votes = np.bincount(log_probs[:, i].argmax(-1), minlength=p.shape[1])
    var_ratio[i] = 1 - votes.max() / k
  return dict(entropy=entropy, margin=margin, least_confidence=least,
              var_ratio=var_ratio)


@pytest.mark.parametrize('k', [1, 5])
@pytest.mark.parametrize('name', ['entropy', 'margin', 'least_confidence',
                                  'var_ratio'])
def test_scores_match_numpy(name, k):
  log_probs = _log_probs(k, 30, 4, seed=k)
  got = getattr(uncertainty, name)(jnp.asarray(log_probs, jnp.float32))
  np.testing.assert_allclose(got, _numpy_scores(log_probs)[name], atol=1e-5)


def test_entropy_handles_zero_probabilities():
  log_probs = jnp.log(jnp.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]]))
  np.testing.assert_allclose(uncertainty.entropy(log_probs),
                             [0.0, np.log(2)], atol=1e-6)


def test_top_k_unlabeled_skips_labeled_and_prefers_low_index_on_ties():
  scores = jnp.array([5.0, 1.0, 5.0, 3.0, jnp.nan, 5.0])
  labeled = jnp.array([True, False, False, False, False, False])
  np.testing.assert_array_equal(
      acquisition.top_k_unlabeled(scores, labeled, 4), [2, 5, 3, 1])


def test_top_k_unlabeled_takes_minus_inf_unlabeled_before_labeled():
  scores = jnp.array([-jnp.inf, 2.0, -jnp.inf])
  labeled = jnp.array([False, True, False])
  assert sorted(acquisition.top_k_unlabeled(scores, labeled, 2).tolist()) == [
      0, 2]


@pytest.mark.parametrize('name', ['entropy', 'margin', 'least_confidence'])
def test_strategy_selects_top_scores(name):
  log_probs = _log_probs(1, 40, 5, seed=3)
  labeled = np.zeros(40, bool)
  labeled[::3] = True
  scores = _numpy_scores(log_probs)[name]
  expected = np.argsort(-np.where(labeled, -np.inf, scores), kind='stable')[:7]
  strategy = acquisition.get(name)
  got = acquisition.query(strategy, jax.random.key(0),
                        {'log_probs': jnp.asarray(log_probs, jnp.float32)},
                        jnp.asarray(labeled), 7)
  np.testing.assert_array_equal(got, expected)


def test_random_selects_distinct_unlabeled_and_depends_on_key():
  labeled = jnp.arange(100) % 2 == 0
  select = jax.jit(functools.partial(acquisition.query, acquisition.get('random')),
                 static_argnums=3)
  a = np.asarray(select(jax.random.key(0), {}, labeled, 20))
  b = np.asarray(select(jax.random.key(1), {}, labeled, 20))
  assert len(set(a)) == 20 and not np.asarray(labeled)[a].any()
  assert set(a) != set(b)


def test_unknown_strategy_lists_valid_names():
  with pytest.raises(errors.UnknownNameError, match='entropy'):
    acquisition.get('entropyy')


def test_var_ratio_deepalplus_is_one_minus_max_p_of_one_pass():
  log_probs = _log_probs(1, 30, 4, seed=3)
  got = uncertainty.var_ratio_deepalplus(jnp.asarray(log_probs, jnp.float32))
  np.testing.assert_allclose(got, 1 - np.exp(log_probs[0]).max(-1),
                             atol=1e-6)
  strategy = acquisition.get('var_ratio_deepalplus')
  assert strategy.needs == ('log_probs',)
  picks = acquisition.query(strategy, jax.random.key(0),
                            {'log_probs': jnp.asarray(log_probs, jnp.float32)},
                            jnp.zeros(30, bool), 5)
  np.testing.assert_array_equal(
      picks, np.argsort(np.exp(log_probs[0]).max(-1), kind='stable')[:5])


def test_var_ratio_deepalplus_differs_from_freemans():
  # Point 0: every pass votes class 0 but with p = 0.4 (Freeman: 0, DeepAL+:
  # 0.6). Point 1: confident passes split 2 against 1 (Freeman: 1/3).
  passes = np.array([[[0.4, 0.3, 0.3], [0.9, 0.05, 0.05]],
                     [[0.4, 0.3, 0.3], [0.9, 0.05, 0.05]],
                     [[0.4, 0.3, 0.3], [0.05, 0.9, 0.05]]])
  log_probs = jnp.asarray(np.log(passes), jnp.float32)
  np.testing.assert_allclose(uncertainty.var_ratio(log_probs), [0.0, 1 / 3],
                             atol=1e-6)
  np.testing.assert_allclose(
      uncertainty.var_ratio_deepalplus(log_probs[:1]), [0.6, 0.1], atol=1e-6)
  mask = jnp.zeros(2, bool)
  assert int(acquisition.query(acquisition.get('var_ratio'),
                               jax.random.key(0), {'mc_log_probs': log_probs},
                               mask, 1)[0]) == 1
  assert int(acquisition.query(acquisition.get('var_ratio_deepalplus'),
                               jax.random.key(0),
                               {'log_probs': log_probs[:1]}, mask, 1)[0]) == 0
