"""The embedding network: chunked embedding and both training losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import triplet
from jal.cameratrap import embedder as embedder_lib
from jal.data import digits


@pytest.fixture(scope='module')
def source():
  splits = digits.load_splits(0)
  keep = splits.train_labels < 5
  images = (splits.train_images[keep] - 0.3) / 0.4
  return jnp.asarray(images[:400]), jnp.asarray(splits.train_labels[keep][:400])


def test_embed_is_unit_norm_and_independent_of_the_chunking(source):
  images, _ = source
  params = embedder_lib.init(jax.random.key(0), images.shape[1:], 24, 5)
  a = np.asarray(embedder_lib.embed(params, images, chunk_size=64))
  b = np.asarray(embedder_lib.embed(params, images, chunk_size=400))
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
  raw = embedder_lib.network(24).apply(params.variables, images[:5]).embedding
  np.testing.assert_allclose(
      a[:5], raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize('loss', embedder_lib.LOSSES)
def test_training_lowers_the_loss(source, loss):
  images, labels = source
  params = embedder_lib.init(jax.random.key(0), images.shape[1:], 24, 5)
  weights = jnp.ones(len(labels))
  value = lambda p: float(embedder_lib.loss_value(
      jax.random.key(3), p, images, labels, weights, loss=loss, margin=0.2))
  trained = embedder_lib.fit(jax.random.key(1), params, images, labels,
                             jnp.ones(len(labels), bool), loss=loss,
                             margin=0.2, batch_size=64, num_epochs=5,
                             learning_rate=1e-3)
  assert value(trained) < 0.7 * value(params)


def test_triplet_training_reads_the_semihard_loss_of_the_embedding(source):
  images, labels = source
  params = embedder_lib.init(jax.random.key(0), images.shape[1:], 24, 5)
  weights = jnp.ones(len(labels))
  key = jax.random.key(5)
  got = embedder_lib.loss_value(key, params, images[:32], labels[:32],
                                weights[:32], loss='triplet', margin=0.2)
  raw = embedder_lib.network(24).apply(params.variables, images[:32]).embedding
  want = triplet.semihard_triplet_loss(key, raw, labels[:32], weights[:32],
                                       0.2)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


def test_fine_tuning_reads_only_the_masked_rows(source):
  images, labels = source
  params = embedder_lib.init(jax.random.key(0), images.shape[1:], 24, 5)
  mask = jnp.arange(len(labels)) < 50
  scrambled = jnp.where(mask, labels, (labels + 1) % 5)
  fit = lambda y: embedder_lib.fit(
      jax.random.key(1), params, images, y, mask, loss='cross_entropy',
      margin=0.2, batch_size=16, num_epochs=1, learning_rate=1e-3)
  for x, y in zip(jax.tree.leaves(fit(labels)), jax.tree.leaves(fit(scrambled))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
