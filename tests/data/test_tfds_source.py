"""Tests of the TFDS sources.

Most tests put a small fake `tensorflow_datasets` module in `sys.modules`, so
jal's conversion and error handling run whether or not TFDS is installed. Two
tests use the real package when it is installed: they prepare a tiny
array_record dataset in a temporary directory and read it back without
TensorFlow.
"""

import sys
import types

import numpy as np
import pytest

from jal import errors
from jal import data
from jal.data import tfds_source


class FakeNotFound(ValueError):
  pass


class FakeSource:
  """A random-access split, optionally without `__getitems__`."""

  def __init__(self, images, labels):
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {'image': self.images[i], 'label': np.int64(self.labels[i]),
            'id': f'example-{i}'}


class FakeBatchSource(FakeSource):

  def __getitems__(self, indices):
    return [self[i] for i in indices]


class FakeBuilder:
  """The parts of `tfds.core.DatasetBuilder` that jal uses."""

  def __init__(self, name, data_dir, splits, *, num_classes, prepared=True,
               file_format='array_record', has_tensorflow=False,
               source_cls=FakeBatchSource):
    self.name = name
    self.data_dir = f'{data_dir}/{name}/1.0.0'
    self.splits = splits
    self.prepared = prepared
    self.file_format = file_format
    self.has_tensorflow = has_tensorflow
    self.source_cls = source_cls
    self.info = types.SimpleNamespace(
        splits={s: object() for s in splits},
        features={'image': object(),
                  'label': types.SimpleNamespace(num_classes=num_classes)},
        supervised_keys=('image', 'label'))

  def is_prepared(self):
    return self.prepared

  def as_data_source(self, split):
    if self.file_format != 'array_record':
      raise NotImplementedError('Random access for TFRECORD not supported.')
    return self.source_cls(*self.splits[split])

  def as_dataset(self, split, batch_size):
    assert batch_size == -1
    if not self.has_tensorflow:
      raise ModuleNotFoundError("No module named 'tensorflow'")
    images, labels = self.splits[split]
    return {'image': images, 'label': labels}


def fake_splits(shape=(6, 5, 3), dtype=np.uint8, n_train=30, n_test=12):
  rng = np.random.default_rng(0)
  make = lambda n: (rng.integers(0, 256, (n, *shape)).astype(dtype),
                    np.arange(n) % 4)
  return {'train': make(n_train), 'test': make(n_test)}


@pytest.fixture
def fake_tfds(monkeypatch):
  """Installs a fake `tensorflow_datasets`; returns its builders and calls."""
  module = types.ModuleType('tensorflow_datasets')
  module.as_numpy = lambda tree: tree
  module.builders = {}
  module.calls = []

  def builder(name, data_dir=None):
    module.calls.append((name, data_dir))
    if name not in module.builders:
      raise FakeNotFound(f'Dataset {name} not found.')
    return module.builders[name](data_dir)

  module.builder = builder
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', module)
  return module


def add(fake, name, splits, **kwargs):
  fake.builders[name] = lambda data_dir: FakeBuilder(
      name, data_dir, splits, num_classes=4, **kwargs)


@pytest.mark.parametrize('source_cls', [FakeSource, FakeBatchSource])
def test_reads_data_source(fake_tfds, monkeypatch, tmp_path, source_cls):
  monkeypatch.setattr(tfds_source, '_CHUNK', 7)  # Several partial chunks.
  splits = fake_splits()
  add(fake_tfds, 'cifar10', splits, source_cls=source_cls)
  ds = data.load('cifar10', data_dir=tmp_path)

  assert fake_tfds.calls == [('cifar10', str(tmp_path))]
  assert ds.pool_images.shape == (30, 6, 5, 3)
  assert ds.test_images.shape == (12, 6, 5, 3)
  assert ds.pool_images.dtype == np.float32
  assert ds.pool_labels.dtype == np.int32
  assert ds.num_classes == 4
  np.testing.assert_array_equal(ds.pool_labels, splits['train'][1])
  np.testing.assert_array_equal(ds.test_labels, splits['test'][1])
  pool = splits['train'][0] / 255
  mean, std = pool.mean(axis=(0, 1, 2)), pool.std(axis=(0, 1, 2))
  np.testing.assert_allclose(ds.pool_images, (pool - mean) / std, atol=1e-5)
  np.testing.assert_allclose(ds.test_images,
                             (splits['test'][0] / 255 - mean) / std,
                             atol=1e-5)


def test_env_var_is_the_default_dir(fake_tfds, monkeypatch):
  add(fake_tfds, 'svhn_cropped', fake_splits())
  monkeypatch.setenv('JAL_DATA_DIR', '/somewhere')
  data.load('svhn_cropped')
  monkeypatch.delenv('JAL_DATA_DIR')
  data.load('svhn_cropped')
  assert fake_tfds.calls == [('svhn_cropped', '/somewhere'),
                             ('svhn_cropped', None)]


def test_grayscale_float_images_and_imbalance(fake_tfds):
  splits = fake_splits(shape=(4, 4), dtype=np.float32, n_train=40)
  for images, _ in splits.values():
    images /= 255
  add(fake_tfds, 'gray', splits)
  ds = data.load('gray-imb', seed=3)
  assert ds.pool_images.shape[1:] == (4, 4, 1)
  # 10 images a class -> 1:2:3:4 shares of 10, halves rounded up.
  assert np.bincount(ds.pool_labels).tolist() == [3, 5, 8, 10]


