"""Masked training: it learns, reads only labeled points, and compiles once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import data
from jal import models
from jal import train
from tests.synthetic import make_blobs_dataset


def _trainer(in_jit_loop, batch_size=16):
  graphdef, variables = models.init(jax.random.key(0), 'mlp', (4, 4, 1), 3,
                                    dropout_rate=0.1)
  trainer = train.Trainer(graphdef, train.make_optimizer('adam', 1e-2),
                          batch_size=batch_size, in_jit_loop=in_jit_loop,
                          eval_chunk=32)
  return trainer, variables


def _loss(trainer, variables, images, labels, mask):
  logits, _ = trainer.predict(variables, images)
  return float(train.cross_entropy(logits, labels, mask.astype(jnp.float32)))


@pytest.mark.parametrize('in_jit_loop', [False, True])
def test_training_lowers_the_loss_and_compiles_once(in_jit_loop):
  dataset = make_blobs_dataset(num_pool=200)
  images, labels = jnp.asarray(dataset.pool_images), jnp.asarray(
      dataset.pool_labels)
  trainer, variables = _trainer(in_jit_loop)
  for num_labeled in (20, 37, 61):  # three rounds, three labeled counts
    mask = jnp.arange(200) < num_labeled
    state = trainer.fit(jax.random.key(num_labeled), variables, images,
                        labels, mask, num_epochs=5)
    assert (_loss(trainer, state.variables, images, labels, mask) <
            _loss(trainer, variables, images, labels, mask))
    assert int(state.step) == 5 * -(-num_labeled // 16)
  fn = trainer.epochs if in_jit_loop else trainer.step
  assert fn._cache_size() == 1
  assert trainer.predict._cache_size() == 1


def test_python_and_in_jit_loops_agree():
  dataset = make_blobs_dataset(num_pool=100)
  images, labels = jnp.asarray(dataset.pool_images), jnp.asarray(
      dataset.pool_labels)
  mask = jnp.asarray(np.random.default_rng(0).random(100) < 0.3)
  results = []
  for in_jit_loop in (False, True):
    trainer, variables = _trainer(in_jit_loop)
    state = trainer.fit(jax.random.key(3), variables, images, labels, mask, 2)
    results.append(jax.tree.leaves(state.variables.params))
  for a, b in zip(*results):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_unlabeled_points_never_influence_training():
  dataset = make_blobs_dataset(num_pool=100)
  images = jnp.asarray(dataset.pool_images)
  labels = jnp.asarray(dataset.pool_labels)
  mask = jnp.arange(100) < 30
  scrambled_images = images.at[30:].set(1e3)
  scrambled_labels = labels.at[30:].set(0)
  trainer, variables = _trainer(False)
  a = trainer.fit(jax.random.key(0), variables, images, labels, mask, 2)
  b = trainer.fit(jax.random.key(0), variables, scrambled_images,
                  scrambled_labels, mask, 2)
  for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables)):
    np.testing.assert_array_equal(x, y)


def test_labeled_first_order():
  mask = jnp.asarray(np.random.default_rng(1).random(50) < 0.4)
  order = np.asarray(train.labeled_first_order(jax.random.key(0), mask))
  n = int(mask.sum())
  assert sorted(order.tolist()) == list(range(50))
  assert set(order[:n].tolist()) == set(np.flatnonzero(mask).tolist())


def test_predict_chunks_match_one_pass():
  dataset = make_blobs_dataset(num_pool=70)
  graphdef, variables = models.init(jax.random.key(0), 'mlp', (4, 4, 1), 3,
                                    0.1)
  images = jnp.asarray(dataset.pool_images)
  logits, embeddings = train.predict(graphdef, variables, images,
                                     chunk_size=16)
  reference, ref_embeddings, _ = models.apply(graphdef, variables, images)
  np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(embeddings, ref_embeddings, rtol=1e-5, atol=1e-5)


def test_sgd_optimizer_and_unknown_name():
  assert train.make_optimizer('sgd', 0.01, 0.5) is not None
  with pytest.raises(ValueError, match='adam, sgd'):
    train.make_optimizer('lbfgs')


def test_training_with_augmentation_runs_and_compiles_once():
  dataset = make_blobs_dataset(num_pool=64, side=8)
  graphdef, variables = models.init(jax.random.key(0), 'mlp', (8, 8, 1), 3,
                                    dropout_rate=0.0)
  trainer = train.Trainer(graphdef, train.make_optimizer('adam', 1e-2),
                          batch_size=16, augment=data.random_crop_flip,
                          in_jit_loop=False)
  images = jnp.asarray(dataset.pool_images)
  labels = jnp.asarray(dataset.pool_labels)
  plain = train.Trainer(graphdef, train.make_optimizer('adam', 1e-2),
                        batch_size=16, in_jit_loop=False)
  for n in (20, 40):
    mask = jnp.arange(64) < n
    augmented = trainer.fit(jax.random.key(0), variables, images, labels,
                            mask, 2)
    reference = plain.fit(jax.random.key(0), variables, images, labels, mask,
                          2)
    assert not np.allclose(jax.tree.leaves(augmented.variables.params)[0],
                           jax.tree.leaves(reference.variables.params)[0])
  assert trainer.step._cache_size() == 1
