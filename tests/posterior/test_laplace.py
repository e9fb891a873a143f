"""Last-layer Laplace: GGN precision = Hessian on linear softmax; sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import errors
from jal.posterior import laplace
from jal import models


def _linear_softmax_problem(n=12, d=3, c=4, seed=0):
  rng = np.random.default_rng(seed)
  features = laplace.with_bias_feature(jnp.asarray(rng.normal(0, 1, (n, d)),
                                                   jnp.float32))
  theta = jnp.asarray(rng.normal(0, 1, (d + 1, c)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, c, n))
  weights = jnp.asarray(rng.random(n) < 0.7, jnp.float32)
  return features, theta, labels, weights


def _regularized_loss(flat_theta, features, labels, weights, prior_precision,
                      shape):
  logits = features @ flat_theta.reshape(shape)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None],
                             1)[:, 0]
  return jnp.sum(weights * nll) + 0.5 * prior_precision * jnp.sum(
      flat_theta**2)


@pytest.mark.parametrize('seed', [0, 1])
def test_full_precision_is_the_hessian_of_the_regularized_loss(seed):
  with jax.default_matmul_precision('float32'):
    features, theta, labels, weights = _linear_softmax_problem(seed=seed)
    hessian = jax.hessian(_regularized_loss)(
        theta.reshape(-1), features, labels, weights, 0.7, theta.shape)
    precision = laplace.ggn_precision(features,
                                      jax.nn.softmax(features @ theta),
                                      weights, 0.7, 'full')
  np.testing.assert_allclose(precision, hessian, atol=1e-5)


def test_diag_precision_is_the_hessians_diagonal():
  with jax.default_matmul_precision('float32'):
    features, theta, labels, weights = _linear_softmax_problem(seed=2)
    hessian = jax.hessian(_regularized_loss)(
        theta.reshape(-1), features, labels, weights, 2.0, theta.shape)
    diag = laplace.ggn_precision(features, jax.nn.softmax(features @ theta),
                                 weights, 2.0, 'diag')
  np.testing.assert_allclose(diag, np.diag(hessian), atol=1e-5)


@pytest.mark.parametrize('structure', ['full', 'diag'])
def test_sampled_heads_have_the_posterior_mean_and_covariance(structure):
  features, theta, _, weights = _linear_softmax_problem(n=30, d=2, c=2)
  precision = laplace.ggn_precision(features, jax.nn.softmax(features @ theta),
                                    weights, 1.0, structure)
  heads = laplace.sample_heads(jax.random.key(0), theta, precision, 40000)
  flat = np.asarray(heads.reshape(40000, -1), np.float64)
  covariance = (np.linalg.inv(precision) if structure == 'full'
                else np.diag(1.0 / np.asarray(precision)))
  np.testing.assert_allclose(flat.mean(0), theta.reshape(-1), atol=0.03)
  np.testing.assert_allclose(np.cov(flat.T), covariance, atol=0.03)


def test_last_layer_finds_the_head_of_each_small_model():
  for name, shape in (('mlp', (4, 4, 1)), ('lenet', (16, 16, 1))):
    model = models.get(name, 3, 0.2)
    variables = model.init(jax.random.key(0), shape)
    images = jax.random.normal(jax.random.key(1), (5,) + shape)
    logits, embedding, _, _ = jax.jit(model.apply)(variables, images)
    theta = laplace.last_layer(variables.params, embedding.shape[-1], 3)
    np.testing.assert_allclose(
        laplace.with_bias_feature(embedding) @ theta, logits, atol=1e-4)


def test_last_layer_without_a_matching_head_is_a_clear_error():
  variables = models.get('mlp', 3, 0.2).init(jax.random.key(0), (4, 4, 1))
  with pytest.raises(errors.ConfigError, match='not one last layer'):
    laplace.last_layer(variables.params, 7, 3)


def test_laplace_log_probs_concentrate_with_a_strong_prior():
  model = models.get('mlp', 3, 0.2)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  images = jax.random.normal(jax.random.key(1), (20, 4, 4, 1))
  labeled = jnp.arange(20) < 8
  logits = model.apply(variables, images).logits
  loose = laplace.laplace_log_probs(
      jax.random.key(2), model, variables, images, labeled, num_samples=5,
      prior_precision=1.0)
  tight = laplace.laplace_log_probs(
      jax.random.key(2), model, variables, images, labeled, num_samples=5,
      prior_precision=1e12, structure='diag')
  assert loose.shape == (5, 20, 3)
  np.testing.assert_allclose(jnp.exp(jnp.sum(jnp.exp(loose), -1)), np.e,
                             rtol=1e-5)
  np.testing.assert_allclose(tight, jnp.broadcast_to(
      jax.nn.log_softmax(logits), tight.shape), atol=1e-3)
  assert np.abs(np.asarray(loose - tight)).max() > 0.05
