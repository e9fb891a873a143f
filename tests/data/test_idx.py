"""Tests of the IDX sources (mnist, fashion_mnist, kmnist), synthetic files."""

import gzip
import os

import numpy as np
import pytest

from jal import errors
from jal import data
from jal.data import idx

FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
         't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def idx_bytes(array: np.ndarray) -> bytes:
  """An unsigned-byte IDX file holding `array`, written out by hand."""
  header = bytes([0, 0, 0x08, array.ndim])
  for dim in array.shape:
    header += dim.to_bytes(4, 'big')
  return header + array.astype(np.uint8).tobytes()


def write(path, payload: bytes, gz: bool) -> str:
  path = os.fspath(path) + ('.gz' if gz else '')
  with (gzip.open if gz else open)(path, 'wb') as f:
    f.write(payload)
  return path


def fake_mnist(directory, *, n_train=50, n_test=20, gz=False, seed=0):
  """Writes four IDX files of random 28x28 images; returns the raw arrays."""
  rng = np.random.default_rng(seed)
  arrays = {
      FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
      FILES[1]: (np.arange(n_train) * 7 % 10).astype(np.uint8),
      FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
      FILES[3]: (np.arange(n_test) % 10).astype(np.uint8),
  }
  os.makedirs(directory, exist_ok=True)
  for stem, array in arrays.items():
    write(os.path.join(directory, stem), idx_bytes(array), gz)
  return [arrays[stem] for stem in FILES]


@pytest.mark.parametrize('gz', [False, True])
@pytest.mark.parametrize('subdir', ['mnist', ''])
def test_round_trip(tmp_path, gz, subdir):
  train_images, train_labels, test_images, test_labels = fake_mnist(
      tmp_path / subdir, gz=gz)
  ds = data.load('mnist', data_dir=tmp_path)

  assert ds.pool_images.shape == (50, 28, 28, 1)
  assert ds.test_images.shape == (20, 28, 28, 1)
  assert ds.pool_images.dtype == ds.test_images.dtype == np.float32
  assert ds.pool_labels.dtype == ds.test_labels.dtype == np.int32
  np.testing.assert_array_equal(ds.pool_labels, train_labels)
  np.testing.assert_array_equal(ds.test_labels, test_labels)
  assert ds.num_classes == 10 and ds.name == 'mnist'

  pool = train_images.astype(np.float64) / 255
  mean, std = pool.mean(), pool.std()
  np.testing.assert_allclose(ds.pool_images.mean(axis=(0, 1, 2)), [0],
                             atol=1e-5)
  np.testing.assert_allclose(ds.pool_images.std(axis=(0, 1, 2)), [1],
                             rtol=1e-5)
  np.testing.assert_allclose(ds.pool_images[..., 0], (pool - mean) / std,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ds.test_images[..., 0],
                             (test_images / 255 - mean) / std,
                             rtol=1e-5, atol=1e-5)


def test_env_var_is_the_default_dir(tmp_path, monkeypatch):
  fake_mnist(tmp_path / 'fashion_mnist', gz=True)
  monkeypatch.setenv('JAL_DATA_DIR', os.fspath(tmp_path))
  assert data.load('fashion_mnist').pool_images.shape == (50, 28, 28, 1)


def test_raw_file_wins_over_gz(tmp_path):
  fake_mnist(tmp_path, gz=True, seed=1)
  raw = fake_mnist(tmp_path, gz=False, seed=2)
  paths = idx.find_files('mnist', os.fspath(tmp_path))
  assert not any(p.endswith('.gz') for p in paths)
  np.testing.assert_array_equal(idx.read_idx(paths[0], ndim=3), raw[0])


def test_pool_size_keeps_first_images(tmp_path):
  _, train_labels, _, _ = fake_mnist(tmp_path)
  ds = data.load('mnist', data_dir=tmp_path, pool_size=30)
  assert ds.pool_images.shape == (30, 28, 28, 1)
  np.testing.assert_array_equal(ds.pool_labels, train_labels[:30])
  assert ds.test_images.shape == (20, 28, 28, 1)


