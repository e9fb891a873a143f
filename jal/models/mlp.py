"""A multilayer perceptron for small images (the digits default)."""

from collections.abc import Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
  """Flatten, then `hidden_sizes` ReLU layers with dropout, then a linear head.

  The embedding is the last hidden activation (before dropout).
  """

  def __init__(self, in_features: int, num_classes: int, *,
               hidden_sizes: Sequence[int] = (256, 128),
               dropout_rate: float = 0.2, rngs: nnx.Rngs):
    sizes = (in_features, *hidden_sizes)
    self.hidden = nnx.List(
        [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
    self.dropout = nnx.Dropout(dropout_rate)
    self.head = nnx.Linear(sizes[-1], num_classes, rngs=rngs)

  def __call__(self, images: jax.Array, *, train: bool = False,
               dropout_key: jax.Array | None = None):
    """Returns `(logits [B, C], embedding [B, hidden_sizes[-1]], features)`.

    `features` holds every hidden activation (before dropout).

    Args:
      images: [B, H, W, C] float32.
      train: unused (no batch norm); kept for the shared model signature.
      dropout_key: dropout is applied iff a key is given.
    """
    del train
    x = images.reshape(images.shape[0], -1)
    keys = (jax.random.split(dropout_key, len(self.hidden))
            if dropout_key is not None else [None] * len(self.hidden))
    features = []
    for layer, key in zip(self.hidden, keys):
      features.append(jax.nn.relu(layer(x)))
      x = self.dropout(features[-1], deterministic=key is None, rngs=key)
    return self.head(x), features[-1], tuple(features)
