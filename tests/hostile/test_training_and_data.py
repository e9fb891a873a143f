"""Hostile inputs, classes 3 and 7: broken training, malformed datasets.

A config that would train a NaN model is refused before any work; a model
that diverges anyway stops the run before it queries, with the last
checkpoint intact. A `Dataset` handed to `loop.run` is checked before
anything is written.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jal import errors
from jal import loop
from jal import models
from jal import trials
from tests.synthetic import make_blobs_dataset


@pytest.fixture
def config(tiny_config):
  tiny_config.num_epochs = 2
  tiny_config.num_rounds = 2
  return tiny_config


@pytest.mark.parametrize('field, value', [
    ('weight_decay', float('nan')), ('weight_decay', float('inf')),
    ('weight_decay', -0.1), ('momentum', -0.5), ('momentum', 1.0),
    ('momentum', float('nan')), ('learning_rate', 1e8),
    ('learning_rate', float('nan')), ('learning_rate', float('inf')),
    ('learning_rate', -1e-3), ('optimizer', 'adamw'), ('optimizer', ''),
    ('seed', -3), ('seed', 2**40),
])
def test_optimizer_fields_are_checked_before_any_work(config, tmp_path, field,
                                                      value):
  config[field] = value
  with pytest.raises(errors.ConfigError, match=f'config.{field} must'):
    loop.run(config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')


def _nan_when_training():
  """A linear model whose training logits are NaN (its gradients too)."""

  def init(key, input_shape):
    return dict(w=jax.random.normal(key, (int(np.prod(input_shape)), 3)))

  def apply(params, x):
    logits = x.reshape(x.shape[0], -1) @ params['w']
    return logits, logits

  base = models.from_function(init, apply)

  def train_apply(variables, x, *, key=None, train=False):
    out = base.apply(variables, x, key=key, train=train)
    return out._replace(logits=out.logits * jnp.nan) if train else out

  return models.Model(base.init, train_apply)


def test_a_diverging_model_stops_before_its_query(config, tmp_path):
  blobs = make_blobs_dataset()
  config.initial_size = 20
  config.query_size = 10
  config.train_loop = 'python'

  with pytest.raises(errors.DivergedError,
                     match='round 0 .*config.learning_rate'):
    loop.run(config, str(tmp_path), dataset=blobs, model=_nan_when_training())
  # Nothing of the diverged round was saved or selected.
  assert not os.path.exists(tmp_path / loop.CHECKPOINT)
  assert not os.path.exists(tmp_path / loop.RESULTS)


def test_a_model_with_nan_parameters_is_caught_in_vmapped_trials(config,
                                                                 tmp_path):
  config.train_loop = 'jit'
  config.strategy = 'margin'
  config.num_epochs = 30
  config.learning_rate = 9.0
  config.optimizer = 'sgd'
  config.momentum = 0.99
  config.weight_decay = 5.0
  with pytest.raises(errors.DivergedError, match=r'round 0 \(seed [01]\)'):
    trials.run(config, [0, 1], [str(tmp_path / 'a'), str(tmp_path / 'b')])
  assert not os.path.exists(tmp_path / 'a' / loop.RESULTS)


def _blobs(**changes):
  dataset = make_blobs_dataset()
  return dataset._replace(**{k: v(dataset) if callable(v) else v
                             for k, v in changes.items()})


_DATASETS = {
    'label == num_classes': (
        _blobs(pool_labels=lambda d: np.where(
            np.arange(120) == 5, 3, d.pool_labels)), 'dataset.pool_labels'),
    'test label -1': (
        _blobs(test_labels=lambda d: np.where(
            np.arange(60) == 0, -1, d.test_labels)), 'dataset.test_labels'),
    'pool label -1': (
        _blobs(pool_labels=lambda d: np.where(
            np.arange(120) == 7, -1, d.pool_labels)), 'dataset.pool_labels'),
    'num_classes below the largest label': (
        _blobs(num_classes=2), 'dataset.pool_labels span'),
    'num_classes 1': (_blobs(num_classes=1), 'dataset.num_classes'),
    'num_classes a float': (_blobs(num_classes=3.0), 'dataset.num_classes'),
    'fewer labels than images': (
        _blobs(pool_labels=lambda d: d.pool_labels[:-1]),
        'dataset.pool_labels has shape'),
    'labels of rank 2': (
        _blobs(test_labels=lambda d: d.test_labels[:, None]),
        'dataset.test_labels has shape'),
    'float labels': (
        _blobs(pool_labels=lambda d: d.pool_labels.astype(np.float32)),
        'dataset.pool_labels has dtype'),
    'uint8 images': (
        _blobs(pool_images=lambda d: (d.pool_images * 0).astype(np.uint8)),
        'dataset.pool_images has dtype'),
    'images of rank 1': (
        _blobs(pool_images=lambda d: d.pool_images.reshape(-1)),
        'dataset.pool_images has shape'),
    'empty pool': (
        _blobs(pool_images=lambda d: d.pool_images[:0],
               pool_labels=lambda d: d.pool_labels[:0]),
        'dataset.pool_images has shape'),
    'empty test set': (
        _blobs(test_images=lambda d: d.test_images[:0],
               test_labels=lambda d: d.test_labels[:0]),
        'dataset.test_images has shape'),
    'pool and test of other shapes': (
        _blobs(test_images=lambda d: d.test_images[:, :3]),
        'dataset.test_images are'),
    'images without a channel axis for a conv model': (
        _blobs(pool_images=lambda d: d.pool_images[..., 0],
               test_images=lambda d: d.test_images[..., 0]), 'channel'),
    'infinite test pixel': (
        _blobs(test_images=lambda d: np.where(
            np.arange(60)[:, None, None, None] == 2, np.inf, d.test_images)),
        'dataset.test_images contains NaN'),
}


@pytest.mark.parametrize('case', sorted(_DATASETS))
def test_a_malformed_dataset_is_refused_before_anything_is_written(
    config, tmp_path, case):
  dataset, names = _DATASETS[case]
  config.initial_size = 20
  config.query_size = 10
  if 'conv' in case:
    config.model = 'lenet'
  with pytest.raises(errors.ConfigError, match=names):
    loop.run(config, str(tmp_path / 'w'), dataset=dataset)
  assert not os.path.exists(tmp_path / 'w')


def test_unknown_pool_labels_are_fine_with_an_oracle_and_answers_are_checked(
    config, tmp_path):
  blobs = make_blobs_dataset()
  truth = blobs.pool_labels.copy()
  hidden = blobs._replace(pool_labels=np.full_like(truth, -1))
  config.initial_size = 20
  config.query_size = 10
  summary = loop.run(config, str(tmp_path / 'ok'), dataset=hidden,
                     oracle=lambda idx: truth[idx])
  assert summary['num_labeled'] == [20, 30, 40]
  answers = {'a label past num_classes': lambda idx: truth[idx] + 3,
             'one label short': lambda idx: truth[idx][:-1],
             'float labels': lambda idx: truth[idx] + 0.5}
  for what, oracle in answers.items():
    with pytest.raises(errors.ConfigError, match='oracle answered'):
      loop.run(config, str(tmp_path / what), dataset=hidden, oracle=oracle)
    assert not os.path.exists(tmp_path / what / loop.CHECKPOINT), what
  config.initial_per_class = 5
  config.initial_size = 15
  with pytest.raises(errors.ConfigError, match='initial_per_class'):
    loop.run(config, str(tmp_path / 'per_class'), dataset=hidden,
             oracle=lambda idx: truth[idx])


def _add_field(config):
  config.num_epoch = 3


def _add_hparams(config):
  config.hparams.entropyy = ml_collections.ConfigDict({'beta': 1.0})


def _drop_field(config):
  del config['augment']


@pytest.mark.parametrize('change, names', [
    (_add_field, "config.num_epoch is not an experiment field \\(did you mean "
                 "'num_epochs'\\?\\)"),
    (_add_hparams, "config.hparams.entropyy names no registered strategy "
                   "\\(did you mean 'entropy'\\?\\)"),
    (_drop_field, 'config lacks augment'),
])
def test_misspelt_or_missing_fields_are_refused_before_any_work(
    config, tmp_path, change, names):
  change(config)
  with pytest.raises(errors.ConfigError, match=names):
    loop.run(config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')


def test_a_dataset_that_is_not_a_dataset_or_a_bad_workdir_is_named(config,
                                                                   tmp_path):
  blobs = make_blobs_dataset()
  with pytest.raises(errors.ConfigError, match='dataset must be a jal.data'):
    loop.run(config, str(tmp_path / 'w'), dataset=tuple(blobs))
  for workdir in (None, '', 3):
    with pytest.raises(errors.ConfigError, match='workdir must be'):
      loop.run(config, workdir, dataset=blobs)
  assert not os.path.exists(tmp_path / 'w')
