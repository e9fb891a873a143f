"""The `digits` source: scikit-learn's bundled 8x8 digits, no download needed.

1797 images of the ten digits, 16 grey levels. jal splits them into a pool and
a 500-image test set, stratified by class.
"""

import os

import numpy as np

from jal.data import dataset

TEST_SIZE = 500
NUM_CLASSES = 10
_MAX_VALUE = 16.0


def load_splits(seed: int) -> dataset.Splits:
  """Loads digits, split by `seed` into 1297 training and 500 test images.

  Args:
    seed: a non-negative int; the same seed gives the same split.

  Returns:
    `Splits` with images [N, 8, 8, 1] float32 in [0, 1]; the training split
    is in the shuffled order the split produced.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top

  bunch = datasets.load_digits()
  images = (np.asarray(bunch.images, np.float32) / _MAX_VALUE)[..., None]
  labels = np.asarray(bunch.target, np.int32)
  (train_images, test_images, train_labels,
   test_labels) = model_selection.train_test_split(
       images, labels, test_size=TEST_SIZE, stratify=labels, random_state=seed)
  return dataset.Splits(train_images, train_labels, test_images, test_labels,
                        NUM_CLASSES)


def uint8_images(image_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
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


def write_image_folder(root, *, labeled_per_class: int = 0,
                       num_unlabeled: int = 200, image_size: int = 8,
                       seed: int = 0, test_root=None,
                       test_per_class: int = 0) -> dict[str, int]:
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
  images, labels = uint8_images(image_size)
  order = np.random.default_rng(seed).permutation(labels.shape[0])
  labeled = [i for c in range(10) for i in order[labels[order] == c]
             [:labeled_per_class]]
  taken = set(labeled)
  held_out = []
  if test_root is not None:
    held_out = [i for c in range(10)
                for i in [j for j in order[labels[order] == c]
                          if j not in taken][:test_per_class]]
  taken |= set(held_out)
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
  for i in held_out:
    path = os.path.join(test_root, str(labels[i]), f'{i:04d}.png')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(images[i]).save(path)
  return written
