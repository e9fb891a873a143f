"""The small MNIST CNN of DeepAL (Huang 2021), a LeNet variant.

conv 5×5 (10) → max-pool → ReLU → conv 5×5 (20) → dropout → max-pool → ReLU →
fc 50 → ReLU [embedding] → dropout → fc C.
"""

import jax
from flax import nnx


def _max_pool_2x2(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class LeNet(nnx.Module):
  """DeepAL's MNIST network; the embedding is the 50-d fc activation."""

  def __init__(self, in_channels: int, num_classes: int, *,
               image_size: int = 28, dropout_rate: float = 0.5,
               embedding_size: int = 50, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_channels, 10, (5, 5), padding='VALID', rngs=rngs)
    self.conv2 = nnx.Conv(10, 20, (5, 5), padding='VALID', rngs=rngs)
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
      raise ValueError(f'LeNet needs images of at least 16x16, got {image_size}.')
    self.fc1 = nnx.Linear(side * side * 20, embedding_size, rngs=rngs)
    self.fc2 = nnx.Linear(embedding_size, num_classes, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, images: jax.Array, *, train: bool = False,
               dropout_key: jax.Array | None = None):
    """Returns `(logits [B, C], embedding [B, 50], features)`.

    `features` are the two convolutional stages' activations (after pooling
    and ReLU), for images [B, H, W, C].
    """
    del train
    conv_key, fc_key = (jax.random.split(dropout_key) if dropout_key is not None
                        else (None, None))
    stage1 = jax.nn.relu(_max_pool_2x2(self.conv1(images)))
    x = self.conv2(stage1)
    # DeepAL uses Dropout2d here: whole feature maps are dropped.
    x = nnx.Dropout(self.dropout.rate, broadcast_dims=(1, 2))(
        x, deterministic=conv_key is None, rngs=conv_key)
    stage2 = jax.nn.relu(_max_pool_2x2(x))
    embedding = jax.nn.relu(self.fc1(stage2.reshape(stage2.shape[0], -1)))
    x = self.dropout(embedding, deterministic=fc_key is None, rngs=fc_key)
    return self.fc2(x), embedding, (stage1, stage2)


class BayesianCNN(nnx.Module):
  """The MNIST network of BatchBALD (Kirsch et al. 2019), their BayesianNet.

  conv 5×5 (32) → dropout → max-pool → ReLU → conv 5×5 (64) → dropout →
  max-pool → ReLU → fc 128 → dropout → ReLU [embedding] → fc C. Both
  convolutional dropouts drop whole feature maps, as their MCDropout2d does.
  """

  def __init__(self, in_channels: int, num_classes: int, *,
               image_size: int = 28, dropout_rate: float = 0.5,
               rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_channels, 32, (5, 5), padding='VALID', rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, (5, 5), padding='VALID', rngs=rngs)
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
      raise ValueError(
          f'BayesianCNN needs images of at least 16x16, got {image_size}.')
    self.fc1 = nnx.Linear(side * side * 64, 128, rngs=rngs)
    self.fc2 = nnx.Linear(128, num_classes, rngs=rngs)
    self.rate = dropout_rate

  def __call__(self, images: jax.Array, *, train: bool = False,
               dropout_key: jax.Array | None = None):
    """Returns `(logits [B, C], embedding [B, 128], features)`."""
    del train
    keys = (jax.random.split(dropout_key, 3) if dropout_key is not None
            else (None,) * 3)
    maps = nnx.Dropout(self.rate, broadcast_dims=(1, 2))
    dense = nnx.Dropout(self.rate)
    x = maps(self.conv1(images), deterministic=keys[0] is None, rngs=keys[0])
    stage1 = jax.nn.relu(_max_pool_2x2(x))
    x = maps(self.conv2(stage1), deterministic=keys[1] is None, rngs=keys[1])
    stage2 = jax.nn.relu(_max_pool_2x2(x))
    x = dense(self.fc1(stage2.reshape(stage2.shape[0], -1)),
              deterministic=keys[2] is None, rngs=keys[2])
    embedding = jax.nn.relu(x)
    return self.fc2(embedding), embedding, (stage1, stage2)


class GalCNN(nnx.Module):
  """The MNIST network of Gal, Islam & Ghahramani (2017).

  conv 4×4 (32) → ReLU → conv 4×4 (32) → ReLU → max-pool → dropout 0.25 →
  fc 128 → ReLU [embedding] → dropout → fc C.
  """

  CONV_DROPOUT = 0.25

  def __init__(self, in_channels: int, num_classes: int, *,
               image_size: int = 28, dropout_rate: float = 0.5,
               rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_channels, 32, (4, 4), padding='VALID', rngs=rngs)
    self.conv2 = nnx.Conv(32, 32, (4, 4), padding='VALID', rngs=rngs)
    side = (image_size - 6) // 2
    if side < 1:
      raise ValueError(f'GalCNN needs images of at least 8x8, got {image_size}.')
    self.fc1 = nnx.Linear(side * side * 32, 128, rngs=rngs)
    self.fc2 = nnx.Linear(128, num_classes, rngs=rngs)
    self.rate = dropout_rate

  def __call__(self, images: jax.Array, *, train: bool = False,
               dropout_key: jax.Array | None = None):
    """Returns `(logits [B, C], embedding [B, 128], features)`."""
    del train
    conv_key, fc_key = (jax.random.split(dropout_key) if dropout_key is not None
                        else (None, None))
    stage1 = jax.nn.relu(self.conv1(images))
    x = _max_pool_2x2(jax.nn.relu(self.conv2(stage1)))
    stage2 = nnx.Dropout(self.CONV_DROPOUT)(
        x, deterministic=conv_key is None, rngs=conv_key)
    embedding = jax.nn.relu(self.fc1(stage2.reshape(stage2.shape[0], -1)))
    x = nnx.Dropout(self.rate)(embedding, deterministic=fc_key is None,
                               rngs=fc_key)
    return self.fc2(x), embedding, (stage1, stage2)