def test_nan_images_are_corrupt(fake_tfds):
  splits = fake_splits(dtype=np.float32)
  splits['test'][0][1, 2, 3, 0] = np.inf
  add(fake_tfds, 'broken', splits)
  with pytest.raises(errors.CorruptDatasetError, match='test split'):
    data.load('broken')


def test_tfrecord_with_tensorflow(fake_tfds):
  splits = fake_splits()
  add(fake_tfds, 'cifar100', splits, file_format='tfrecord',
      has_tensorflow=True)
  ds = data.load('cifar100', pool_size=10)
  np.testing.assert_array_equal(ds.pool_labels, splits['train'][1][:10])


def test_tfrecord_without_tensorflow(fake_tfds):
  add(fake_tfds, 'cifar100', fake_splits(), file_format='tfrecord')
  with pytest.raises(errors.DatasetNotFoundError) as info:
    data.load('cifar100', data_dir='/d')
  message = str(info.value)
  assert 'tfrecord' in message and '/d/cifar100/1.0.0' in message
  assert 'pip install tensorflow-cpu' in message
  assert '--file_format=array_record' in message


def test_not_prepared(fake_tfds):
  add(fake_tfds, 'cifar10', fake_splits(), prepared=False)
  with pytest.raises(errors.DatasetNotFoundError) as info:
    data.load('cifar10', data_dir='/d')
  message = str(info.value)
  assert 'not prepared in /d/cifar10/1.0.0' in message
  assert 'tfds build cifar10 --file_format=array_record' in message


def test_images_of_different_sizes(fake_tfds):
  splits = fake_splits()
  ragged = list(splits['train'][0])
  ragged[5] = ragged[5][:4]
  splits['train'] = (ragged, splits['train'][1])
  add(fake_tfds, 'ragged', splits)
  with pytest.raises(errors.ConfigError, match='image 5 has shape'):
    data.load('ragged')


def test_empty_split(fake_tfds):
  splits = fake_splits(n_test=0)
  add(fake_tfds, 'empty', splits)
  with pytest.raises(errors.CorruptDatasetError, match='test split is empty'):
    data.load('empty')


def test_missing_test_split(fake_tfds):
  add(fake_tfds, 'train_only', {'train': fake_splits()['train']})
  with pytest.raises(errors.ConfigError, match=r"lacks \['test'\]"):
    data.load('train_only')


def test_unknown_to_tfds(fake_tfds):
  with pytest.raises(errors.UnknownNameError) as info:
    data.load('nope')
  message = str(info.value)
  assert "Unknown dataset 'nope'" in message
  assert 'digits, mnist' in message and 'cifar10' in message
  assert 'not a TFDS dataset either (TFDS says: Dataset nope not found.)' in (
      message)


def test_available_with_tfds(fake_tfds):
  del fake_tfds
  assert {'cifar10', 'cifar100', 'svhn_cropped'} <= set(data.available())


def test_tfds_not_installed(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  assert 'cifar10' not in data.available()
  with pytest.raises(errors.UnknownNameError) as info:
    data.load('cifar10-imb')
  message = str(info.value)
  assert "Unknown dataset 'cifar10-imb'" in message
  assert 'digits' in message
  assert 'pip install tensorflow-datasets' in message


def tiny_builder_class(tfds):
  """A two-split image dataset that TFDS can prepare without TensorFlow."""

  class JalTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          # Tensor, not Image: encoding PNGs would need TensorFlow.
          features=tfds.features.FeaturesDict({
              'image': tfds.features.Tensor(shape=(6, 5, 3), dtype=np.uint8),
              'label': tfds.features.ClassLabel(num_classes=3)}),
          supervised_keys=('image', 'label'))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(14, 0),
              'test': self._generate_examples(5, 1)}

    def _generate_examples(self, n, seed):
      rng = np.random.default_rng(seed)
      for i in range(n):
        yield i, {'image': rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
                  'label': i % 3}

  return JalTinyImages


def test_real_tfds_array_record(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  builder = tiny_builder_class(tfds)(data_dir=str(tmp_path),
                                     file_format='array_record')
  builder.download_and_prepare()
  ds = data.load('jal_tiny_images', data_dir=tmp_path)
  assert ds.pool_images.shape == (14, 6, 5, 3)
  assert ds.test_images.shape == (5, 6, 5, 3)
  assert ds.num_classes == 3
  source = tfds.data_source('jal_tiny_images', data_dir=str(tmp_path),
                            download=False)
  for split, images, labels in [('train', ds.pool_images, ds.pool_labels),
                                ('test', ds.test_images, ds.test_labels)]:
    examples = [source[split][i] for i in range(len(source[split]))]
    np.testing.assert_array_equal(labels, [e['label'] for e in examples])
    raw = np.stack([e['image'] for e in examples]) / 255
    if split == 'train':
      mean, std = raw.mean(axis=(0, 1, 2)), raw.std(axis=(0, 1, 2))
    np.testing.assert_allclose(images, (raw - mean) / std, atol=1e-5)


def test_real_tfds_not_prepared_and_unknown(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  with pytest.raises(errors.DatasetNotFoundError, match='not prepared'):
    data.load('cifar10', data_dir=tmp_path)
  for name in ('jal_no_such_dataset', 'Bad Name!', 'cifar10:9.9.9'):
    with pytest.raises(errors.UnknownNameError, match='not a TFDS dataset'):
      data.load(name, data_dir=tmp_path)
