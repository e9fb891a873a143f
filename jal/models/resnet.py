"""ResNet-18 with a CIFAR (3×3) or ImageNet (7×7, used by DeepAL+ on MNIST) stem."""

import jax
from flax import nnx


class BasicBlock(nnx.Module):
  """Two 3×3 convolutions with batch norm and an identity or 1×1 shortcut."""

  def __init__(self, in_channels: int, channels: int, stride: int, *,
               rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_channels, channels, (3, 3), strides=stride,
                          use_bias=False, rngs=rngs)
    self.bn1 = nnx.BatchNorm(channels, momentum=0.9, rngs=rngs)
    self.conv2 = nnx.Conv(channels, channels, (3, 3), use_bias=False, rngs=rngs)
    self.bn2 = nnx.BatchNorm(channels, momentum=0.9, rngs=rngs)
    if stride != 1 or in_channels != channels:
      self.shortcut_conv = nnx.Conv(in_channels, channels, (1, 1),
                                    strides=stride, use_bias=False, rngs=rngs)
      self.shortcut_bn = nnx.BatchNorm(channels, momentum=0.9, rngs=rngs)
    else:
      self.shortcut_conv = None
      self.shortcut_bn = None

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=not train))
    y = self.bn2(self.conv2(y), use_running_average=not train)
    if self.shortcut_conv is not None:
      x = self.shortcut_bn(self.shortcut_conv(x), use_running_average=not train)
    return jax.nn.relu(x + y)


class ResNet18(nnx.Module):
  """ResNet-18; the embedding is the 512-d globally pooled feature."""

  def __init__(self, in_channels: int, num_classes: int, *,
               stem: str = 'cifar', dropout_rate: float = 0.0, rngs: nnx.Rngs):
    if stem not in ('cifar', 'imagenet'):
      raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}.")
    self.stem = stem
    if stem == 'cifar':
      self.conv = nnx.Conv(in_channels, 64, (3, 3), use_bias=False, rngs=rngs)
    else:
      self.conv = nnx.Conv(in_channels, 64, (7, 7), strides=2, padding=3,
                           use_bias=False, rngs=rngs)
    self.bn = nnx.BatchNorm(64, momentum=0.9, rngs=rngs)
    blocks = []
    in_channels = 64
    for channels, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
      blocks.append(BasicBlock(in_channels, channels, stride, rngs=rngs))
      blocks.append(BasicBlock(channels, channels, 1, rngs=rngs))
      in_channels = channels
    self.blocks = nnx.List(blocks)
    self.dropout = nnx.Dropout(dropout_rate)
    self.head = nnx.Linear(512, num_classes, rngs=rngs)

  def __call__(self, images: jax.Array, *, train: bool = False,
               dropout_key: jax.Array | None = None):
    """Returns `(logits [B, C], embedding [B, 512], features)`.

    `features` are the outputs of the four stages (64 to 512 channels).

    Args:
      images: [B, H, W, C] float32.
      train: batch norm uses batch statistics (and updates its running
        averages) iff True.
      dropout_key: dropout before the head is applied iff a key is given.
    """
    x = jax.nn.relu(self.bn(self.conv(images), use_running_average=not train))
    if self.stem == 'imagenet':
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')
    stages = []
    for i, block in enumerate(self.blocks):
      x = block(x, train)
      if i % 2:
        stages.append(x)
    embedding = x.mean(axis=(1, 2))
    x = self.dropout(embedding, deterministic=dropout_key is None,
                     rngs=dropout_key)
    return self.head(x), embedding, tuple(stages)
