"""Hostile inputs to the acquisition side (issue 14, classes 4 and 8).

Class 4: strategy hyperparameter values out of their declared range are
refused by name before any work. Class 8: the public primitives check their
preconditions when called directly, outside the loop.
"""

import functools
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jal import acquisition
from jal import cluster
from jal import config as config_lib
from jal import errors
from jal import loop
from jal.acquisition import badge
from jal.acquisition import base
from jal.acquisition import batchbald
from jal.acquisition import bayesian
from jal.acquisition import cluster_margin
from jal.acquisition import coldstart
from jal.acquisition import epig
from jal.acquisition import kcenter
from jal.acquisition import kmeans
from jal.acquisition import stochastic
from jal.acquisition import uncertainty

N, C, D = 6, 3, 4
KEY = jax.random.key(0)


def _log_probs(k=2, n=N, c=C, seed=0):
  logits = np.random.default_rng(seed).normal(size=(k, n, c))
  return jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))


def _points(n=N, d=D, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(n, d)),
                     jnp.float32)


def _mask(*labeled, n=N):
  return jnp.zeros((n,), bool).at[jnp.asarray(labeled, jnp.int32)].set(True)


def _inputs(n=N):
  return {'log_probs': _log_probs(1, n), 'mc_log_probs': _log_probs(3, n),
          'embeddings': _points(n)}


# Class 4: hyperparameter values.


def test_every_strategy_declares_a_range_for_every_hyperparameter():
  for name in acquisition.names():
    strategy = acquisition.get(name)
    assert set(strategy.ranges) == set(strategy.hparams), name
    for hparam, default in strategy.hparams.items():
      assert strategy.ranges[hparam].contains(default), (name, hparam)
      assert strategy.ranges[hparam].description


BAD_HPARAMS = [
    ('power_bald', 'beta', -2.0, r'power_bald\.beta must be a finite number '
     r'>= 0, got -2\.0'),
    ('power_bald', 'beta', math.nan, r'power_bald\.beta .* got nan'),
    ('power_entropy', 'beta', math.inf, r'power_entropy\.beta .* got inf'),
    ('softmax_bald', 'beta', -math.inf, r'softmax_bald\.beta .* got -inf'),
    ('softrank_entropy', 'beta', -0.5, r'softrank_entropy\.beta'),
    ('power_bald', 'beta', 'two', r'power_bald\.beta must be of the type'),
    ('epig', 'num_targets', 0, r'epig\.num_targets must be an integer >= 1, '
     'got 0'),
    ('epig', 'chunk_size', -3, r'epig\.chunk_size must be an integer >= 1'),
    ('probcover', 'radius', -1.0, r'probcover\.radius must be None .* or a '
     r'finite number > 0, got -1\.0'),
    ('probcover', 'radius', math.nan, r'probcover\.radius .* got nan'),
    ('probcover', 'purity', 0.0, r'probcover\.purity must be a finite number '
     r'in \(0, 1\], got 0\.0'),
    ('probcover', 'purity', 1.5, r'probcover\.purity .* got 1\.5'),
    ('probcover', 'num_classes', 0, r'probcover\.num_classes'),
    ('batchbald', 'num_samples', 0, r'batchbald\.num_samples must be an '
     'integer >= 1, got 0'),
    ('batchbald', 'num_samples', True, r'batchbald\.num_samples .* got True'),
    ('batchbald', 'chunk_elements', 0, r'batchbald\.chunk_elements'),
    ('dbal', 'beta', 0, r'dbal\.beta must be an integer >= 1, got 0'),
    ('dbal', 'num_iters', -1, r'dbal\.num_iters must be an integer >= 0'),
    ('kmeans', 'chunk_size', 0, r'kmeans\.chunk_size'),
    ('typiclust', 'max_clusters', 0, r'typiclust\.max_clusters must be an '
     'integer >= 1'),
    ('typiclust', 'num_neighbours', -1, r'typiclust\.num_neighbours'),
    ('kcenter', 'pca_dim', -1, r'kcenter\.pca_dim must be an integer >= 0'),
    ('cluster_margin', 'distance_threshold', -0.5,
     r'cluster_margin\.distance_threshold must be None \(no threshold\) or'),
    ('cluster_margin', 'num_clusters', 0, r'cluster_margin\.num_clusters'),
    ('cluster_margin', 'margin_multiple', 0,
     r'cluster_margin\.margin_multiple'),
]


