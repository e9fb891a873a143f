"""Posterior sources: MC dropout, ensembles, batch-norm passes, the registry."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import config as config_lib
from jal import devices
from jal import errors
from jal import loop
from jal import models
from jal import posterior
from jal import predict
from jal import train
from jal.posterior import sources
from tests import synthetic
from tests.synthetic import make_blobs_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _config(**fields):
  config = config_lib.default()
  config.posterior_samples = 3
  config.eval_chunk = 8
  config.ensemble_size = 3
  config.update(fields)
  return config


def _model_and_images(n=37, name='mlp', side=4, dropout=0.3):
  model = models.get(name, 3, dropout)
  variables = model.init(jax.random.key(0), (side, side, 1))
  images = jax.random.normal(jax.random.key(1), (n, side, side, 1))
  return model, variables, images


@pytest.mark.parametrize('consistent', [True, False])
def test_mc_dropout_pass_k_is_predict_with_key_k(consistent):
  model, variables, images = _model_and_images()
  source = posterior.get('mc_dropout', model, (4, 4, 1),
                         _config(consistent_dropout=consistent))
  key = jax.random.key(5)
  got = jax.jit(source.sample)(key, variables, images, None, None)
  assert got.shape == (3, 37, 3)
  for k in range(3):
    logits, _ = predict.predict(model, variables, images, chunk_size=8,
                                key=jax.random.fold_in(key, k),
                                consistent=consistent)
    np.testing.assert_allclose(got[k], jax.nn.log_softmax(logits), atol=1e-5)
  assert not np.allclose(got[0], got[1])  # dropout is on


@pytest.mark.parametrize('name,side', [('mlp', 4), ('lenet', 16)])
def test_consistent_dropout_gives_identical_inputs_identical_outputs(name,
                                                                     side):
  """Copies of one image, across chunk boundaries, agree in every pass."""
  model, variables, images = _model_and_images(n=5, name=name, side=side)
  pool = jnp.concatenate([images] * 4)  # rows i, i+5, i+10, i+15 are copies
  source = posterior.get('mc_dropout', model, (side, side, 1),
                         _config(eval_chunk=3, posterior_samples=4))
  got = np.asarray(source.sample(jax.random.key(7), variables, pool, None,
                                 None)).reshape(4, 4, 5, 3)
  for copy in range(1, 4):
    np.testing.assert_allclose(got[:, copy], got[:, 0], atol=1e-5)
  # One mask per pass: the same as the whole pool as one chunk.
  whole = posterior.get('mc_dropout', model, (side, side, 1),
                        _config(eval_chunk=20, posterior_samples=4))
  np.testing.assert_allclose(
      whole.sample(jax.random.key(7), variables, pool, None, None),
      got.reshape(4, 20, 3), atol=1e-5)
  per_point = posterior.get('mc_dropout', model, (side, side, 1), _config(
      eval_chunk=3, posterior_samples=4, consistent_dropout=False))
  differs = np.asarray(per_point.sample(jax.random.key(7), variables, pool,
                                        None, None)).reshape(4, 4, 5, 3)
  assert not np.allclose(differs[:, 1], differs[:, 0], atol=1e-3)


def test_mc_dropout_include_mask_computes_included_rows():
  model, variables, images = _model_and_images()
  include = jnp.arange(37) % 3 == 0
  source = posterior.get('mc_dropout', model, (4, 4, 1), _config())
  full = source.sample(jax.random.key(2), variables, images, None, None)
  masked = source.sample(jax.random.key(2), variables, images, None, include)
  # Consistent masks: included rows equal the full computation.
  np.testing.assert_allclose(masked[:, include], full[:, include], atol=1e-5)


def test_ensemble_members_are_independent_predictions():
  model, _, images = _model_and_images()
  source = posterior.get('ensemble', model, (4, 4, 1), _config())
  stacked = source.init(jax.random.key(3))
  got = source.sample(None, stacked, images, None, None)
  assert got.shape == (3, 37, 3)
  for m in range(3):
    logits = model.apply(sources.member(stacked, m), images).logits
    np.testing.assert_allclose(got[m], jax.nn.log_softmax(logits), atol=1e-5)
  mean = np.log(np.mean(np.exp(np.asarray(got, np.float64)), 0))
  np.testing.assert_allclose(source.test_log_probs(stacked, images), mean,
                             atol=1e-5)


@pytest.mark.parametrize('in_jit_loop', [False, True])
def test_fitting_an_ensemble_equals_fitting_each_member(in_jit_loop):
  data = make_blobs_dataset(num_pool=40)
  model = models.get('mlp', 3, 0.2)
  source = posterior.get('ensemble', model, (4, 4, 1),
                         _config(ensemble_size=2))
  trainer = train.Trainer(model, train.make_optimizer(), batch_size=8,
                          in_jit_loop=True)
  images = jnp.asarray(data.pool_images)
  mask = jnp.arange(40) < 20
  rows = train.TrainSet(mask, jnp.where(mask, jnp.asarray(data.pool_labels),
                                        -1))
  fit_one = lambda key, v: trainer.fit(key, v, images, rows, 2).variables
  stacked = source.init(jax.random.key(1))
  key = jax.random.key(2)
  fit = jax.jit(lambda k, v: source.fit(fit_one, k, v))
  ensemble = fit(key, stacked)
  for m, member_key in enumerate(jax.random.split(key, 2)):
    single = fit_one(member_key, sources.member(stacked, m))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[m], b, atol=1e-5),
                 ensemble, single)


def test_bn_train_passes_use_batch_statistics():
  model = synthetic.batch_norm_model()
  variables = model.init(jax.random.key(0), (8, 8, 1))
  images = jax.random.normal(jax.random.key(1), (12, 8, 8, 1))
  source = posterior.get('bn_train', model, (8, 8, 1),
                         _config(eval_chunk=4, posterior_samples=3))
  include = jnp.arange(12) < 8
  got = np.asarray(source.sample(jax.random.key(2), variables, images, None,
                                 include))
  assert got.shape == (3, 12, 3) and np.all(got[:, 8:] == 0)
  # Pass 0 by hand: shuffle the 8 points, batches of 4 in train mode.
  noise = jax.random.uniform(jax.random.fold_in(jax.random.key(2), 0), (12,))
  order = np.argsort(np.where(include, noise, 2.0))[:8]
  for batch in (order[:4], order[4:]):
    logits = model.apply(variables, images[batch], train=True).logits
    np.testing.assert_allclose(got[0, batch], jax.nn.log_softmax(logits),
                               atol=1e-4)
  assert not np.allclose(got[0, :8], got[1, :8])  # other batch compositions
  # Eval mode (running statistics) differs from batch statistics.
  eval_mode = jax.nn.log_softmax(model.apply(variables, images[:8]).logits)
  assert not np.allclose(got[0, :8], eval_mode, atol=1e-3)


def test_map_sharded_pads_and_trims_any_size():
  got = devices.map_sharded(lambda x, r: x * r, jnp.arange(5.0), 2.0, 5)
  np.testing.assert_allclose(got, 2.0 * np.arange(5))


def test_unknown_source_lists_valid_names():
  model, _, _ = _model_and_images()
  with pytest.raises(errors.UnknownNameError, match='bn_train, ensemble'):
    posterior.get('swag', model, (4, 4, 1), _config())


def _mnist_config(name):
  return config_lib.from_file(os.path.join(REPO, 'configs', f'{name}.py'))


@pytest.mark.parametrize('name,source,model', [
    ('mnist_bald', 'mc_dropout', 'lenet'),
    ('mnist_batchbald', 'mc_dropout', 'mlp'),
    ('mnist_bald', 'ensemble', 'mlp'), ('mnist_bald', 'laplace', 'mlp'),
    ('mnist_bald', 'bn_train', 'batch_norm')])
def test_ci_sized_mnist_configs_run(name, source, model, tmp_path):
  """The MNIST configs on blobs, shrunk to seconds, for every source."""
  config = _mnist_config(name)
  config.dataset = 'blobs'
  config.model = model
  config.pool_size = None
  config.num_epochs = 2
  config.num_rounds = 2
  config.initial_size = 6
  config.initial_per_class = 2
  config.query_size = 4
  config.posterior_samples = 3
  config.ensemble_size = 2
  config.eval_chunk = 64
  config.posterior = source
  if name == 'mnist_batchbald':
    config.hparams.batchbald.num_samples = 20  # exact, then sampled steps
  side = {'lenet': 16}.get(model, 4)
  blobs = make_blobs_dataset(num_pool=80, num_test=30, side=side)
  user_model = None
  if model == 'batch_norm':  # a user's model with batch norm
    config.model, user_model = 'mlp', synthetic.batch_norm_model()
  summary = loop.run(config, str(tmp_path), dataset=blobs, model=user_model)
  assert summary['num_labeled'] == [6, 10, 14]
  assert all(0.0 <= a <= 1.0 for a in summary['test_accuracy'])
  exp, data = loop.setup(config, blobs, model=user_model)
  first = loop.init_state(exp, data, None)
  # 2 initial labels of each class.
  np.testing.assert_array_equal(
      np.bincount(blobs.pool_labels[np.asarray(first.labeled_mask)]),
      [2, 2, 2])
