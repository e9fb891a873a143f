"""What dataset sources share: their records and where they look for files.

A source reads one dataset's files into `Splits` (images scaled to [0, 1]); the
catalog turns `Splits` into a `Dataset` (pool cut, imbalance, standardization).
`check_splits` is the one place that rejects malformed source output.
"""

import os
from typing import NamedTuple

import numpy as np

from jal import errors

DATA_DIR_ENV = 'JAL_DATA_DIR'


class Splits(NamedTuple):
  """A dataset as its source stores it, before jal's preprocessing.

  Attributes:
    train_images: [N, H, W, C] float32 in [0, 1].
    train_labels: [N] int32 in [0, num_classes).
    test_images: [M, H, W, C] float32 in [0, 1].
    test_labels: [M] int32.
    num_classes: number of classes C.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int


class Dataset(NamedTuple):
  """An unlabeled pool and a test set, ready for an active learning run.

  Attributes:
    pool_images: [N, H, W, C] float32, standardized per channel with the
      pool's own mean and standard deviation.
    pool_labels: [N] int32, revealed only through the oracle.
    test_images: [M, H, W, C] float32, standardized with the pool's statistics.
    test_labels: [M] int32.
    num_classes: number of classes C; labels lie in [0, C).
    name: the name the dataset was loaded by, e.g. `"mnist-imb"`.
  """
  pool_images: np.ndarray
  pool_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  name: str


def check_splits(name: str, splits: Splits) -> None:
  """Raises `CorruptDatasetError` unless `splits` is well formed.

  Checks ranks, matching image/label counts, label range and that every pixel
  is finite.
  """
  for split in ('train', 'test'):
    images = getattr(splits, f'{split}_images')
    labels = getattr(splits, f'{split}_labels')
    where = f'{name} ({split} split)'
    if images.ndim != 4:
      raise errors.CorruptDatasetError(
          f'{where}: images have shape {images.shape}, expected [N, H, W, C]. '
          'The files do not hold an image classification dataset.')
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
      raise errors.CorruptDatasetError(
          f'{where}: {images.shape[0]} images but labels of shape '
          f'{labels.shape}. Re-download or re-prepare the dataset.')
    if labels.size and (labels.min() < 0 or labels.max() >= splits.num_classes):
      raise errors.CorruptDatasetError(
          f'{where}: labels span [{labels.min()}, {labels.max()}], outside '
          f'[0, {splits.num_classes}). Re-download or re-prepare the dataset.')
    bad = np.size(images) - np.count_nonzero(np.isfinite(images))
    if bad:
      raise errors.CorruptDatasetError(
          f'{where}: {bad} pixel values are NaN or infinite. Re-download or '
          're-prepare the dataset.')
  if splits.train_images.shape[1:] != splits.test_images.shape[1:]:
    raise errors.CorruptDatasetError(
        f'{name}: train images are {splits.train_images.shape[1:]} but test '
        f'images are {splits.test_images.shape[1:]}.')


def data_root(data_dir: str | os.PathLike | None) -> str | None:
  """`data_dir` as a string, else `$JAL_DATA_DIR`, else None."""
  if data_dir is not None:
    return os.fspath(data_dir)
  return os.environ.get(DATA_DIR_ENV) or None
