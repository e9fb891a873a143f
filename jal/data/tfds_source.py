"""TFDS sources: image classification datasets prepared by tensorflow-datasets.

tensorflow-datasets is an optional extra (`pip install tensorflow-datasets`);
it is imported only when such a dataset is loaded. jal never downloads: the
dataset must already be prepared in `data_dir` (or TFDS's default directory),
e.g. with `tfds build cifar10 --file_format=array_record --data_dir=<dir>`.
Datasets prepared as array_record are read through TFDS's random-access data
sources, which need no TensorFlow; ones prepared in the default tfrecord
format are read with `tfds.as_numpy`, which needs TensorFlow.
"""

import importlib.util
import sys

import numpy as np

from jal import errors
from jal.data import dataset

# Names jal has been used with; any TFDS image classification dataset with
# `train` and `test` splits works.
KNOWN = ('cifar10', 'cifar100', 'svhn_cropped')
_MODULE = 'tensorflow_datasets'
_SPLITS = ('train', 'test')
_CHUNK = 1024


def installed() -> bool:
  """Whether `tensorflow_datasets` can be imported, without importing it."""
  if _MODULE in sys.modules:
    return sys.modules[_MODULE] is not None
  return importlib.util.find_spec(_MODULE) is not None


def load_splits(name: str, data_dir: str | None) -> dataset.Splits:
  """Reads the prepared TFDS dataset `name`: train split, then test split.

  Args:
    name: a TFDS name, e.g. `"cifar10"` or `"mnist:3.0.1"`.
    data_dir: the TFDS data directory; None means TFDS's default.

  Returns:
    `Splits` with images [N, H, W, C] float32 in [0, 1] (uint8 pixels are
    divided by 255; float pixels are kept as they are).

  Raises:
    UnknownNameError: tensorflow_datasets does not import, or knows no
      dataset `name`.
    DatasetNotFoundError: the dataset is not prepared, or is prepared as
      tfrecord and TensorFlow is not installed.
    ConfigError: the dataset is not image classification with train and test
      splits.
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise errors.UnknownNameError(
        f'{name!r} needs tensorflow_datasets, which does not import ({e}). '
        'Run `pip install tensorflow-datasets importlib_resources pillow`.'
    ) from e
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  # Unknown names and configs raise ValueError, unknown versions AssertionError.
  except (ValueError, AssertionError) as e:
    reason = (str(e).splitlines() or [type(e).__name__])[0]
    raise errors.UnknownNameError(
        f'{name!r} is not a TFDS dataset either (TFDS says: {reason}); '
        '`tfds.list_builders()` lists the TFDS names.') from e
  if not builder.is_prepared():
    raise errors.DatasetNotFoundError(
        f'{name}: the TFDS dataset is not prepared in {builder.data_dir}, and '
        'jal does not download. Prepare it where the network is reachable '
        f'with `tfds build {name} --file_format=array_record '
        '--data_dir=<dir>`, then pass data_dir=<dir> or set JAL_DATA_DIR.')

  info = builder.info
  keys = info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2 and
          all(isinstance(k, str) for k in keys)):
    keys = ('image', 'label')
  image_key, label_key = keys
  missing = [k for k in keys if k not in info.features.keys()]
  missing += [s for s in _SPLITS if s not in info.splits]
  if missing:
    raise errors.ConfigError(
        f'{name}: TFDS dataset lacks {missing}; jal needs an image feature, '
        f'a class label feature and the splits {list(_SPLITS)}. Pick an image '
        'classification dataset.')
  num_classes = int(info.features[label_key].num_classes)

  arrays = []
  for split in _SPLITS:
    images, labels = _read_split(tfds, builder, split, image_key, label_key)
    arrays += [_to_unit_range(name, images), labels.astype(np.int32)]
  return dataset.Splits(*arrays, num_classes=num_classes)


def _read_split(tfds, builder, split: str, image_key: str,
                label_key: str) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(images [N, H, W, C], labels [N])` of one split, as stored."""
  try:
    source = builder.as_data_source(split=split)
  except NotImplementedError:  # Prepared as tfrecord: no random access.
    arrays = _read_with_tensorflow(tfds, builder, split)
    images, labels = np.asarray(arrays[image_key]), arrays[label_key]
  else:
    images, labels = _read_data_source(builder.name, source, image_key,
                                       label_key)
  if len(images) == 0:
    raise errors.CorruptDatasetError(
        f'{builder.name}: the {split} split is empty. Re-prepare the dataset.')
  return _with_channels(images), np.asarray(labels)


def _read_with_tensorflow(tfds, builder, split: str) -> dict[str, np.ndarray]:
  """The whole split as one batch, through `tf.data`."""
  try:
    return tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  except ImportError as e:
    raise errors.DatasetNotFoundError(
        f'{builder.name}: prepared in {builder.data_dir} as tfrecord, which '
        f'only TensorFlow reads ({e}). Either `pip install tensorflow-cpu`, '
        f'or re-prepare it as array_record with `tfds build {builder.name} '
        '--file_format=array_record --data_dir=<dir>`.') from e


def _read_data_source(name: str, source, image_key: str,
                      label_key: str) -> tuple[np.ndarray, np.ndarray]:
  """Copies a random-access split into arrays, `_CHUNK` examples a read."""
  size = len(source)
  images = np.empty((0,), np.uint8)
  labels = np.empty((size,), np.int64)
  for start in range(0, size, _CHUNK):
    indices = list(range(start, min(start + _CHUNK, size)))
    if hasattr(source, '__getitems__'):
      examples = source.__getitems__(indices)
    else:
      examples = [source[i] for i in indices]
    for i, example in zip(indices, examples):
      image = np.asarray(example[image_key])
      if i == 0:
        images = np.empty((size, *image.shape), image.dtype)
      elif image.shape != images.shape[1:]:
        raise errors.ConfigError(
            f'{name}: image {i} has shape {image.shape}, image 0 has '
            f'{images.shape[1:]}; jal needs images of one size.')
      images[i] = image
      labels[i] = example[label_key]
  return images, labels


def _with_channels(images: np.ndarray) -> np.ndarray:
  """[N, H, W] -> [N, H, W, 1]; [N, H, W, C] unchanged."""
  return images[..., None] if images.ndim == 3 else images


def _to_unit_range(name: str, images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [0, 1]; float images are taken as in [0, 1]."""
  if images.dtype == np.uint8:
    out = images.astype(np.float32)
    out /= 255
    return out
  if np.issubdtype(images.dtype, np.floating):
    return images.astype(np.float32)
  raise errors.ConfigError(
      f'{name}: images are {images.dtype}; jal reads uint8 or float images.')
