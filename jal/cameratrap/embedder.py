"""The embedding network: a CNN mapping an image to a 256-d feature.

Seed 001 trains a ResNet-50 on a different dataset and uses its 256-d
output as the feature of every crop, with two treatments: softmax
cross-entropy (a linear classifier on the embedding) or a triplet loss with
random semi-hard negatives on the L2-normalized embedding (`jal.triplet`).
Here the network is a small CNN sized for 28×28 digits; the same training
function pre-trains it on the source classes and fine-tunes it on the
labeled target set, and `embed` maps a pool to L2-normalized features in
fixed-size chunks.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jal import chunking
from jal import errors
from jal import models
from jal import train
from jal import triplet

LOSSES = ('triplet', 'cross_entropy')


class EmbeddingCNN(nnx.Module):
  """conv 3×3 (32) → ReLU → max-pool → conv 3×3 (64) → ReLU → max-pool →
  fc `embedding_size` (linear).

  `__call__` returns `(embedding, embedding)`: a `jal.models.Model` whose
  "logits" are the embedding, to which the losses attach their own heads.
  """

  def __init__(self, in_channels: int, *, image_size: int,
               embedding_size: int, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_channels, 32, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
    side = image_size // 4
    if side < 1:
      raise errors.ConfigError(
          f'The embedder needs images of at least 4x4, got {image_size}.')
    self.fc = nnx.Linear(side * side * 64, embedding_size, rngs=rngs)

  def __call__(self, images: jax.Array, *, train: bool = False,
               dropout_key: jax.Array | None = None):
    del train, dropout_key
    x = nnx.max_pool(jax.nn.relu(self.conv1(images)), (2, 2), (2, 2))
    x = nnx.max_pool(jax.nn.relu(self.conv2(x)), (2, 2), (2, 2))
    embedding = self.fc(x.reshape(x.shape[0], -1))
    return embedding, embedding


def network(embedding_size: int) -> models.Model:
  """The embedder as a `jal.models.Model`."""
  return models.from_nnx(lambda shape, rngs: EmbeddingCNN(
      shape[-1], image_size=min(shape[:2]), embedding_size=embedding_size,
      rngs=rngs))


class Params(NamedTuple):
  """The embedder's parameters and its cross-entropy head.

  Attributes:
    variables: the network's `jal.models.Variables`.
    head: `{'w': [D, K], 'b': [K]}`, the linear classifier on ReLU(embedding)
      that the cross-entropy loss trains (unused by the triplet loss).
  """
  variables: models.Variables
  head: dict


def init_head(key: jax.Array, embedding_size: int, num_classes: int) -> dict:
  """A fresh linear head, LeCun-normal weights and zero biases."""
  w = jax.nn.initializers.lecun_normal()(key, (embedding_size, num_classes))
  return dict(w=w, b=jnp.zeros((num_classes,), jnp.float32))


def init(key: jax.Array, image_shape: tuple[int, ...], embedding_size: int,
         num_classes: int) -> Params:
  """Fresh embedder parameters for images [H, W, C] and K classes."""
  net_key, head_key = jax.random.split(key)
  return Params(network(embedding_size).init(net_key, tuple(image_shape)),
                init_head(head_key, embedding_size, num_classes))


def loss_value(key: jax.Array, params: Params, images: jax.Array,
               labels: jax.Array, weights: jax.Array, *, loss: str,
               margin: float) -> jax.Array:
  """The training loss of one batch.

  Args:
    key: PRNG key (the triplet loss's random negatives).
    params: the embedder's `Params`.
    images: [B, H, W, C].
    labels: [B] int32.
    weights: [B] float32, 0 for padding rows.
    loss: one of `LOSSES`.
    margin: the triplet margin.

  Returns:
    The scalar loss.
  """
  embedding_size = params.head['w'].shape[0]
  embedding = network(embedding_size).apply(params.variables, images).embedding
  if loss == 'triplet':
    return triplet.semihard_triplet_loss(key, embedding, labels, weights,
                                         margin)
  logits = jax.nn.relu(embedding) @ params.head['w'] + params.head['b']
  return train.cross_entropy(logits, labels, weights)


@functools.partial(jax.jit, static_argnames=('loss', 'batch_size',
                                             'learning_rate'))
def _step(key, params, opt_state, images, labels, order, start, count, *,
          loss, margin, batch_size, learning_rate):
  """One Adam step on the batch at `order[start:start + batch_size]`."""
  tx = optax.adam(learning_rate)
  rows, weights = train.minibatch(order, start, count, batch_size)
  grads = jax.grad(
      lambda p: loss_value(key, p, images[rows], labels[rows], weights,
                           loss=loss, margin=margin))(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def fit(key: jax.Array, params: Params, images: jax.Array, labels: jax.Array,
        mask: jax.Array, *, loss: str, margin: float, batch_size: int,
        num_epochs: int, learning_rate: float) -> Params:
  """Trains the embedder (and its head) on the rows where `mask`, with Adam.

  Pre-training passes the source set with every row masked in;
  fine-tuning passes the pool with its labeled rows masked in. Each epoch
  visits the masked rows once in a random order (the last batch padded with
  weight 0, as `jal.train.fit_on_mask` does); the steps are dispatched from
  Python, one jitted step each, because XLA:CPU runs a convolution's
  gradient about 9× slower inside a `while_loop` than as its own program
  (`experiments/bench_cameratrap.py`).

  Args:
    key: PRNG key.
    params: the starting `Params`.
    images: [N, H, W, C] float32, standardized.
    labels: [N] int32; read only where `mask`.
    mask: [N] bool, the rows to train on.
    loss: `'triplet'` or `'cross_entropy'`.
    margin: the triplet margin.
    batch_size: rows per step.
    num_epochs: passes over the masked rows.
    learning_rate: Adam's step size.

  Returns:
    The trained `Params`.
  """
  images, labels, mask = map(jnp.asarray, (images, labels, mask))
  count = int(jnp.sum(mask))
  opt_state = optax.adam(learning_rate).init(params)
  for epoch in range(num_epochs):
    epoch_key = jax.random.fold_in(key, epoch)
    order = train.labeled_first_order(epoch_key, mask)
    for s in range(-(-count // batch_size)):
      params, opt_state = _step(
          jax.random.fold_in(epoch_key, s + 1), params, opt_state, images,
          labels, order, jnp.int32(s * batch_size), jnp.int32(count),
          loss=loss, margin=margin, batch_size=batch_size,
          learning_rate=learning_rate)
  return params


@functools.partial(jax.jit, static_argnames=('chunk_size',))
def embed(params: Params, images: jax.Array, *, chunk_size: int) -> jax.Array:
  """L2-normalized embeddings of every image, in fixed-size chunks.

  Args:
    params: the embedder's `Params`.
    images: [N, H, W, C] float32, standardized.
    chunk_size: rows per forward pass.

  Returns:
    [N, D] float32 with unit rows.
  """
  net = network(params.head['w'].shape[0])
  return chunking.map_rows(
      lambda x: triplet.l2_normalize(net.apply(params.variables, x).embedding),
      [images], chunk_size)


def check_loss(loss: str) -> None:
  if loss not in LOSSES:
    raise errors.ConfigError(
        f'embedding_loss={loss!r} is not a loss jal trains embedders with; '
        f'choose one of {", ".join(LOSSES)}.')
