"""Small synthetic datasets for tests."""

import os

import numpy as np
from flax import linen

from jal import data
from jal.data import digits
from jal import models


def make_blobs_dataset(num_pool=120, num_test=60, num_classes=3, side=4,
                       seed=0) -> data.Dataset:
  """Separable Gaussian blobs shaped as [side, side, 1] images."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(0, 3, (num_classes, side * side))

  def draw(n):
    labels = rng.integers(0, num_classes, n).astype(np.int32)
    images = centers[labels] + rng.normal(0, 1, (n, side * side))
    return images.reshape(n, side, side, 1).astype(np.float32), labels

  pool_images, pool_labels = draw(num_pool)
  test_images, test_labels = draw(num_test)
  return data.Dataset(pool_images, pool_labels, test_images, test_labels,
                      num_classes, 'blobs')


class _BatchNormNet(linen.Module):
  """Dense → batch norm → ReLU → Dense: the smallest net with batch norm."""

  @linen.compact
  def __call__(self, x, train: bool = False):
    x = linen.Dense(16)(x.reshape(x.shape[0], -1))
    embedding = linen.relu(linen.BatchNorm(use_running_average=not train)(x))
    return linen.Dense(3)(embedding), embedding


def batch_norm_model() -> models.Model:
  """A 3-class model with batch norm, quick to compile (for `bn_train`)."""
  return models.from_linen(_BatchNormNet())


# Digits as PNG folders live in the library, for demos of image folders.
digits_uint8 = digits.uint8_images
write_digits_image_folder = digits.write_image_folder
