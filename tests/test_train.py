"""Masked training: it learns, reads only its rows, compiles once; hooks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jal import data
from jal import models
from jal import predict
from jal import train
from tests.synthetic import make_blobs_dataset


def _trainer(in_jit_loop, batch_size=16, objective=None, augment=None,
             side=4, dropout_rate=0.1):
  model = models.get('mlp', 3, dropout_rate=dropout_rate)
  variables = model.init(jax.random.key(0), (side, side, 1))
  trainer = train.Trainer(model, train.make_optimizer('adam', 1e-2),
                          batch_size=batch_size, in_jit_loop=in_jit_loop,
                          objective=objective, augment=augment)
  return trainer, variables


def _pool(num_pool, side=4):
  dataset = make_blobs_dataset(num_pool=num_pool, side=side)
  return (jnp.asarray(dataset.pool_images),
          jnp.asarray(dataset.pool_labels, jnp.int32))


def _loss(trainer, variables, images, labels, mask):
  logits, _ = predict.predict(trainer.model, variables, images, chunk_size=32)
  return float(train.cross_entropy(logits, labels, mask.astype(jnp.float32)))


def _masked(labels, mask):
  return train.TrainSet(mask, jnp.where(mask, labels, -1))


def _leaves(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


@pytest.mark.parametrize('in_jit_loop', [False, True])
def test_training_lowers_the_loss_and_compiles_once(in_jit_loop):
  images, labels = _pool(200)
  trainer, variables = _trainer(in_jit_loop)
  fit = jax.jit(trainer.fit, static_argnums=4) if in_jit_loop else trainer.fit
  for num_labeled in (20, 37, 61):  # three rounds, three labeled counts
    mask = jnp.arange(200) < num_labeled
    state = fit(jax.random.key(num_labeled), variables, images,
                _masked(labels, mask), 5)
    assert (_loss(trainer, state.variables, images, labels, mask) <
            _loss(trainer, variables, images, labels, mask))
    assert int(state.step) == 5 * -(-num_labeled // 16)
  fn = fit if in_jit_loop else trainer._jit_step  # pylint: disable=protected-access
  assert fn._cache_size() == 1  # pylint: disable=protected-access


def test_python_and_in_jit_loops_agree():
  images, labels = _pool(100)
  mask = jnp.asarray(np.random.default_rng(0).random(100) < 0.3)
  results = []
  for in_jit_loop in (False, True):
    trainer, variables = _trainer(in_jit_loop)
    state = trainer.fit(jax.random.key(3), variables, images,
                        _masked(labels, mask), 2)
    results.append(_leaves(state.variables.params))
  np.testing.assert_allclose(*results, atol=1e-5)


def test_rows_outside_the_training_set_never_influence_training():
  images, labels = _pool(100)
  mask = jnp.arange(100) < 30
  trainer, variables = _trainer(False)
  a = trainer.fit(jax.random.key(0), variables, images, _masked(labels, mask),
                  2)
  b = trainer.fit(jax.random.key(0), variables, images.at[30:].set(1e3),
                  _masked(labels.at[30:].set(0), mask), 2)
  np.testing.assert_array_equal(_leaves(a.variables), _leaves(b.variables))


def test_labeled_first_order():
  mask = jnp.asarray(np.random.default_rng(1).random(50) < 0.4)
  order = np.asarray(train.labeled_first_order(jax.random.key(0), mask))
  n = int(mask.sum())
  assert sorted(order.tolist()) == list(range(50))
  assert set(order[:n].tolist()) == set(np.flatnonzero(mask).tolist())


def test_sgd_optimizer_and_unknown_name():
  assert train.make_optimizer('sgd', 0.01, 0.5) is not None
  with pytest.raises(ValueError, match='adam, sgd'):
    train.make_optimizer('lbfgs')


def test_training_with_augmentation_changes_the_model_and_compiles_once():
  images, labels = _pool(64, side=8)
  trainer, variables = _trainer(False, augment=data.random_crop_flip, side=8,
                                dropout_rate=0.0)
  plain, _ = _trainer(False, side=8, dropout_rate=0.0)
  for n in (20, 40):
    mask = jnp.arange(64) < n
    augmented = trainer.fit(jax.random.key(0), variables, images,
                            _masked(labels, mask), 2)
    reference = plain.fit(jax.random.key(0), variables, images,
                          _masked(labels, mask), 2)
    assert not np.allclose(_leaves(augmented.variables.params),
                           _leaves(reference.variables.params))
  assert trainer._jit_step._cache_size() == 1  # pylint: disable=protected-access


# Hook H1: the training set can hold pseudo-labelled rows and extra rows.


def _with_extra(labels, mask, extra_images, extra_labels, extra_mask):
  return train.TrainSet(mask, jnp.where(mask, labels, -1), extra_images,
                        extra_labels, extra_mask)


def test_extra_rows_are_trained_on_and_unused_ones_ignored():
  images, labels = _pool(60)
  trainer, variables = _trainer(True, batch_size=8)
  mask = jnp.arange(60) < 20
  # 8 copies of pool row 40 labeled with a class it does not have.
  wrong = (labels[40] + 1) % 3
  extra_images = jnp.repeat(images[40:41], 12, axis=0)
  extra_labels = jnp.full((12,), wrong, jnp.int32)
  extra_mask = jnp.arange(12) < 8
  plain = trainer.fit(jax.random.key(1), variables, images,
                      _with_extra(labels, mask, extra_images, extra_labels,
                                  jnp.zeros((12,), bool)), 5)
  extended = trainer.fit(jax.random.key(1), variables, images, _with_extra(
      labels, mask, extra_images, extra_labels, extra_mask), 5)
  probs = lambda v: jax.nn.softmax(trainer.model.apply(v, images[40:41]).logits)
  assert float(probs(extended.variables)[0, wrong]) > float(
      probs(plain.variables)[0, wrong]) + 0.1
  scrambled = trainer.fit(jax.random.key(1), variables, images, _with_extra(
      labels, mask, extra_images.at[8:].set(1e3),
      extra_labels.at[8:].set(0), extra_mask), 5)
  np.testing.assert_array_equal(_leaves(extended.variables),
                                _leaves(scrambled.variables))


def test_pseudo_labels_change_the_trained_model():
  images, labels = _pool(80)
  trainer, variables = _trainer(True, batch_size=8)
  labeled = jnp.arange(80) < 10
  pseudo = (jnp.arange(80) >= 10) & (jnp.arange(80) < 30)
  plain = trainer.fit(jax.random.key(0), variables, images,
                      _masked(labels, labeled), 3)
  # Pseudo-labels that disagree with the truth, so their effect shows.
  pseudo_labels = (labels + 1) % 3
  extended = trainer.fit(
      jax.random.key(0), variables, images,
      train.TrainSet(labeled | pseudo, jnp.where(
          labeled, labels, jnp.where(pseudo, pseudo_labels, -1))), 3)
  assert int(extended.step) > int(plain.step)
  assert (_loss(trainer, extended.variables, images, pseudo_labels, pseudo) <
          0.5 * _loss(trainer, plain.variables, images, pseudo_labels, pseudo))


# Hook H4: an objective with its own parameters, features and unlabeled rows.


def _embedding_norm_objective(unlabeled_batch):
  """Aux parameter s; loss (s - mean ‖embedding‖)² pulls s and the net."""

  def loss(aux_params, output, labels, weights, unlabeled_output, info):
    del labels, weights, info
    features = output.features[0]
    if unlabeled_output is not None:
      features = unlabeled_output.features[0]
    return (aux_params['s'] - jnp.mean(jnp.abs(features))) ** 2

  return train.Objective(init=lambda key, output: {'s': jnp.zeros(())},
                         tx=optax.sgd(0.1), loss=loss,
                         unlabeled_batch=unlabeled_batch)


@pytest.mark.parametrize('unlabeled_batch', [False, True])
def test_auxiliary_objective_trains_its_parameters_and_changes_training(
    unlabeled_batch):
  images, labels = _pool(80)
  mask = jnp.arange(80) < 30
  plain, variables = _trainer(True)
  hooked, _ = _trainer(True, objective=_embedding_norm_objective(
      unlabeled_batch))
  a = plain.fit(jax.random.key(0), variables, images, _masked(labels, mask), 3)
  b = hooked.fit(jax.random.key(0), variables, images, _masked(labels, mask),
                 3)
  assert float(b.aux_params['s']) > 0.0  # moved towards the mean |feature|
  assert not np.allclose(_leaves(a.variables.params),
                         _leaves(b.variables.params))
  python_loop, _ = _trainer(False, objective=_embedding_norm_objective(
      unlabeled_batch))
  c = python_loop.fit(jax.random.key(0), variables, images,
                      _masked(labels, mask), 3)
  np.testing.assert_allclose(_leaves(b), _leaves(c), atol=1e-5)


def test_unlabeled_batch_reads_only_unlabeled_rows():
  images, labels = _pool(60)
  mask = jnp.arange(60) < 20
  seen = []

  def loss(aux_params, output, labels, weights, unlabeled_output, info):
    del aux_params, output, labels, weights, info
    jax.debug.callback(seen.append, unlabeled_output.logits)
    return 0.0

  model = models.get('mlp', 3, dropout_rate=0.0)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  # Frozen parameters: the logits seen in training equal the eval ones.
  trainer = train.Trainer(model, optax.set_to_zero(), batch_size=16,
                          in_jit_loop=False, objective=train.Objective(
                              init=lambda key, output: (),
                              tx=optax.identity(), loss=loss,
                              unlabeled_batch=True))
  trainer.fit(jax.random.key(0), variables, images, _masked(labels, mask), 1)
  logits, _ = predict.predict(trainer.model, variables, images, chunk_size=60)
  unlabeled = {tuple(np.round(np.asarray(row), 4)) for row in logits[20:]}
  got = {tuple(np.round(np.asarray(row), 4)) for batch in seen for row in batch}
  assert got and got <= unlabeled


# Hook H3: the same minibatch machinery for a strategy's own network.


def test_fit_on_mask_trains_a_logistic_regression():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(200, 2)), jnp.float32)
  y = (x[:, 0] + x[:, 1] > 0).astype(jnp.float32)
  mask = jnp.arange(200) < 150

  def loss_fn(params, key, rows, weights):
    del key
    logits = x[rows] @ params['w'] + params['b']
    losses = optax.sigmoid_binary_cross_entropy(logits, y[rows])
    return jnp.sum(weights * losses) / jnp.sum(weights)

  params = jax.jit(lambda: train.fit_on_mask(
      jax.random.key(0), loss_fn, {'w': jnp.zeros(2), 'b': jnp.zeros(())},
      optax.adam(0.1), mask, batch_size=32, num_epochs=20))()
  predicted = (x @ params['w'] + params['b']) > 0
  assert float(jnp.mean(predicted[150:] == (y[150:] > 0))) > 0.95
