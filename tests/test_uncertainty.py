"""Stochastic predictions: MC dropout, ensembles, the sources in the loop."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import config as config_lib
from jal import loop
from jal import models
from jal import train
from jal import uncertainty
from tests.synthetic import make_blobs_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_and_images(n=37, name='mlp', side=4):
  graphdef, variables = models.init(jax.random.key(0), name, (side, side, 1),
                                    3, 0.3)
  images = jax.random.normal(jax.random.key(1), (n, side, side, 1))
  return graphdef, variables, images


def test_mc_dropout_pass_k_is_predict_with_key_k():
  graphdef, variables, images = _model_and_images()
  key = jax.random.key(5)
  got = uncertainty.mc_dropout_log_probs(key, graphdef, variables, images,
                                         num_passes=3, chunk_size=8)
  assert got.shape == (3, 37, 3)
  predict = jax.jit(lambda key: train.predict(
      graphdef, variables, images, chunk_size=8, dropout_key=key))
  for k in range(3):
    logits, _ = predict(jax.random.fold_in(key, k))
    np.testing.assert_allclose(got[k], jax.nn.log_softmax(logits), atol=1e-5)
  assert not np.allclose(got[0], got[1])  # dropout is on


def test_mc_dropout_include_mask_computes_included_rows():
  graphdef, variables, images = _model_and_images()
  include = jnp.arange(37) % 3 == 0
  full = uncertainty.mc_dropout_log_probs(jax.random.key(2), graphdef,
                                          variables, images, num_passes=2,
                                          chunk_size=8)
  masked = uncertainty.mc_dropout_log_probs(
      jax.random.key(2), graphdef, variables, images, num_passes=2,
      chunk_size=8, include_mask=include)
  assert np.all(np.isfinite(masked))
  # Included rows are computed (with chunk-dependent dropout masks).
  np.testing.assert_allclose(jnp.exp(masked[:, include]).sum(-1), 1.0,
                             atol=1e-5)
  assert full.shape == masked.shape


def test_ensemble_members_are_independent_predictions():
  graphdef, _, images = _model_and_images()
  stacked = jax.vmap(lambda k: models.init(k, 'mlp', (4, 4, 1), 3, 0.3)[1])(
      jax.random.split(jax.random.key(3), 3))
  got = uncertainty.ensemble_log_probs(graphdef, stacked, images,
                                       chunk_size=8)
  assert got.shape == (3, 37, 3)
  for m in range(3):
    logits, _, _ = models.apply(graphdef, uncertainty.member(stacked, m),
                                images)
    np.testing.assert_allclose(got[m], jax.nn.log_softmax(logits), atol=1e-5)


@pytest.mark.parametrize('in_jit_loop', [False, True])
def test_fit_ensemble_equals_fitting_each_member(in_jit_loop):
  data = make_blobs_dataset(num_pool=40)
  graphdef, _ = models.init(jax.random.key(0), 'mlp', (4, 4, 1), 3, 0.2)
  stacked = jax.vmap(lambda k: models.init(k, 'mlp', (4, 4, 1), 3, 0.2)[1])(
      jax.random.split(jax.random.key(1), 2))
  trainer = train.Trainer(graphdef, train.make_optimizer(), batch_size=8,
                          in_jit_loop=in_jit_loop)
  images = jnp.asarray(data.pool_images)
  labels = jnp.asarray(data.pool_labels)
  mask = jnp.arange(40) < 20
  key = jax.random.key(2)
  ensemble = trainer.fit_ensemble(key, stacked, images, labels, mask, 2)
  for m, member_key in enumerate(jax.random.split(key, 2)):
    single = trainer.fit(member_key, uncertainty.member(stacked, m), images,
                         labels, mask, 2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[m], b, atol=1e-5),
                 ensemble.variables, single.variables)


def test_map_sharded_pads_and_trims_any_size():
  got = uncertainty.map_sharded(lambda x, r: x * r, jnp.arange(5.0), 2.0, 5)
  np.testing.assert_allclose(got, 2.0 * np.arange(5))


def _mnist_config(name):
  return config_lib.from_file(os.path.join(REPO, 'configs', f'{name}.py'))


@pytest.mark.parametrize('name,uncertainty_source,model', [
    ('mnist_bald', 'mc_dropout', 'lenet'),
    ('mnist_batchbald', 'mc_dropout', 'mlp'),
    ('mnist_bald', 'ensemble', 'mlp'), ('mnist_bald', 'laplace', 'mlp')])
def test_ci_sized_mnist_configs_run(name, uncertainty_source, model, tmp_path):
  """The MNIST configs on blobs, shrunk to seconds."""
  config = _mnist_config(name)
  config.dataset = 'blobs'
  config.model = model
  config.pool_size = None
  config.num_epochs = 2
  config.num_rounds = 2
  config.initial_size = 6
  config.initial_per_class = 2
  config.query_size = 4
  config.mc_passes = 3
  config.ensemble_size = 2
  config.eval_chunk = 64
  config.uncertainty = uncertainty_source
  if name == 'mnist_batchbald':
    config.strategy_kwargs.num_samples = 20  # exact, then sampled steps
  blobs = make_blobs_dataset(num_pool=80, num_test=30,
                             side=16 if model == 'lenet' else 4)
  summary = loop.run(config, str(tmp_path), dataset=blobs)
  assert summary['num_labeled'] == [6, 10, 14]
  assert all(0.0 <= a <= 1.0 for a in summary['test_accuracy'])
  first = loop.init_state(loop.build(config, blobs))
  # 2 initial labels of each class.
  np.testing.assert_array_equal(
      np.bincount(blobs.pool_labels[np.asarray(first.labeled_mask)]),
      [2, 2, 2])
