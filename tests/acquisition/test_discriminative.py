"""Discriminative active learning (DAL): the labeled-vs-unlabeled classifier,
its early stop, the sub-batch partition, and a run through `jal.loop.run`."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import loop
from jal.acquisition import discriminative

# One compiled program per function: only these arguments are static, so the
# tests below share the compilations (hyperparameters that can be traced are
# passed as values).
_select = jax.jit(discriminative.discriminative_select,
                  static_argnames=('query_size', 'sub_batches', 'width',
                                   'batch_size', 'max_epochs', 'chunk_size'))
_fit = jax.jit(discriminative.fit_discriminator,
               static_argnames=('width', 'batch_size'))
_SMALL = dict(width=32, lr=1e-2, batch_size=1024, acc_threshold=0.98,
              class_weighted=True)
_NUM_LABELED, _NUM_SHARED, _NUM_NEW = 100, 100, 60


def _shifted_gaussians(seed=0, shift=8.0):
  """Labeled and unlabeled points of N(0, I) in 2-d, plus unlabeled points of
  N((shift, 0), I), a region only the unlabeled set covers.

  Returns:
    embeddings [260, 2] float32 (labeled, shared-region unlabeled, new-region
    unlabeled, in that order) and the labeled mask [260] bool.
  """
  rng = np.random.default_rng(seed)
  n = _NUM_LABELED + _NUM_SHARED + _NUM_NEW
  x = rng.normal(size=(n, 2))
  x[_NUM_LABELED + _NUM_SHARED:, 0] += shift
  return x.astype(np.float32), np.arange(n) < _NUM_LABELED


def _p_unlabeled(params, x):
  return np.asarray(jax.nn.softmax(
      discriminative.discriminator_logits(params, jnp.asarray(x)))[:, 1])


def test_weighted_loss_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 2)).astype(np.float32)
  targets = np.array([0, 1, 1, 0, 1, 1], np.int32)
  valid = np.array([1, 1, 1, 1, 1, 0], np.float32)
  weights = np.array([3.0, 1.5], np.float32)
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  want = sum(-weights[y] * log_p[i, y] for i, y in enumerate(targets[:5])) / 5
  got = discriminative.weighted_loss(jnp.asarray(logits), jnp.asarray(targets),
                                     jnp.asarray(valid), jnp.asarray(weights))
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_classifier_separates_the_region_only_unlabeled_points_cover():
  x, labeled = _shifted_gaussians()
  fit = _fit(jax.random.key(0), x, labeled, ~labeled, max_epochs=30, **_SMALL)
  p = _p_unlabeled(fit.params, x)
  shared = p[_NUM_LABELED:_NUM_LABELED + _NUM_SHARED]
  new = p[_NUM_LABELED + _NUM_SHARED:]
  assert new.min() > 0.9
  assert new.min() > shared.max()
  assert p[:_NUM_LABELED].mean() < 0.5


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_every_pick_comes_from_the_unlabeled_only_region(seed):
  x, labeled = _shifted_gaussians(seed)
  picks, epochs = _select(jax.random.key(seed), x, labeled, query_size=10,
                          sub_batches=3, max_epochs=30, unlabeled_ratio=10.0,
                          pick_from_subsample=False, **_SMALL)
  assert (np.asarray(picks) >= _NUM_LABELED + _NUM_SHARED).all()
  assert len(set(np.asarray(picks).tolist())) == 10
  assert epochs.shape == (3,)


def test_training_stops_early_once_the_sets_are_separable():
  x, labeled = _shifted_gaussians()
  separable = x.copy()
  separable[_NUM_LABELED:, 0] += 8.0  # every unlabeled point far away
  fit = _fit(jax.random.key(0), separable, labeled, ~labeled, max_epochs=500,
             **_SMALL)
  assert float(fit.accuracy) > 0.98
  assert int(fit.epochs) <= 25
  # Labeled and unlabeled from one distribution: no early stop in 30 epochs.
  same = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
  fit = _fit(jax.random.key(0), same, labeled, ~labeled, max_epochs=30,
             **_SMALL)
  assert int(fit.epochs) == 30
  assert float(fit.accuracy) <= 0.98


@pytest.mark.parametrize('b,s,want', [(100, 20, (5,) * 20),
                                      (10, 3, (4, 3, 3)),
                                      (105, 20, (6,) * 5 + (5,) * 15),
                                      (7, 20, (1,) * 7),
                                      (1, 1, (1,))])
def test_sub_batch_sizes_partition_the_query(b, s, want):
  sizes = discriminative.sub_batch_sizes(b, s)
  assert sizes == want
  assert sum(sizes) == b and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize('num_labeled,from_subsample,ratio',
                         [(100, False, 10.0), (100, True, 0.5),
                          (3, True, 1.0), (0, False, 10.0)])
def test_picks_are_distinct_unlabeled_points(num_labeled, from_subsample,
                                             ratio):
  # Same shapes as above, so no new compilation. With 3 labeled points and
  # ratio 1 the sample (3) is smaller than a sub-batch (4): the rest come from
  # outside it. With none labeled there is nothing to train on.
  x = np.random.default_rng(2).normal(size=(260, 2)).astype(np.float32)
  labeled = np.zeros(260, bool)
  labeled[np.random.default_rng(3).choice(260, num_labeled, replace=False)] = (
      True)
  picks, epochs = _select(jax.random.key(0), x, labeled, query_size=10,
                          sub_batches=3, max_epochs=30, unlabeled_ratio=ratio,
                          pick_from_subsample=from_subsample, **_SMALL)
  picks = np.asarray(picks)
  acquisition.base.check_selection('discriminative', picks, labeled, 10)
  assert len(set(picks.tolist())) == 10 and not labeled[picks].any()
  if num_labeled == 0:
    np.testing.assert_array_equal(epochs[0], 0)


def test_registered_with_ranges_and_defaults():
  strategy = acquisition.get('discriminative')
  assert strategy.needs == ('embeddings',)
  assert set(strategy.ranges) == set(strategy.hparams)
  assert strategy.hparams['sub_batches'] == 20
  assert strategy.hparams['acc_threshold'] == 0.98
  with pytest.raises(acquisition.errors.ConfigError, match='acc_threshold'):
    acquisition.check_hparams(strategy, {'acc_threshold': 1.5})


def test_strategy_runs_in_the_loop(tiny_config, tmp_path):
  tiny_config.strategy = 'discriminative'
  tiny_config.num_epochs = 1
  tiny_config.num_rounds = 2
  tiny_config.hparams.discriminative.update(
      sub_batches=3, width=16, max_epochs=5, lr=1e-2)
  summary = loop.run(tiny_config, str(tmp_path))
  with open(os.path.join(tmp_path, loop.RESULTS)) as f:
    records = [json.loads(line) for line in f]
  chosen = sum((r['selected'] for r in records), [])
  # The loop itself checks each query is distinct and unlabeled.
  assert [r['num_labeled'] for r in records] == [20, 30, 40]
  assert len(set(chosen)) == 20
  assert 0.0 < summary['final_accuracy'] <= 1.0