@pytest.mark.parametrize('strategy, name, value, message', BAD_HPARAMS)
def test_bad_hyperparameter_value_is_refused(strategy, name, value, message):
  with pytest.raises(errors.ConfigError, match=f'config.hparams.{message}'):
    acquisition.check_hparams(acquisition.get(strategy), {name: value})


@pytest.mark.parametrize('strategy, name, value, message', [
    ('power_bald', 'beta', -2.0, r'power_bald\.beta'),
    ('dbal', 'beta', 0, r'dbal\.beta'),
    ('epig', 'num_targets', 0, r'epig\.num_targets'),
])
def test_query_refuses_a_bad_hyperparameter_before_selecting(
    strategy, name, value, message):
  with pytest.raises(errors.ConfigError, match=message):
    acquisition.query(acquisition.get(strategy), KEY, _inputs(), _mask(0), 2,
                      **{name: value})


@pytest.mark.parametrize('strategy, name, value, message', [
    ('power_bald', 'beta', math.nan, r'config\.hparams\.power_bald\.beta'),
    ('typiclust', 'max_clusters', 0,
     r'config\.hparams\.typiclust\.max_clusters'),
])
def test_bad_hyperparameter_value_fails_before_any_work(
    tiny_config, tmp_path, strategy, name, value, message):
  tiny_config.strategy = strategy
  tiny_config.hparams[strategy] = ml_collections.ConfigDict({name: value})
  with pytest.raises(errors.ConfigError, match=message):
    loop.run(tiny_config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w' / loop.CONFIG)


@pytest.mark.parametrize('strategy', ['bald', 'batchbald', 'power_bald',
                                      'epig', 'var_ratio'])
def test_mc_dropout_without_dropout_is_refused(strategy):
  config = config_lib.default()
  config.strategy, config.dropout_rate = strategy, 0.0
  with pytest.raises(errors.ConfigError,
                     match=r'config\.dropout_rate > 0 or choose another '
                     r'config\.posterior'):
    config_lib.validate(config)


@pytest.mark.parametrize('strategy, posterior', [('entropy', 'mc_dropout'),
                                                 ('bald', 'ensemble')])
def test_zero_dropout_is_fine_where_no_mc_dropout_passes_are_used(
    strategy, posterior):
  config = config_lib.default()
  config.strategy, config.posterior, config.dropout_rate = (strategy,
                                                            posterior, 0.0)
  config_lib.validate(config)


# Class 8: `acquisition.query`.


@pytest.mark.parametrize('strategy', ['entropy', 'random', 'kcenter',
                                      'kmeans', 'badge', 'batchbald',
                                      'power_bald'])
@pytest.mark.parametrize('labeled, query_size', [((0, 1, 2), 4),
                                                 (tuple(range(N)), 1)])
def test_query_refuses_more_points_than_are_unlabeled(strategy, labeled,
                                                      query_size):
  with pytest.raises(errors.ConfigError,
                     match=f'query_size = {query_size}, but only '
                     f'{N - len(labeled)} pool points are unlabeled'):
    acquisition.query(acquisition.get(strategy), KEY, _inputs(),
                      _mask(*labeled), query_size)


@pytest.mark.parametrize('strategy', ['entropy', 'kcenter', 'kmeans'])
def test_query_takes_numpy_arrays(strategy):
  inputs = {name: np.asarray(value) for name, value in _inputs().items()}
  mask = np.asarray(_mask(0, 1))
  picks = acquisition.query(acquisition.get(strategy), KEY, inputs, mask, 3)
  assert len(set(np.asarray(picks).tolist())) == 3
  assert not mask[np.asarray(picks)].any()


def _bad_query(**changes):
  args = dict(strategy='entropy', inputs=_inputs(), labeled_mask=_mask(0),
              query_size=2)
  args.update(changes)
  return args


BAD_QUERIES = [
    (_bad_query(query_size=0), 'query_size must be an integer >= 1, got 0'),
    (_bad_query(query_size=-1), 'query_size must be an integer >= 1'),
    (_bad_query(query_size=2.0), r'query_size .* got 2\.0'),
    (_bad_query(query_size=True), 'query_size .* got True'),
    (_bad_query(labeled_mask=jnp.zeros((2, 3), bool)),
     r'labeled_mask must be a 1-D \[N\] bool mask, got shape \(2, 3\)'),
    (_bad_query(labeled_mask=jnp.zeros((N,), jnp.int32)),
     'labeled_mask must be a bool mask, got dtype int32'),
    (_bad_query(labeled_mask=_mask(0, n=N + 1)),
     r"inputs\['log_probs'\] has 6 points .* but the pool has N = 7"),
    (_bad_query(inputs={'log_probs': _log_probs(1)[0]}),
     r"inputs\['log_probs'\] must be \[K, N, C\] \(rank 3\), got an array "
     r'of shape \(6, 3\)'),
    (_bad_query(inputs={'log_probs': _log_probs(1).at[0, 3, 1].set(jnp.nan)}),
     r"inputs\['log_probs'\] holds 1 NaN or \+inf"),
    (_bad_query(inputs={'log_probs': _log_probs(1) + 1.0}),
     r"inputs\['log_probs'\] must be log-probabilities"),
    (_bad_query(inputs={'log_probs': jnp.zeros((1, N, 1))}),
     r"inputs\['log_probs'\] must have at least 2 classes"),
    (_bad_query(inputs={'log_probs': jnp.zeros((1, N, C), jnp.int32)}),
     r"inputs\['log_probs'\] must hold floats"),
    (_bad_query(strategy='bald', inputs={'log_probs': _log_probs(3)}),
     r"inputs lacks 'mc_log_probs', which strategy 'bald' needs"),
    (_bad_query(inputs=[_log_probs(1)]), 'inputs must be a dict'),
    (_bad_query(strategy='kcenter',
                inputs={'embeddings': _points().at[2, 1].set(jnp.inf)}),
     r"inputs\['embeddings'\] holds 1 NaN or inf"),
    (_bad_query(strategy='kcenter', inputs={'embeddings': _points(N + 1)}),
     r"inputs\['embeddings'\] has 7 rows, expected 6"),
    (_bad_query(strategy='kcenter', inputs={'embeddings': _points()[:, 0]}),
     r"inputs\['embeddings'\] must be \[N, D\] \(rank 2\)"),
    (_bad_query(strategy='badge',
                inputs={'log_probs': _log_probs(1), 'embeddings': _points(),
                        'mc_log_probs': None}) | {'query_size': 2},
     None),  # a valid call: extra inputs are ignored
]


@pytest.mark.parametrize('args, message', BAD_QUERIES)
def test_query_checks_its_arguments(args, message):
  strategy = acquisition.get(args.pop('strategy'))
  if message is None:
    acquisition.query(strategy, KEY, **args)
    return
  with pytest.raises(errors.ConfigError, match=message):
    acquisition.query(strategy, KEY, **args)


def test_query_checks_pca_dim_against_the_embeddings():
  with pytest.raises(errors.ConfigError,
                     match=r'config\.hparams\.kcenter\.pca_dim must be an '
                     r'integer in \[0, 4\]'):
    acquisition.query(acquisition.get('kcenter'), KEY, _inputs(), _mask(0), 2,
                      pca_dim=9)


def test_shape_checks_also_run_under_jit():
  select = jax.jit(functools.partial(acquisition.query,
                                     acquisition.get('entropy')),
                   static_argnums=3)
  with pytest.raises(errors.ConfigError, match=r'must be \[K, N, C\]'):
    select(KEY, {'log_probs': _log_probs(1)[0]}, _mask(0), 2)
  # Values are not read under jit: the valid call compiles and runs.
  assert select(KEY, _inputs(), _mask(0), 2).shape == (2,)


@pytest.mark.parametrize('picks, message', [
    ([1, 1], 'selected repeated indices'),
    ([0, 1], r'selected labeled points \[0\]'),
    ([1, N], r'selected indices outside \[0, 6\)'),
    ([1, 2, 3], r'returned indices of shape \(3,\), expected \(2,\)'),
])
def test_query_checks_the_selection(picks, message):
  strategy = base.stateless(
      'broken', (), lambda key, inputs, mask, b: jnp.asarray(picks))
  with pytest.raises(errors.ConfigError, match=f"'broken' {message}"):
    acquisition.query(strategy, KEY, {}, _mask(0), 2)


# Class 8: primitives called directly.


def _raises(message, fn, *args, **kwargs):
  with pytest.raises(errors.ConfigError, match=message):
    fn(*args, **kwargs)


SCORE_FUNCTIONS = [uncertainty.entropy, uncertainty.margin,
                   uncertainty.least_confidence, uncertainty.var_ratio,
                   bayesian.bald, bayesian.mean_std,
                   batchbald.conditional_entropy]


@pytest.mark.parametrize('score', SCORE_FUNCTIONS,
                         ids=lambda f: f.__name__)
def test_scores_refuse_log_probs_of_the_wrong_rank(score):
  _raises(r'log_probs must be \[K, N, C\] .*got an array of shape \(6, 3\)',
          score, _log_probs(1)[0])
  _raises(r'log_probs must be \[K, N, C\]', score, _log_probs(1)[None])


PRIMITIVE_CASES = [
    # top_k_unlabeled / stochastic / epig
    (base.top_k_unlabeled, (jnp.ones(N), _mask(0, 1, 2), 4),
     'query_size = 4, but only 3 pool points are unlabeled'),
    (base.top_k_unlabeled, (jnp.ones(N), _mask(*range(N)), 1), 'only 0'),
    (base.top_k_unlabeled, (jnp.ones((N, 1)), _mask(0), 1),
     r'scores must be \[N\]'),
    (base.top_k_unlabeled, (jnp.ones(N), _mask(0, n=N + 1), 1),
     'labeled_mask has length 7, expected 6'),
    (stochastic.log_weights, (jnp.ones(N), _mask(0), 'power', -1.0),
     'beta must be >= 0, got -1.0'),
    (stochastic.log_weights, (jnp.ones(N), _mask(0), 'power', math.nan),
     'beta must be finite, got nan'),
    (stochastic.log_weights, (jnp.ones(N), _mask(0), 'tempered', 1.0),
     "Unknown mode 'tempered'"),
    (stochastic.gumbel_top_k, (KEY, jnp.zeros(N), _mask(0), N),
     'query_size = 6, but only 5'),
    (epig.sample_targets, (KEY, _mask(*range(N)), 10),
     'labeled_mask marks every pool point labeled'),
    (epig.sample_targets, (KEY, _mask(0), 0), 'num_targets must be'),
    (epig.epig_scores, (_log_probs(2), _log_probs(3)),
     'target_log_probs has 3 passes'),
    # batchbald
    (batchbald.batchbald, (KEY, _log_probs(), _mask(0, 1), 5),
     'query_size = 5, but only 4 pool points are unlabeled'),
    (batchbald.batchbald, (KEY, _log_probs()[0], _mask(0), 2),
     r'log_probs must be \[K, N, C\] \(rank 3\)'),
    (batchbald.batchbald, (KEY, _log_probs(), _mask(0), 0),
     'query_size must be an integer >= 1'),
    (batchbald.batchbald, (KEY, _log_probs().at[1, 4, 0].set(jnp.nan),
                           _mask(0), 2), r'log_probs holds 1 NaN or \+inf'),
    (functools.partial(batchbald.batchbald, num_samples=0),
     (KEY, _log_probs(), _mask(0), 2), 'num_samples must be an integer >= 1'),
    (batchbald.batchbald, (KEY, _log_probs(), _mask(0, n=N - 1), 2),
     'log_probs has 6 points'),
    # kcenter, kmeans, badge
    (kcenter.kcenter_select, (_points(), _mask(0, 1, 2, 3), 3),
     'query_size = 3, but only 2'),
    (kcenter.kcenter_select, (_points().at[0, 0].set(jnp.nan), _mask(0), 2),
     'features holds 1 NaN or inf'),
    (kcenter.kcenter_select, (_points(), jnp.zeros(N, jnp.float32), 2),
     'labeled_mask must be a bool mask'),
    (kmeans.kmeans_select, (KEY, _points(), jnp.ones(N).at[2:].set(0.0), 3),
     'query_size = 3, but only 2 weights are positive'),
    (kmeans.kmeans_select, (KEY, _points(), -jnp.ones(N), 1),
     'weights must be >= 0 everywhere'),
    (kmeans.kmeans_select, (KEY, _points(), jnp.ones(N - 1), 1),
     'weights has 5 entries, expected 6'),
    (badge.badge_select, (KEY, _log_probs(1), _points(), ~_mask(0), 2),
     r'log_probs must be \[N, C\] \(one pass\) \(rank 2\)'),
    (badge.badge_select, (KEY, _log_probs(1)[0], _points(), _mask(0, 1), 3),
     'query_size = 3, but only 2 candidates are True'),
    (badge.badge_select, (KEY, _log_probs(1)[0] * 3, _points(), ~_mask(0), 2),
     'log_probs must be log-probabilities'),
    # coldstart, cluster_margin
    (coldstart.probcover_select, (KEY, _points(), _mask(0), 2, -1.0),
     r'radius must be None \(chosen from the purity\) or a finite number > 0'),
    (functools.partial(coldstart.probcover_select, purity=0.0),
     (KEY, _points(), _mask(0), 2), r'purity must be a finite number in'),
    (coldstart.probcover_select, (KEY, _points(), _mask(*range(N)), 1),
     'only 0 pool points are unlabeled'),
    (coldstart.typiclust_select, (KEY, _points(), _mask(0), 2, 0),
     'max_clusters must be an integer >= 1'),
    (coldstart.typiclust_select, (KEY, _points(), _mask(0, 1, 2, 3, 4), 2),
     'query_size = 2, but only 1'),
    (cluster_margin.round_robin, (KEY, jnp.arange(4), jnp.array(
        [True, False, False, True]), jnp.zeros(4, jnp.int32), 3),
     'query_size = 3, but only 2 candidates are valid'),
    (cluster_margin.hac_pool_clusters, (KEY, _points(), 0),
     'num_clusters must be an integer >= 1'),
    (cluster_margin.hac_pool_clusters, (KEY, _points(), 2, 10, -1.0),
     'distance_threshold must be a finite number > 0'),
]


@pytest.mark.parametrize('fn, args, message', PRIMITIVE_CASES,
                         ids=lambda v: getattr(getattr(v, 'func', v),
                                               '__name__', None))
def test_acquisition_primitives_check_their_arguments(fn, args, message):
  _raises(message, fn, *args)


def _sq_to(x):
  return lambda j: cluster.sq_distances_to(x, x[j])


CLUSTER_CASES = [
    (cluster.kmeans, (KEY, _points(), jnp.ones(N), N + 1),
     'num_centres = 7 exceeds the 6 points there are'),
    (cluster.kmeans, (KEY, _points(), jnp.ones(N).at[:3].set(0.0), 4),
     'num_centres = 4, but only 3 weights are positive'),
    (cluster.kmeans, (KEY, _points().at[1, 2].set(jnp.nan), jnp.ones(N), 2),
     'x holds 1 NaN or inf'),
    (cluster.kmeans, (KEY, _points(), jnp.ones(N).at[0].set(jnp.nan), 2),
     'weights holds 1 NaN'),
    (cluster.kmeans, (KEY, _points(), jnp.ones(N), 0),
     'num_centres must be an integer >= 1'),
    (cluster.kmeans, (KEY, _points(), jnp.ones(N), 2, -1),
     'num_iters must be an integer >= 0'),
    (cluster.kmeans, (KEY, _points()[None], jnp.ones(N), 2),
     r'x must be \[N, D\]'),
    (cluster.kmeans_plusplus, (KEY, _sq_to(_points()),
                               jnp.ones(N).at[1:].set(0.0), 2),
     'num_centres = 2, but only 1 weights are positive'),
    (functools.partial(cluster.kmeans_plusplus, first=N),
     (KEY, _sq_to(_points()), jnp.ones(N), 2), r'first = 6 is outside'),
    (cluster.farthest_first, (_points(), jnp.full((N,), jnp.inf),
                              ~_mask(0, 1, 2, 3, 4), 2),
     'num_picks = 2, but only 1 candidates are True'),
    (cluster.farthest_first, (_points(), jnp.full((N,), jnp.nan), ~_mask(0),
                              2), 'min_sq holds 6 NaN'),
    (cluster.nearest_distinct, (_points(), _points(3), ~_mask(0, 1, 2, 3)),
     'the number of centres = 3, but only 2 candidates are True'),
    (cluster.nearest_distinct, (_points(), _points(2, D + 1), ~_mask(0)),
     'centres has 5 features, expected 4'),
    (cluster.assign, (_points(), _points(2, D + 1)),
     'centres has 5 features'),
    (cluster.assign, (_points(), jnp.zeros((0, D))),
     'the number of centres must be an integer >= 1'),
    (cluster.assign, (_points(), _points(2).at[0, 0].set(jnp.inf)),
     'centres holds 1 NaN or inf'),
    (cluster.assign, (_points(), _points(2), jnp.zeros(2, bool)),
     'centre_mask has no True entry; at least one centre'),
    (cluster.lloyd, (_points(), jnp.ones(N - 2), _points(2), 1),
     'weights has 4 entries, expected 6'),
    (cluster.knn, (_points(), 0), 'num_neighbours must be an integer >= 1'),
    (cluster.knn, (_points(), 2, jnp.zeros(N - 1, jnp.int32)),
     'groups has 5 entries'),
    (cluster.pca_project, (_points(), 0),
     r'dim must be an integer in \[1, 4\] \(D = 4 is the number of features\)'
     ', got 0'),
    (cluster.pca_project, (_points(), D + 1), r'dim .* got 5'),
    (cluster.min_sq_distances_to_subset, (_points(), _mask(0, n=N + 2)),
     'subset_mask has length 8, expected 6'),
]


@pytest.mark.parametrize('fn, args, message', CLUSTER_CASES,
                         ids=lambda v: getattr(getattr(v, 'func', v),
                                               '__name__', None))
def test_cluster_functions_check_their_arguments(fn, args, message):
  _raises(message, fn, *args)


def test_cluster_checks_skip_values_under_jit_but_not_shapes():
  # Traced weights: only the static sizes are checkable.
  run = jax.jit(cluster.kmeans, static_argnums=3)
  assert run(KEY, _points(), jnp.ones(N), 2).shape == (2, D)
  _raises('num_centres = 7 exceeds the 6 points', run, KEY, _points(),
          jnp.ones(N), N + 1)
