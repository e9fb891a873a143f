"""Dataset names and `load`, which turns a name into a ready `Dataset`.

`load` reads a source's train and test splits, keeps the first `pool_size`
training images as the pool, optionally subsamples the pool to imbalanced
class ratios (`-imb`), and standardizes pool and test with the pool's
per-channel statistics.
"""

import os

import numpy as np

from jal import errors
from jal.data import dataset
from jal.data import digits
from jal.data import idx
from jal.data import preprocess
from jal.data import tfds_source

IMBALANCED_SUFFIX = '-imb'
# Keeps the imbalance draw independent of the digits split, which uses `seed`.
_IMBALANCE_STREAM = 1
# Repeated MNIST (Kirsch et al. 2019): every pool image three times, each copy
# with its own Gaussian noise of this std (in standardized units).
REPEATED_MNIST = 'repeated_mnist'
REPEATS = 3
REPEAT_NOISE_STD = 0.1
_REPEAT_STREAM = 2


def available() -> list[str]:
  """Names `load` accepts; each is also accepted with the suffix `-imb`.

  The TFDS names (cifar10, cifar100, svhn_cropped) are listed only when
  tensorflow-datasets is installed, and then any other TFDS image
  classification name is accepted too.
  """
  names = ['digits', *idx.DATASETS, REPEATED_MNIST]
  if tfds_source.installed():
    names += tfds_source.KNOWN
  return names


def load(name: str, data_dir: str | os.PathLike | None = None, seed: int = 0,
         pool_size: int | None = None) -> dataset.Dataset:
  """Loads a dataset as a pool and a test set.

  Sources: `digits` (scikit-learn's bundled 8x8 digits, split into 1297 pool
  and 500 test images by `seed`, stratified by class); `mnist`,
  `fashion_mnist`, `kmnist` (IDX files in `<root>/<name>/` or `<root>/`); any
  other name is looked up in tensorflow-datasets, if installed, among
  datasets already prepared in `<root>` (TFDS's default directory if there is
  no root). `<root>` is `data_dir`, else the `JAL_DATA_DIR` variable.

  `repeated_mnist` is BatchBALD's Repeated MNIST (Kirsch et al. 2019): the
  MNIST pool (its first `pool_size` images) three times over, image i's copies
  at rows i, P + i and 2P + i, each copy plus its own N(0, 0.1²) noise drawn
  from `seed` after standardization (their code adds it to normalized
  images); the test set is MNIST's.

  Pool: the source's training split, cut to its first `pool_size` images.
  With the suffix `-imb` (e.g. `mnist-imb`), the pool is then subsampled to
  class ratios 1:2:…:C: class `c` (0-based) keeps `round(n * (c + 1) / C)`
  images, halves rounded up, with `n` the largest top-class size every class
  can supply (`preprocess.imbalanced_counts`); on a balanced pool class C-1
  keeps all its images.
  Which images are kept is drawn from `seed`; the kept ones stay in pool
  order. The test set is never subsampled.

  Images are scaled to [0, 1], then standardized per channel with the mean and
  std of the final pool; the test set uses the same statistics.

  Args:
    name: one of `available()`, optionally with `-imb`, or a TFDS name.
    data_dir: directory holding the dataset files.
    seed: non-negative int; picks the digits split and the `-imb` subsample.
    pool_size: keep only this many training images (DeepAL+ uses the first
      40000 of MNIST); None keeps all.

  Returns:
    A `Dataset` named `name`.

  Raises:
    UnknownNameError: `name` is not a dataset jal knows.
    DatasetNotFoundError: the dataset's files are not in `data_dir`.
    CorruptDatasetError: the files are malformed or hold NaN or inf.
    ConfigError: `seed` or `pool_size` is out of range.
  """
  if not isinstance(name, str):
    raise errors.UnknownNameError(
        f'Dataset name {name!r} is not a string; use one of {available()}.')
  if not _is_int(seed) or seed < 0:
    raise errors.ConfigError(f'seed={seed!r}; use a non-negative int.')
  base = name.removesuffix(IMBALANCED_SUFFIX)
  root = dataset.data_root(data_dir)
  splits = _load_splits(name, base, root, int(seed))
  dataset.check_splits(name, splits)

  pool_images, pool_labels = splits.train_images, splits.train_labels
  num_train = pool_labels.shape[0]
  if pool_size is not None:
    if not _is_int(pool_size) or not 1 <= pool_size <= num_train:
      raise errors.ConfigError(
          f'pool_size={pool_size!r}, but {name} has {num_train} training '
          f'images; use an int in [1, {num_train}], or None for all.')
    pool_images = pool_images[:pool_size]
    pool_labels = pool_labels[:pool_size]
  if name.endswith(IMBALANCED_SUFFIX):
    rng = np.random.default_rng([_IMBALANCE_STREAM, int(seed)])
    keep = preprocess.imbalanced_indices(rng, pool_labels, splits.num_classes)
    pool_images, pool_labels = pool_images[keep], pool_labels[keep]

  pool_images, test_images = preprocess.standardize(pool_images,
                                                    splits.test_images)
  if base == REPEATED_MNIST:
    pool_images, pool_labels = _repeat_with_noise(pool_images, pool_labels,
                                                  int(seed))
  return dataset.Dataset(pool_images, pool_labels, test_images,
                         splits.test_labels, splits.num_classes, name)


def _load_splits(name: str, base: str, root: str | None,
                 seed: int) -> dataset.Splits:
  """Dispatches `base` to its source."""
  if base == 'digits':
    return digits.load_splits(seed)
  if base in idx.DATASETS:
    return idx.load_splits(base, root)
  if base == REPEATED_MNIST:
    return idx.load_splits('mnist', root)
  unknown = (f'Unknown dataset {name!r}. jal knows {", ".join(available())}, '
             f'each also with the suffix {IMBALANCED_SUFFIX!r}.')
  if not tfds_source.installed():
    raise errors.UnknownNameError(
        f'{unknown} `pip install tensorflow-datasets` enables TFDS names such '
        f'as {", ".join(tfds_source.KNOWN)}.')
  try:
    return tfds_source.load_splits(base, root)
  except errors.UnknownNameError as e:
    raise errors.UnknownNameError(f'{unknown} {e}') from e


def _repeat_with_noise(images: np.ndarray, labels: np.ndarray,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`REPEATS` copies of the pool, each with its own Gaussian noise."""
  rng = np.random.default_rng([_REPEAT_STREAM, seed])
  copies = np.concatenate([images] * REPEATS)
  noise = rng.normal(0.0, REPEAT_NOISE_STD, copies.shape).astype(images.dtype)
  return copies + noise, np.concatenate([labels] * REPEATS)


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
