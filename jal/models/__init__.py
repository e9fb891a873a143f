"""Models and their functional boundary.

Every model is a flax NNX module whose call is
`model(images, *, train, dropout_key) -> (logits [B, C], embedding [B, D])`.
Outside this package models are handled functionally: `init` splits a module
once into a static `graphdef` and a `Variables` pytree, and `apply` is a pure
function of both, so it can be jitted, vmapped over keys (MC dropout) or over
stacked variables (ensembles).
"""

from typing import Any, NamedTuple

import jax
from flax import nnx

from jal import errors
from jal.models.cnn import LeNet
from jal.models.mlp import MLP
from jal.models.resnet import ResNet18


class Variables(NamedTuple):
  """A model's arrays: trainable `params` and batch-norm `batch_stats`."""
  params: Any
  batch_stats: Any


def _build(name: str, image_shape, num_classes: int, dropout_rate: float,
           rngs: nnx.Rngs) -> nnx.Module:
  height, width, channels = image_shape
  if name == 'mlp':
    return MLP(height * width * channels, num_classes,
               dropout_rate=dropout_rate, rngs=rngs)
  if name == 'lenet':
    return LeNet(channels, num_classes, image_size=height,
                 dropout_rate=dropout_rate, rngs=rngs)
  if name in ('resnet18', 'resnet18_imagenet_stem'):
    stem = 'cifar' if name == 'resnet18' else 'imagenet'
    return ResNet18(channels, num_classes, stem=stem,
                    dropout_rate=dropout_rate, rngs=rngs)
  raise errors.UnknownNameError(
      f'Unknown model {name!r}. Valid names: {", ".join(NAMES)}.')


NAMES = ('mlp', 'lenet', 'resnet18', 'resnet18_imagenet_stem')


def init(key: jax.Array, name: str, image_shape: tuple[int, int, int],
         num_classes: int, dropout_rate: float):
  """Builds model `name` and returns `(graphdef, variables)`.

  Args:
    key: PRNG key for the initial weights.
    name: one of `NAMES`.
    image_shape: (H, W, C) of one input image.
    num_classes: number of output logits.
    dropout_rate: rate of every dropout layer (used only when `apply` gets a
      dropout key, which makes MC dropout possible on every model).

  Returns:
    `graphdef`, static and hashable; `Variables` of arrays.
  """
  model = _build(name, tuple(image_shape), num_classes, dropout_rate,
                 nnx.Rngs(params=key))
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return graphdef, Variables(params, batch_stats)


def apply(graphdef, variables: Variables, images: jax.Array, *,
          train: bool = False, dropout_key: jax.Array | None = None):
  """Runs the model as a pure function.

  Args:
    graphdef: from `init`.
    variables: from `init` or training.
    images: [B, H, W, C] float32.
    train: batch norm uses (and updates) batch statistics iff True.
    dropout_key: dropout is active iff given.

  Returns:
    logits [B, C], embedding [B, D], and the new `Variables` (batch
    statistics updated when `train`).
  """
  model = nnx.merge(graphdef, variables.params, variables.batch_stats,
                    copy=True)
  logits, embedding = model(images, train=train, dropout_key=dropout_key)
  _, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return logits, embedding, Variables(params, batch_stats)
