"""IDX sources: MNIST and the datasets that copy its file format.

An IDX file is a big-endian header (two zero bytes, a data type code, the
number of dimensions, then each dimension as a uint32) followed by the array.
jal reads the four files of a dataset,

  train-images-idx3-ubyte  train-labels-idx1-ubyte
  t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte

each raw or gzipped (`.gz`), from `<root>/<name>/` or else `<root>/` itself,
where `<root>` is the `data_dir` argument of `jal.data.load` or the
`JAL_DATA_DIR` variable.
"""

import gzip
import math
import os
import zlib

import numpy as np

from jal import errors
from jal.data import dataset

# Name -> number of classes.
DATASETS = {'mnist': 10, 'fashion_mnist': 10, 'kmnist': 10}
FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
         't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
_UNSIGNED_BYTE = 0x08


def read_idx(path: str, ndim: int) -> np.ndarray:
  """Reads an unsigned-byte IDX file, gzipped if `path` ends in `.gz`.

  Args:
    path: the file.
    ndim: the number of dimensions the file must have (1 labels, 3 images).

  Returns:
    uint8 array of the shape the header gives.

  Raises:
    CorruptDatasetError: bad gzip stream, bad magic number, or a size that
      does not match the header.
  """
  try:
    if path.endswith('.gz'):
      with gzip.open(path, 'rb') as f:
        raw = f.read()
    else:
      with open(path, 'rb') as f:
        raw = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise errors.CorruptDatasetError(
        f'{path}: not a complete gzip file ({e}). Download it again.') from e

  expected_magic = _UNSIGNED_BYTE << 8 | ndim
  magic = int.from_bytes(raw[:4], 'big') if len(raw) >= 4 else None
  if magic != expected_magic:
    found = 'fewer than 4 bytes' if magic is None else f'0x{magic:08x}'
    raise errors.CorruptDatasetError(
        f'{path}: bad magic number {found}, expected 0x{expected_magic:08x} '
        f'(unsigned bytes, {ndim} dimension{"s" * (ndim > 1)}). This is not '
        'the IDX file its name says; download it again.')
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise errors.CorruptDatasetError(
        f'{path}: truncated: expected a {header}-byte header, got '
        f'{len(raw)} bytes. Download it again.')
  shape = tuple(int(d) for d in np.frombuffer(raw, '>u4', ndim, offset=4))
  expected = header + math.prod(shape)
  if len(raw) != expected:
    what = 'truncated' if len(raw) < expected else 'too long'
    raise errors.CorruptDatasetError(
        f'{path}: {what}: expected {expected} bytes for shape {shape}, got '
        f'{len(raw)}. Download it again.')
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def find_files(name: str, root: str | None) -> list[str]:
  """Paths of the four IDX files of `name`, in the order of `FILES`.

  Looks in `<root>/<name>/`, then `<root>/`, and takes the first directory
  that holds all four; in a directory a raw file wins over its `.gz`.

  Raises:
    DatasetNotFoundError: naming every directory searched and what it lacked.
  """
  env = dataset.DATA_DIR_ENV
  how_to = (f'Download the four IDX files of {name} ({", ".join(FILES)}; raw '
            f'or .gz) into <dir>/{name}/, then set {env}=<dir> or pass '
            'data_dir=<dir>.')
  if not root:
    raise errors.DatasetNotFoundError(
        f'{name}: no data directory to search: data_dir is None and '
        f'{env} is not set. {how_to}')
  searched = []
  for directory in (os.path.join(root, name), root):
    if not os.path.isdir(directory):
      searched.append(f'  {directory}: no such directory')
      continue
    found, missing = [], []
    for stem in FILES:
      path = os.path.join(directory, stem)
      if os.path.isfile(path):
        found.append(path)
      elif os.path.isfile(path + '.gz'):
        found.append(path + '.gz')
      else:
        missing.append(stem + '[.gz]')
    if not missing:
      return found
    searched.append(f'  {directory}: missing {", ".join(missing)}')
  raise errors.DatasetNotFoundError(
      f'{name}: IDX files not found. Searched:\n' + '\n'.join(searched) +
      f'\n{how_to}')


def load_splits(name: str, root: str | None) -> dataset.Splits:
  """Reads the IDX dataset `name` (a key of `DATASETS`) under `root`.

  Returns:
    `Splits` with images [N, H, W, 1] float32 in [0, 1] in file order.

  Raises:
    DatasetNotFoundError: the files are missing.
    CorruptDatasetError: a file is malformed, or image and label counts of a
      split differ.
  """
  paths = find_files(name, root)
  arrays = []
  for images_path, labels_path in (paths[:2], paths[2:]):
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
      raise errors.CorruptDatasetError(
          f'count mismatch: {images_path} holds {images.shape[0]} images but '
          f'{labels_path} holds {labels.shape[0]} labels. Download both '
          'again.')
    if labels.size and labels.max() >= DATASETS[name]:
      raise errors.CorruptDatasetError(
          f'{labels_path}: label {labels.max()} is out of range for '
          f'{DATASETS[name]} classes. Download it again.')
    images = images[..., None].astype(np.float32)
    images /= 255
    arrays += [images, labels.astype(np.int32)]
  return dataset.Splits(*arrays, num_classes=DATASETS[name])
