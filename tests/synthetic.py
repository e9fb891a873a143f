"""Small synthetic datasets for tests."""

import numpy as np

from jal import data


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
