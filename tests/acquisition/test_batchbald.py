"""BatchBALD against brute-force enumeration of the joint mutual information."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import errors
from jal.acquisition import batchbald
from jal.acquisition import bayesian


def _log_probs(k, n, c, seed=0):
  logits = np.random.default_rng(seed).normal(0, 2, (k, n, c))
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _joint_mutual_information(log_probs, indices):
  """I[y_indices; ω] by enumerating every label configuration."""
  p = np.exp(log_probs.astype(np.float64))
  k, _, c = p.shape
  joint_entropy = 0.0
  for config in itertools.product(range(c), repeat=len(indices)):
    per_pass = np.ones(k)
    for i, y in zip(indices, config):
      per_pass *= p[:, i, y]
    prob = per_pass.mean()
    if prob > 0:
      joint_entropy -= prob * np.log(prob)
  conditional = sum(-np.mean(np.sum(p[:, i] * np.log(p[:, i]), -1))
                    for i in indices)
  return joint_entropy - conditional


def _joint_mutual_information_float64(log_probs, indices):
  """The same quantity, every configuration at once, in float64."""
  p = np.exp(log_probs.astype(np.float64))
  k = p.shape[0]
  per_pass = np.ones((k, 1))
  for i in indices:
    per_pass = (per_pass[:, :, None] * p[:, i, None, :]).reshape(k, -1)
  prob = per_pass.mean(0)
  prob = prob[prob > 0]
  conditional = sum(-np.mean(np.sum(p[:, i] * np.log(p[:, i]), -1))
                    for i in indices)
  return -np.sum(prob * np.log(prob)) - conditional


@pytest.mark.parametrize('scale', [1.0, 3.0])
def test_joint_information_stays_within_1e6_nats_up_to_1e5_configurations(
    scale):
  """C = 10, five points: the last step scores 10^4 × 10 configurations.

  A sequential float32 sum of the joint entropy's terms was 6e-5 nats off
  here, more than the gap between the best candidates can be.
  """
  logits = np.random.default_rng(7).normal(0, scale, (20, 40, 10))
  log_probs = np.asarray(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32)))
  indices, infos = batchbald.batchbald(
      jax.random.key(0), jnp.asarray(log_probs), jnp.zeros(40, bool), 5,
      num_samples=10**5)
  indices = list(np.asarray(indices))
  expected = [_joint_mutual_information_float64(log_probs, indices[:i + 1])
              for i in range(5)]
  np.testing.assert_allclose(infos, expected, rtol=0, atol=1e-6)


def _brute_force_greedy(log_probs, labeled, query_size):
  chosen, infos = [], []
  for _ in range(query_size):
    candidates = [i for i in range(log_probs.shape[1])
                  if not labeled[i] and i not in chosen]
    infos_now = [_joint_mutual_information(log_probs, chosen + [i])
                 for i in candidates]
    chosen.append(candidates[int(np.argmax(infos_now))])
    infos.append(max(infos_now))
  return chosen, infos


@pytest.mark.parametrize('k,c,query_size', [(8, 2, 3), (5, 3, 3), (8, 4, 3),
                                            (3, 4, 2)])
def test_exact_greedy_matches_brute_force(k, c, query_size):
  log_probs = _log_probs(k, 12, c, seed=k * 10 + c)
  labeled = np.zeros(12, bool)
  labeled[[1, 6]] = True
  expected_indices, expected_infos = _brute_force_greedy(log_probs, labeled,
                                                         query_size)
  indices, infos = batchbald.batchbald(
      jax.random.key(0), jnp.asarray(log_probs, jnp.float32),
      jnp.asarray(labeled), query_size, num_samples=10000, chunk_elements=16)
  np.testing.assert_array_equal(indices, expected_indices)
  np.testing.assert_allclose(infos, expected_infos, atol=1e-5)
  np.testing.assert_allclose(
      infos[-1], _joint_mutual_information(log_probs, list(
          np.asarray(indices))), atol=1e-5)


def test_first_pick_is_balds():
  log_probs = _log_probs(6, 40, 5, seed=3)
  labeled = np.zeros(40, bool)
  labeled[::7] = True
  indices, infos = batchbald.batchbald(
      jax.random.key(0), jnp.asarray(log_probs, jnp.float32),
      jnp.asarray(labeled), 4)
  bald = np.where(labeled, -np.inf, np.asarray(
      bayesian.bald(jnp.asarray(log_probs, jnp.float32))))
  assert indices[0] == np.argmax(bald)
  np.testing.assert_allclose(infos[0], bald.max(), atol=1e-5)


def test_one_pass_gives_zero_information():
  log_probs = _log_probs(1, 20, 3, seed=1)
  indices, infos = batchbald.batchbald(
      jax.random.key(0), jnp.asarray(log_probs, jnp.float32),
      jnp.zeros(20, bool), 4, num_samples=1000)
  np.testing.assert_allclose(infos, 0.0, atol=1e-5)
  assert len(set(np.asarray(indices).tolist())) == 4


def test_ties_go_to_the_lowest_unlabeled_index():
  log_probs = np.repeat(_log_probs(4, 1, 3, seed=2), 10, axis=1)
  labeled = np.zeros(10, bool)
  labeled[[0, 2]] = True
  indices, _ = batchbald.batchbald(
      jax.random.key(0), jnp.asarray(log_probs, jnp.float32),
      jnp.asarray(labeled), 1)
  assert int(indices[0]) == 1


def test_sampled_joint_entropy_estimates_the_exact_one():
  """Past the exact phase, sampled configurations estimate the same score."""
  log_probs = jnp.asarray(_log_probs(4, 10, 3, seed=5), jnp.float32)
  chosen = jnp.array([0, 1, 2, 0], jnp.int32)
  available = jnp.arange(10) >= 3
  cond = batchbald.conditional_entropy(log_probs)
  exact_joint = jnp.zeros((4, 1))
  for i in range(3):
    exact_joint = (exact_joint[:, :, None] +
                   log_probs[:, i, None, :]).reshape(4, -1)
  exact = batchbald._candidate_scores(exact_joint, True, log_probs, cond,
                                      available, 2**20)
  sampled_joint = batchbald._sampled_log_joint(jax.random.key(0), log_probs,
                                               chosen, 3, 200000)
  sampled = batchbald._candidate_scores(sampled_joint, False, log_probs, cond,
                                        available, 2**20)
  np.testing.assert_allclose(sampled[3:], exact[3:], atol=0.02)
  assert np.all(np.isneginf(np.asarray(sampled[:3])))


def test_sampled_phase_returns_distinct_unlabeled_points():
  log_probs = _log_probs(5, 30, 3, seed=4)
  labeled = np.zeros(30, bool)
  labeled[:20] = True
  log_probs[:, :20] = 0.0  # uncomputed rows of labeled points
  indices, infos = batchbald.batchbald(
      jax.random.key(0), jnp.asarray(log_probs, jnp.float32),
      jnp.asarray(labeled), 6, num_samples=10)
  assert sorted(np.asarray(indices).tolist()) == sorted(set(
      np.asarray(indices).tolist()))
  assert np.all(np.asarray(indices) >= 20)
  assert np.all(np.isfinite(infos))


def test_query_larger_than_unlabeled_pool_is_an_error():
  log_probs = jnp.asarray(_log_probs(3, 5, 2), jnp.float32)
  labeled = jnp.array([True, True, False, False, False])
  with pytest.raises(errors.ConfigError, match='only 3 pool points'):
    acquisition.query(acquisition.get('batchbald'), 
        jax.random.key(0), {'mc_log_probs': log_probs}, labeled, 4)


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('num_samples', [10**6, 50])
def test_batchbald_never_picks_two_copies_of_one_point(seed, num_samples):
  """Repeated data (Kirsch et al. 2019). With consistent MC dropout a copy
  has its original's passes; when each pass is (nearly) sure of its label, a
  copy of a chosen point adds (nearly) no information, while the other
  candidates still do (1000 passes: the batch's 4 labels, at most 5.5 nats,
  cannot exhaust log 1000 = 6.9 nats). Exact joint entropies, then sampled
  configurations from the fourth pick."""
  rng = np.random.default_rng(seed)
  base, num_passes, num_classes, batch = 30, 1000, 4, 4
  logits = 25.0 * rng.normal(size=(num_passes, base, num_classes))
  log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))
  pool = jnp.concatenate([log_probs] * 3, axis=1)  # point i + 30 copies i
  chosen, info = batchbald.batchbald(jax.random.key(0), pool,
                                     jnp.zeros((3 * base,), bool), batch,
                                     num_samples=num_samples)
  assert len(set((np.asarray(chosen) % base).tolist())) == batch
  assert np.all(np.diff(np.asarray(info)) > 1.0)  # each pick adds > 1 nat
  # Top-b BALD, by contrast, takes copies of its best points.
  bald = np.asarray(bayesian.bald(pool))
  top = np.argsort(-bald, kind='stable')[:batch] % base
  assert len(set(top.tolist())) < batch
