"""Learning loss for active learning (LPL; Yoo & Kweon, CVPR 2019).

A small loss-prediction module reads the task model's intermediate features
(`models.Output.features`: per feature map GlobalAvgPool, Dense(interm_dim),
ReLU; the pieces concatenated, then Dense(1)) and is trained with the task
model (hook H4) to rank the examples of each batch by their cross-entropy:
pairs (i, B-1-i) of the batch, hinge `max(0, margin - sign(l_i - l_j)·(l̂_i -
l̂_j))` on detached target losses, sign(0) counted as -1 as in the LL4AL
code. The total loss is CE + weight·L_loss. After `detach_after_epoch`
epochs (default: 60% of the round's epochs, the original's 120 of 200) the
features feeding the module are detached, so the ranking loss no longer
shapes the backbone. The query is the b unlabeled points with the highest
predicted loss, among a random `subset_size` of them if set (the original
scores 10,000).

Defaults follow the original (margin 1, weight 1, interm_dim 128, SGD lr 0.1,
momentum 0.9, weight decay 5e-4 for the module). DeepAL+'s version: Adam at
lr 0.01 for the module (`lossnet_optimizer='adam'`, `lossnet_lr=0.01`),
`detach_after_epoch=20`, 20 more training epochs (`config.num_epochs`), the
whole pool scored. The original also warm-starts the task model across
cycles (`config.warm_start`); the module itself is fresh every round.
"""

import jax
import jax.numpy as jnp
import optax

from jal import errors
from jal import train
from jal.acquisition import ranges
from jal.acquisition.base import stateless, top_k_unlabeled


def dense_init(key: jax.Array, fan_in: int, fan_out: int) -> dict:
  """U(±1/√fan_in) weights and biases (PyTorch's Linear default)."""
  bound = 1.0 / jnp.sqrt(fan_in)
  w_key, b_key = jax.random.split(key)
  return {'w': jax.random.uniform(w_key, (fan_in, fan_out), minval=-bound,
                                  maxval=bound),
          'b': jax.random.uniform(b_key, (fan_out,), minval=-bound,
                                  maxval=bound)}


def pool_feature(feature: jax.Array) -> jax.Array:
  """[B, ..., C] → [B, C]: the mean over the spatial axes ([B, D] as is)."""
  if feature.ndim == 2:
    return feature
  return jnp.mean(feature, axis=tuple(range(1, feature.ndim - 1)))


def lossnet_init(key: jax.Array, features, interm_dim: int = 128) -> dict:
  """The loss-prediction module's parameters for features like `features`.

  Args:
    key: PRNG key.
    features: tuple of [B, ..., C_i] arrays (shapes are all that is read).
    interm_dim: width of each feature's hidden layer.

  Returns:
    {'hidden': one dense layer per feature, 'out': the final dense layer}.
  """
  keys = jax.random.split(key, len(features) + 1)
  hidden = [dense_init(k, f.shape[-1], interm_dim)
            for k, f in zip(keys[:-1], features)]
  return {'hidden': hidden,
          'out': dense_init(keys[-1], interm_dim * len(features), 1)}


def predicted_loss(params: dict, features) -> jax.Array:
  """The module's predicted loss.

  Args:
    params: from `lossnet_init`.
    features: tuple of [B, ..., C_i] arrays.

  Returns:
    [B] float32.
  """
  hidden = [jax.nn.relu(pool_feature(f) @ layer['w'] + layer['b'])
            for layer, f in zip(params['hidden'], features)]
  out = params['out']
  return (jnp.concatenate(hidden, axis=-1) @ out['w'] + out['b'])[:, 0]


def ranking_loss(predicted: jax.Array, target: jax.Array, weights: jax.Array,
                 margin: float = 1.0) -> jax.Array:
  """LL4AL's pairwise ranking loss over pairs (i, B-1-i), i < B/2.

  Args:
    predicted: [B] predicted losses l̂.
    target: [B] true losses l (treated as constants).
    weights: [B] row weights (0 for padding rows); a pair weighs the product.
    margin: ξ.

  Returns:
    [] the weighted mean over pairs of max(0, ξ - s·(l̂_i - l̂_j)), where
    s = +1 if l_i > l_j else -1.
  """
  half = predicted.shape[0] // 2
  target = jax.lax.stop_gradient(target)
  predicted_diff = (predicted - predicted[::-1])[:half]
  sign = jnp.where((target - target[::-1])[:half] > 0, 1.0, -1.0)
  pair_weights = (weights * weights[::-1])[:half]
  hinge = jnp.maximum(0.0, margin - sign * predicted_diff)
  return jnp.sum(pair_weights * hinge) / jnp.maximum(jnp.sum(pair_weights),
                                                     1.0)


