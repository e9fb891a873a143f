"""Small synthetic datasets for tests."""

import os

import numpy as np
from flax import linen

from jal import data
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


def digits_uint8(image_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's digits as 8-bit images, scaled up without interpolation.

  Args:
    image_size: side in pixels, a multiple of 8; each source pixel becomes an
      `image_size // 8` square block.

  Returns:
    `(images, labels)`: [1797, image_size, image_size] uint8 (grey level
    `round(v * 255 / 16)` of the source's 0..16) and [1797] int labels.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  if image_size % 8:
    raise ValueError(f'image_size={image_size} is not a multiple of 8.')
  bunch = datasets.load_digits()
  images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
  block = image_size // 8
  images = images.repeat(block, axis=1).repeat(block, axis=2)
  return images, np.asarray(bunch.target, np.int64)


def write_digits_image_folder(root, *, labeled_per_class: int = 0,
                              num_unlabeled: int = 200, image_size: int = 8,
                              seed: int = 0) -> dict[str, int]:
  """Writes digits as grayscale PNGs in `jal.data.image_folder`'s layout.

  `root/<digit>/<index>.png` holds `labeled_per_class` images of each digit
  and `root/unlabeled/<index>.png` holds `num_unlabeled` other images, where
  `<index>` is the image's 4-digit index in scikit-learn's digits. Which
  images are written is drawn from `seed`.

  Returns:
    {id: true label} for every image written, ids as `image_folder` makes
    them (e.g. `"3/0042.png"`, `"unlabeled/1200.png"`).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images, labels = digits_uint8(image_size)
  order = np.random.default_rng(seed).permutation(labels.shape[0])
  labeled = [i for c in range(10) for i in order[labels[order] == c]
             [:labeled_per_class]]
  taken = set(labeled)
  unlabeled = [i for i in order if i not in taken][:num_unlabeled]
  if len(unlabeled) < num_unlabeled:
    raise ValueError(f'num_unlabeled={num_unlabeled}, but only '
                     f'{len(unlabeled)} digits are left.')
  written = {}
  for folder, chosen in (('{}', labeled), ('unlabeled', unlabeled)):
    for i in chosen:
      item_id = f'{folder.format(labels[i])}/{i:04d}.png'
      os.makedirs(os.path.join(root, os.path.dirname(item_id)), exist_ok=True)
      Image.fromarray(images[i]).save(os.path.join(root, item_id))
      written[item_id] = int(labels[i])
  return written
