"""CEAL: the threshold schedules, the pseudo-labels against a numpy reference,
and pseudo-labels in the loop (they train, never reach the oracle or the
budget, and a run resumes exactly)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import loop
from jal import rounds
from jal.acquisition import ceal
from tests import resume
from tests.synthetic import make_blobs_dataset


def _numpy_entropy(log_probs):
  """−Σ p log p in float64 of the renormalized softmax, 0·log 0 = 0."""
  logits = np.asarray(log_probs, np.float64)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.array([-sum(q * np.log(q) for q in row if q > 0) for row in p])


def _graded_log_probs(n, num_classes=3, seed=0):
  """[1, n, C] predictions whose entropies span 1e-9 to 1 nat."""
  rng = np.random.default_rng(seed)
  gaps = rng.uniform(1.0, 25.0, n)
  logits = rng.normal(0, 0.3, (n, num_classes))
  winners = rng.integers(0, num_classes, n)
  logits[np.arange(n), winners] += gaps
  return jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))[None]


@pytest.mark.parametrize('decay, t, expected', [
    ('linear', 1, 1e-5 - 0.033e-5),
    ('linear', 3, 1e-5 - 3 * 0.033e-5),
    ('linear', 31, 1e-5 - 31 * 0.033e-5),  # < 0 from t = 31
    ('cumulative', 1, 1e-5 - 0.033e-5),
    ('cumulative', 3, 1e-5 - 6 * 0.033e-5),  # 1 + 2 + 3
    ('cumulative', 7, 1e-5 - 28 * 0.033e-5),
    ('cumulative', 8, 1e-5 - 36 * 0.033e-5),  # < 0 from t = 8
    ('none', 5, 1e-5),
])
def test_threshold_schedules_match_hand_computed_values(decay, t, expected):
  np.testing.assert_allclose(ceal.threshold(t, 1e-5, 0.033e-5, decay),
                             expected, rtol=1e-5)


def test_cumulative_threshold_of_deepalplus_code_turns_negative_at_17():
  deltas = [float(ceal.threshold(t, 5e-5, 0.033e-5, 'cumulative'))
            for t in (16, 17)]
  assert deltas[0] > 0 > deltas[1]


def test_entropy_matches_float64_reference_even_when_confident():
  log_probs = _graded_log_probs(200)[0]
  reference = _numpy_entropy(log_probs)
  assert reference.min() < 1e-8 and reference.max() > 0.5
  entropy = jax.jit(ceal.confident_entropy)
  np.testing.assert_allclose(entropy(log_probs), reference, rtol=1e-4)
  one_hot = jnp.log(jnp.array([[1.0, 0.0, 0.0]]))
  np.testing.assert_array_equal(entropy(one_hot), [0.0])


def _bound(**hparams):
  return acquisition.resolve(acquisition.get('ceal'),
                             {'ceal': hparams})


def test_pseudo_labels_exactly_the_unqueried_unlabeled_points_under_delta():
  n, delta = 80, 1e-3
  log_probs = _graded_log_probs(n, seed=1)
  entropies = _numpy_entropy(log_probs[0])
  # No point so close to δ that float32 rounding could flip it.
  assert np.all(np.abs(np.log(entropies / delta)) > 0.05)
  labeled = np.zeros(n, bool)
  labeled[:20] = True
  strategy, hparams = _bound(base='random', delta=delta, decay='none')
  key = jax.random.key(3)
  state = jax.jit(lambda k, lp, m: strategy.init(k, {'log_probs': lp}, m,
                                                  **hparams))(
                                                      key, log_probs,
                                                      jnp.asarray(labeled))
  selected, state = jax.jit(
      lambda k, lp, m, s: strategy.select(k, {'log_probs': lp}, m, s, 30,
                                          **hparams))(
                                              key, log_probs,
                                              jnp.asarray(labeled), state)
  selected = np.asarray(selected)
  queried = np.zeros(n, bool)
  queried[selected] = True
  confident = entropies < delta
  # The case tests something: confident points among labeled and queried.
  assert (confident & labeled).any() and (confident & queried).any()
  expected = np.where(confident & ~labeled & ~queried,
                      np.asarray(log_probs[0]).argmax(-1), -1)
  np.testing.assert_array_equal(state.pseudo_labels, expected)
  assert (expected >= 0).sum() > 5
  assert int(state.num_queries) == 1
  # Random's selection, unchanged by CEAL (same key).
  random_picks = acquisition.get('random').select(
      key, {}, jnp.asarray(labeled), (), 30)[0]
  np.testing.assert_array_equal(selected, random_picks)


def test_a_negative_threshold_pseudo_labels_nothing():
  # Two one-hot points (entropy exactly 0) and one uncertain, which entropy
  # queries.
  log_probs = jnp.log(jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                                  [0.4, 0.3, 0.3]]]))
  mask = jnp.zeros(3, bool)
  strategy, hparams = _bound(decay='cumulative')
  state = strategy.init(jax.random.key(0), {'log_probs': log_probs}, mask,
                        **hparams)
  # After 0 queries t = 1 (δ > 0); after 7, t = 8 and δ = −0.188e-5.
  select = jax.jit(lambda s: strategy.select(
      jax.random.key(0), {'log_probs': log_probs}, mask, s, 1, **hparams))
  for queries_before, expected in ((0, [0, 1, -1]), (7, [-1, -1, -1])):
    selected, new = select(
        state._replace(num_queries=jnp.int32(queries_before)))
    assert int(selected[0]) == 2
    np.testing.assert_array_equal(new.pseudo_labels, expected)


def test_train_set_adds_pseudo_rows_only_after_a_query():
  labeled = jnp.array([True, False, False, False])
  labels = jnp.array([2, -1, -1, -1])
  rows = rounds.train.TrainSet(labeled, labels)
  template = ceal.CealState(jnp.int32(0), jnp.zeros(4, jnp.int32), ())
  assert np.array_equal(ceal._train_set(template, rows).mask, labeled)  # pylint: disable=protected-access
  state = ceal.CealState(jnp.int32(2), jnp.array([-1, 1, -1, 0]), ())
  extended = ceal._train_set(state, rows)  # pylint: disable=protected-access
  np.testing.assert_array_equal(extended.mask, [True, True, False, True])
  np.testing.assert_array_equal(extended.labels, [2, 1, -1, 0])


def test_base_hparams_and_needs_come_from_the_config():
  hparams = {'ceal': {'base': 'power_bald'}, 'power_bald': {'beta': 3.0}}
  strategy, _ = acquisition.resolve(acquisition.get('ceal'), hparams)
  assert strategy.needs == ('log_probs', 'mc_log_probs')
  assert strategy.select.keywords['base_hparams']['beta'] == 3.0
  with pytest.raises(acquisition.errors.ConfigError, match='ceal.base'):
    acquisition.check_hparams(acquisition.get('ceal'), {'base': 'ceal'})


@pytest.fixture
def ceal_config(tiny_config):
  tiny_config.strategy = 'ceal'
  tiny_config.hparams.ceal.delta = 0.1
  tiny_config.hparams.ceal.decay = 'none'
  return tiny_config


def test_pseudo_labels_train_but_never_reach_oracle_or_budget(ceal_config):
  dataset = make_blobs_dataset(num_pool=120)
  asked = []

  def oracle(indices):
    asked.extend(np.asarray(indices).tolist())
    return dataset.pool_labels[indices]

  exp, data = loop.setup(ceal_config, dataset, pool_labels_known=False)
  state = loop.init_state(exp, data, oracle)
  fns = loop.RoundFns(exp)
  num_pseudo, records = [], []
  for _ in range(ceal_config.num_rounds + 1):
    rows = rounds.train_set(exp, state)
    pseudo = np.asarray(state.strategy_state.pseudo_labels)
    labeled = np.asarray(state.labeled_mask)
    used = pseudo >= 0 if int(state.round) > 0 else np.zeros_like(labeled)
    assert not np.any(used & labeled)
    assert not set(np.flatnonzero(used)) & set(asked)
    assert int(rows.mask.sum()) == labeled.sum() + used.sum()
    num_pseudo.append(int(used.sum()))
    state, record = loop.step(fns, data, state, oracle)
    records.append(record)
  assert num_pseudo[0] == 0 and min(num_pseudo[1:]) > 0, num_pseudo
  assert [r['num_labeled'] for r in records] == [20, 30, 40, 50]
  assert len(asked) == len(set(asked)) == 50


def _records(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return [{k: v for k, v in json.loads(line).items()
             if not k.endswith('_seconds')} for line in f]


def test_ceal_run_resumes_exactly_after_a_crash(ceal_config, tmp_path):
  dataset = make_blobs_dataset(num_pool=120)
  loop.run(ceal_config, str(tmp_path / 'whole'), dataset=dataset)

  resume.run_interrupted(ceal_config, str(tmp_path / 'resumed'),
                         dataset=dataset)
  assert _records(tmp_path / 'resumed') == _records(tmp_path / 'whole')