def detach_epoch(info: train.StepInfo, detach_after_epoch: int | None,
                 detach_fraction: float) -> jax.Array:
  """[] the first epoch (from 0) whose features reach the module detached."""
  if detach_after_epoch is not None:
    return jnp.asarray(detach_after_epoch, jnp.int32)
  return jnp.floor(detach_fraction * info.num_epochs).astype(jnp.int32)


def lpl_objective(margin: float = 1.0, weight: float = 1.0,
                  detach_after_epoch: int | None = None,
                  detach_fraction: float = 0.6, interm_dim: int = 128,
                  lossnet_optimizer: str = 'sgd', lossnet_lr: float = 0.1,
                  lossnet_momentum: float = 0.9,
                  lossnet_weight_decay: float = 5e-4,
                  **unused) -> train.Objective:
  """The LPL objective (hook H4) for the given hyperparameters."""
  del unused

  def init(key, output):
    if not output.features:
      raise errors.ConfigError(
          "Strategy 'lpl' reads the task model's intermediate features, but "
          'this model exposes none (its Output.features is empty: it returns '
          'logits or (logits, embedding) only). Use a built-in model '
          "(config.model 'mlp', 'lenet' or 'resnet18'), or have your model "
          'return (logits, embedding, features), features being a tuple of '
          '[B, ...] stage activations.')
    batch_size = output.logits.shape[0]
    if batch_size % 2:
      raise errors.ConfigError(
          "Strategy 'lpl' pairs row i of each batch with row B-1-i, so "
          f'config.batch_size must be even; got {batch_size}.')
    return lossnet_init(key, output.features, interm_dim)

  def loss(aux_params, output, labels, weights, unlabeled_output, info):
    del unlabeled_output
    detached = info.epoch >= detach_epoch(info, detach_after_epoch,
                                          detach_fraction)
    features = [jnp.where(detached, jax.lax.stop_gradient(f), f)
                for f in output.features]
    target = optax.softmax_cross_entropy_with_integer_labels(
        output.logits, jnp.maximum(labels, 0))
    return weight * ranking_loss(predicted_loss(aux_params, features), target,
                                 weights, margin)

  tx = train.make_optimizer(lossnet_optimizer, lossnet_lr, lossnet_momentum,
                            lossnet_weight_decay)
  return train.Objective(init=init, tx=tx, loss=loss)


def random_subset(key: jax.Array, candidates: jax.Array,
                  subset_size: int) -> jax.Array:
  """[N] bool: `subset_size` of the `candidates` ([N] bool) drawn uniformly
  (all of them if fewer)."""
  n = candidates.shape[0]
  noise = jnp.where(candidates, jax.random.uniform(key, (n,)), -1.0)
  _, rows = jax.lax.top_k(noise, min(subset_size, n))
  return jnp.zeros(n, bool).at[rows].set(True) & candidates


def _select(key, inputs, labeled_mask, query_size, margin: float = 1.0,
            weight: float = 1.0, detach_after_epoch: int | None = None,
            detach_fraction: float = 0.6, interm_dim: int = 128,
            lossnet_optimizer: str = 'sgd', lossnet_lr: float = 0.1,
            lossnet_momentum: float = 0.9, lossnet_weight_decay: float = 5e-4,
            subset_size: int | None = None):
  del margin, weight, detach_after_epoch, detach_fraction, interm_dim
  del lossnet_optimizer, lossnet_lr, lossnet_momentum, lossnet_weight_decay
  scores = predicted_loss(inputs['aux_params'], inputs['features'])
  if subset_size is not None:
    if subset_size < query_size:
      raise errors.ConfigError(
          f'config.hparams.lpl.subset_size ({subset_size}) must be at least '
          f'the query size ({query_size}): the query is drawn from the '
          'subset.')
    subset = random_subset(key, ~labeled_mask, int(subset_size))
    scores = jnp.where(subset, scores, -jnp.inf)
  return top_k_unlabeled(scores, labeled_mask, query_size)


STRATEGIES = (
    stateless(
        'lpl', ('features', 'aux_params'), _select, objective=lpl_objective,
        ranges=dict(
            margin=ranges.NON_NEGATIVE, weight=ranges.NON_NEGATIVE,
            detach_after_epoch=ranges.optional(
                ranges.NON_NEGATIVE_INT, 'at detach_fraction of the epochs'),
            detach_fraction=ranges.interval(0.0, 1.0),
            interm_dim=ranges.POSITIVE_INT,
            lossnet_optimizer=ranges.one_of('sgd', 'adam'),
            lossnet_lr=ranges.interval(0.0, 10.0, low_open=True),
            lossnet_momentum=ranges.interval(0.0, 1.0, high_open=True),
            lossnet_weight_decay=ranges.NON_NEGATIVE,
            subset_size=ranges.optional(ranges.POSITIVE_INT,
                                        'the whole unlabeled pool'))),
)
