"""Tests of the bundled `digits` dataset."""

import numpy as np

from jal import data


def test_shapes_and_types():
  ds = data.load('digits')
  assert ds.pool_images.shape == (1297, 8, 8, 1)
  assert ds.test_images.shape == (500, 8, 8, 1)
  assert ds.pool_images.dtype == ds.test_images.dtype == np.float32
  assert ds.pool_labels.shape == (1297,) and ds.test_labels.shape == (500,)
  assert ds.pool_labels.dtype == ds.test_labels.dtype == np.int32
  assert ds.num_classes == 10 and ds.name == 'digits'


def test_standardized_with_pool_statistics():
  ds = data.load('digits')
  np.testing.assert_allclose(ds.pool_images.mean(), 0, atol=1e-5)
  np.testing.assert_allclose(ds.pool_images.std(), 1, rtol=1e-5)
  # The test set shares the pool's statistics, so it is only close to them.
  assert abs(ds.test_images.mean()) < 0.1
  assert abs(ds.test_images.std() - 1) < 0.1


def test_split_is_deterministic_per_seed():
  a, b, c = (data.load('digits', seed=s) for s in (3, 3, 4))
  for field in ('pool_images', 'pool_labels', 'test_images', 'test_labels'):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert not np.array_equal(a.test_labels, c.test_labels)


def test_split_is_stratified():
  ds = data.load('digits', seed=1)
  test_counts = np.bincount(ds.test_labels, minlength=10)
  pool_counts = np.bincount(ds.pool_labels, minlength=10)
  # 1797 images, about 180 a class: 500/1797 of each lands in the test set.
  assert np.all(test_counts >= 48) and np.all(test_counts <= 51)
  np.testing.assert_allclose(test_counts / (test_counts + pool_counts),
                             500 / 1797, atol=0.01)
