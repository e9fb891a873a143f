"""A round's query on a random subsample of the pool (`config.pool_subsample`)."""

import json
import os

import jax
import numpy as np
import pytest

from jal import config as config_lib
from jal import errors
from jal import loop
from jal import rounds


def _round_zero(config):
  dataset = loop.load_dataset(config)
  exp, data = loop.setup(config, dataset)
  oracle = loop.simulated_oracle(config, dataset.pool_labels,
                                 dataset.num_classes)
  state = loop.reveal_initial(loop.init_state(exp, data, None), oracle)
  return exp, data, state, rounds.train_round(exp, data, state)


def test_subsample_query_picks_the_best_of_the_drawn_points(tiny_config):
  tiny_config.pool_subsample = 60
  exp, data, state, trained = _round_zero(tiny_config)
  excluded = np.asarray(rounds.query_mask(exp, state))
  labeled = np.asarray(state.labeled_mask)
  candidates = ~excluded
  assert candidates.sum() == 60 and not (candidates & labeled).any()

  selected, _ = rounds.query_round(exp, data, trained, state)
  # Reference: entropy of every pool point, the best 10 of the candidates.
  log_probs = np.asarray(rounds.predictions(
      exp, jax.random.key(0), trained, data.pool_images,
      jax.numpy.zeros_like(state.labeled_mask), ('log_probs',))['log_probs'][0],
      np.float64)
  entropy = -(np.exp(log_probs) * log_probs).sum(-1)
  best = np.flatnonzero(candidates)[np.argsort(-entropy[candidates],
                                               kind='stable')[:10]]
  np.testing.assert_array_equal(np.sort(np.asarray(selected)), np.sort(best))


def test_subsample_is_uniform_over_unlabeled_points():
  labeled = np.zeros(40, bool)
  labeled[:10] = True
  draw = jax.jit(jax.vmap(
      lambda k: rounds.subsample_candidates(k, jax.numpy.asarray(labeled), 6)))
  counts = np.asarray(draw(jax.random.split(jax.random.key(0), 3000))).sum(0)
  assert counts[:10].sum() == 0
  # Each of the 30 unlabeled points: 3000 * 6 / 30 = 600 expected draws;
  # the binomial std is about 22, so 5 std is 110.
  assert np.all(np.abs(counts[10:] - 600) < 110)


def test_subsample_takes_every_point_when_fewer_remain():
  labeled = np.ones(12, bool)
  labeled[[3, 7]] = False
  chosen = rounds.subsample_candidates(jax.random.key(1),
                                       jax.numpy.asarray(labeled), 5)
  np.testing.assert_array_equal(np.flatnonzero(np.asarray(chosen)), [3, 7])


def test_subsample_changes_every_round_and_run_is_reproducible(tiny_config,
                                                                tmp_path):
  tiny_config.pool_subsample = 40
  tiny_config.strategy = 'margin'
  loop.run(tiny_config, str(tmp_path / 'a'))
  loop.run(tiny_config, str(tmp_path / 'b'))
  records = []
  for name in 'ab':
    with open(tmp_path / name / loop.RESULTS) as f:
      records.append([json.loads(line)['selected'] for line in f])
  assert records[0] == records[1]
  assert len({tuple(s) for s in records[0][:-1]}) == len(records[0]) - 1


@pytest.mark.parametrize('change, message', [
    (dict(pool_subsample=5), 'smaller than config.query_size'),
    (dict(pool_subsample=-1), 'integer >= 0'),
    (dict(pool_subsample=100, strategy='kcenter'), 'embeddings'),
])
def test_bad_subsample_is_refused(tiny_config, change, message):
  tiny_config.update(change)
  with pytest.raises(errors.ConfigError, match=message):
    config_lib.validate(tiny_config)