def test_imbalanced_subsample_depends_on_seed_only(tmp_path):
  fake_mnist(tmp_path, n_train=200)
  a = data.load('mnist-imb', data_dir=tmp_path, seed=0)
  b = data.load('mnist-imb', data_dir=tmp_path, seed=0)
  c = data.load('mnist-imb', data_dir=tmp_path, seed=1)
  np.testing.assert_array_equal(a.pool_images, b.pool_images)
  np.testing.assert_array_equal(np.bincount(a.pool_labels),
                                [2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
  np.testing.assert_array_equal(np.bincount(c.pool_labels),
                                np.bincount(a.pool_labels))
  assert not np.array_equal(a.pool_images, c.pool_images)
  assert a.test_images.shape == (20, 28, 28, 1)


def test_bad_magic(tmp_path):
  fake_mnist(tmp_path)
  labels = np.zeros(50, np.uint8)
  # A labels file where an images file belongs: magic 0x801, not 0x803.
  path = write(tmp_path / FILES[0], idx_bytes(labels), gz=False)
  with pytest.raises(errors.CorruptDatasetError) as info:
    data.load('mnist', data_dir=tmp_path)
  message = str(info.value)
  assert path in message
  assert 'bad magic number 0x00000801' in message
  assert 'expected 0x00000803' in message


def test_bad_dtype_byte(tmp_path):
  payload = bytearray(idx_bytes(np.zeros(5, np.uint8)))
  payload[2] = 0x0D  # float32 code
  path = write(tmp_path / 'labels', bytes(payload), gz=False)
  with pytest.raises(errors.CorruptDatasetError, match='bad magic number'):
    idx.read_idx(path, ndim=1)


def test_truncated_images(tmp_path):
  fake_mnist(tmp_path, gz=True)
  images = np.zeros((50, 28, 28), np.uint8)
  path = write(tmp_path / FILES[0], idx_bytes(images)[:-100], gz=True)
  with pytest.raises(errors.CorruptDatasetError) as info:
    data.load('mnist', data_dir=tmp_path)
  expected = 16 + 50 * 28 * 28
  assert path in str(info.value)
  assert f'truncated: expected {expected} bytes' in str(info.value)
  assert f'got {expected - 100}' in str(info.value)


def test_truncated_gzip_stream(tmp_path):
  path = write(tmp_path / 'images', idx_bytes(np.zeros((9, 4, 4))), gz=True)
  with open(path, 'rb') as f:
    payload = f.read()
  with open(path, 'wb') as f:
    f.write(payload[:len(payload) // 2])
  with pytest.raises(errors.CorruptDatasetError, match='not a complete gzip'):
    idx.read_idx(path, ndim=3)


def test_count_mismatch(tmp_path):
  fake_mnist(tmp_path)
  write(tmp_path / FILES[3], idx_bytes(np.zeros(19, np.uint8)), gz=False)
  with pytest.raises(errors.CorruptDatasetError) as info:
    data.load('mnist', data_dir=tmp_path)
  message = str(info.value)
  assert 'count mismatch' in message
  assert '20 images' in message and '19 labels' in message
  assert FILES[2] in message and FILES[3] in message


def test_label_out_of_range(tmp_path):
  fake_mnist(tmp_path)
  write(tmp_path / FILES[1], idx_bytes(np.full(50, 10, np.uint8)), gz=False)
  with pytest.raises(errors.CorruptDatasetError, match='out of range'):
    data.load('mnist', data_dir=tmp_path)


def test_missing_files_name_searched_paths(tmp_path):
  fake_mnist(tmp_path / 'kmnist')
  os.remove(tmp_path / 'kmnist' / FILES[2])
  with pytest.raises(errors.DatasetNotFoundError) as info:
    data.load('kmnist', data_dir=tmp_path)
  message = str(info.value)
  assert os.path.join(tmp_path, 'kmnist') in message
  assert f'missing {FILES[2]}[.gz]' in message
  assert f'{tmp_path}: missing' in message
  assert 'JAL_DATA_DIR' in message and 'data_dir' in message
  assert isinstance(info.value, FileNotFoundError)


def test_missing_dir(tmp_path):
  root = tmp_path / 'nowhere'
  with pytest.raises(errors.DatasetNotFoundError) as info:
    data.load('mnist', data_dir=root)
  message = str(info.value)
  assert f'{os.path.join(root, "mnist")}: no such directory' in message
  assert f'{root}: no such directory' in message
  assert 'Download the four IDX files of mnist' in message


def test_no_dir_given(monkeypatch):
  monkeypatch.delenv('JAL_DATA_DIR', raising=False)
  with pytest.raises(errors.DatasetNotFoundError, match='JAL_DATA_DIR'):
    data.load('mnist')


@pytest.mark.skipif(not os.environ.get('JAL_DATA_DIR'),
                    reason='JAL_DATA_DIR is not set')
def test_real_mnist():
  try:
    idx.find_files('mnist', os.environ['JAL_DATA_DIR'])
  except errors.DatasetNotFoundError as e:
    pytest.skip(f'no MNIST under JAL_DATA_DIR: {e}')
  ds = data.load('mnist', pool_size=40000)
  assert ds.pool_images.shape == (40000, 28, 28, 1)
  assert ds.test_images.shape == (10000, 28, 28, 1)
  full = data.load('mnist')
  assert full.pool_images.shape == (60000, 28, 28, 1)
  assert np.bincount(full.pool_labels).tolist() == [
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  np.testing.assert_array_equal(ds.pool_labels, full.pool_labels[:40000])
  assert abs(float(full.pool_images.mean())) < 1e-4
  assert abs(float(full.pool_images.std()) - 1) < 1e-4


def test_repeated_mnist_is_three_noisy_copies_of_the_pool(tmp_path):
  fake_mnist(tmp_path / 'mnist', n_train=50)
  plain = data.load('mnist', data_dir=tmp_path, pool_size=30)
  repeated = data.load('repeated_mnist', data_dir=tmp_path, pool_size=30,
                       seed=4)
  assert repeated.pool_images.shape == (90, 28, 28, 1)
  np.testing.assert_array_equal(repeated.pool_labels,
                                np.tile(plain.pool_labels, 3))
  np.testing.assert_array_equal(repeated.test_images, plain.test_images)
  for copy in range(3):
    noise = repeated.pool_images[copy * 30:(copy + 1) * 30] - plain.pool_images
    assert abs(noise.std() - 0.1) < 0.005 and abs(noise.mean()) < 0.005
  # Each copy has its own noise; the noise follows the seed.
  assert not np.allclose(repeated.pool_images[:30], repeated.pool_images[30:60])
  again = data.load('repeated_mnist', data_dir=tmp_path, pool_size=30, seed=4)
  other = data.load('repeated_mnist', data_dir=tmp_path, pool_size=30, seed=5)
  np.testing.assert_array_equal(again.pool_images, repeated.pool_images)
  assert not np.allclose(other.pool_images, repeated.pool_images)
