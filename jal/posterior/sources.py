"""MC dropout, deep ensembles and batch-norm-in-train-mode passes.

Each builder returns the fields of a `jal.posterior.Posterior` (see there)
for a model and a config (`posterior_samples` K, `eval_chunk`,
`consistent_dropout`, `ensemble_size`). The K (or M) axis is spread over all
devices with `jal.devices.map_sharded`.
"""

import jax
import jax.numpy as jnp

from jal import chunking
from jal import devices
from jal import models
from jal import predict


def single_model(model: models.Model, input_shape, config) -> dict:
  """The fields shared by every source built on one trained model."""

  def test_log_probs(variables, images):
    logits, _ = predict.predict(model, variables, images,
                                chunk_size=config.eval_chunk)
    return jax.nn.log_softmax(logits)

  return dict(init=lambda key: model.init(key, input_shape),
              fit=lambda fit_one, key, variables: fit_one(key, variables),
              point=lambda variables: variables,
              test_log_probs=test_log_probs)


def mc_dropout(model: models.Model, input_shape, config) -> dict:
  """K dropout passes; pass k uses `fold_in(key, k)`."""

  def sample(key, variables, images, labeled_mask, include_mask):
    del labeled_mask

    def one_pass(k, replicated):
      variables, images, include_mask = replicated
      logits, _ = predict.predict(
          model, variables, images, chunk_size=config.eval_chunk,
          key=jax.random.fold_in(key, k),
          consistent=config.consistent_dropout, include_mask=include_mask)
      return jax.nn.log_softmax(logits)

    return devices.map_sharded(one_pass, jnp.arange(config.posterior_samples),
                               (variables, images, include_mask),
                               config.posterior_samples)

  return dict(single_model(model, input_shape, config), sample=sample)


def member(variables, index: int):
  """Member `index` of stacked ensemble variables."""
  return jax.tree.map(lambda x: x[index], variables)


def ensemble(model: models.Model, input_shape, config) -> dict:
  """M members, each trained as one model would be, with its own key."""
  size = config.ensemble_size

  def members_log_probs(variables, images, include_mask=None):
    def one_member(variables, replicated):
      images, include_mask = replicated
      logits, _ = predict.predict(model, variables, images,
                                  chunk_size=config.eval_chunk,
                                  include_mask=include_mask)
      return jax.nn.log_softmax(logits)

    return devices.map_sharded(one_member, variables, (images, include_mask),
                               size)

  def sample(key, variables, images, labeled_mask, include_mask):
    del key, labeled_mask
    return members_log_probs(variables, images, include_mask)

  def test_log_probs(variables, images):
    log_probs = members_log_probs(variables, images)
    return jax.nn.logsumexp(log_probs, 0) - jnp.log(size)

  return dict(
      init=lambda key: jax.vmap(lambda k: model.init(k, input_shape))(
          jax.random.split(key, size)),
      fit=lambda fit_one, key, variables: jax.vmap(fit_one)(
          jax.random.split(key, size), variables),
      point=lambda variables: member(variables, 0),
      test_log_probs=test_log_probs, sample=sample)


def bn_train(model: models.Model, input_shape, config) -> dict:
  """K passes with batch norm on the batch statistics of each chunk.

  What DeepAL+'s "D" versions compute on its ResNet-18, which has no dropout
  layer: the network in training mode over batches of pool points, running
  statistics left untouched. Pass k shuffles the points of interest with
  `fold_in(key, k)` before chunking, so the passes differ through the batch
  compositions (with an unshuffled loader, as in DeepAL+'s code, they would
  coincide). On a model without batch norm every pass is the deterministic
  one.
  """
  def sample(key, variables, images, labeled_mask, include_mask):
    del labeled_mask
    n = images.shape[0]
    if include_mask is None:
      include_mask = jnp.ones((n,), bool)

    def one_pass(k, replicated):
      variables, images, include_mask = replicated
      noise = jax.random.uniform(jax.random.fold_in(key, k), (n,))
      shuffled = jnp.argsort(jnp.where(include_mask, noise, 2.0))

      def run(rows):  # positions in the shuffled order
        logits = model.apply(variables, images[shuffled[rows]],
                             train=True).logits
        return jax.nn.log_softmax(logits)

      out = chunking.map_masked(run, n, config.eval_chunk,
                                include_mask[shuffled])
      return jnp.zeros_like(out).at[shuffled].set(out)

    return devices.map_sharded(one_pass, jnp.arange(config.posterior_samples),
                               (variables, images, include_mask),
                               config.posterior_samples)

  return dict(single_model(model, input_shape, config), sample=sample)
