"""The `digits` source: scikit-learn's bundled 8x8 digits, no download needed.

1797 images of the ten digits, 16 grey levels. jal splits them into a pool and
a 500-image test set, stratified by class.
"""

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
