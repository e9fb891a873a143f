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
