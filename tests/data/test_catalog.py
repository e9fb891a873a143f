"""Tests of `jal.data.load`'s name handling, pool cut and imbalance."""

import math
import sys

import numpy as np
import pytest

from jal import errors
from jal import data
from jal.data import digits
from jal.data import preprocess


def expected_imbalanced_counts(counts):
  """The 1:2:…:C rule, written out plainly."""
  num_classes = len(counts)
  n = min(math.floor(counts[c] * num_classes / (c + 1))
          for c in range(num_classes))
  return [min(counts[c], math.floor(n * (c + 1) / num_classes + 0.5))
          for c in range(num_classes)]


def test_available_lists_local_names():
  names = data.available()
  for name in ('digits', 'mnist', 'fashion_mnist', 'kmnist'):
    assert name in names


def test_unknown_name_lists_valid_names(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(errors.UnknownNameError) as info:
    data.load('no_such_dataset')
  message = str(info.value)
  assert "'no_such_dataset'" in message
  assert 'digits, mnist, fashion_mnist, kmnist' in message
  assert '-imb' in message


def test_pool_size_keeps_first_pool_images():
  full = data.load('digits', seed=2)
  cut = data.load('digits', seed=2, pool_size=300)
  assert cut.pool_images.shape == (300, 8, 8, 1)
  np.testing.assert_array_equal(cut.pool_labels, full.pool_labels[:300])
  np.testing.assert_array_equal(cut.test_labels, full.test_labels)
  # Standardized with the statistics of the 300 kept images.
  np.testing.assert_allclose(cut.pool_images.mean(), 0, atol=1e-5)


@pytest.mark.parametrize('pool_size', [0, -1, 1298, 2.5, True])
def test_pool_size_out_of_range(pool_size):
  with pytest.raises(errors.ConfigError, match='pool_size'):
    data.load('digits', pool_size=pool_size)


@pytest.mark.parametrize('seed', [-1, 1.5, None])
def test_bad_seed(seed):
  with pytest.raises(errors.ConfigError, match='seed'):
    data.load('digits', seed=seed)


def test_imbalanced_counts_follow_rule():
  balanced = data.load('digits', seed=5, pool_size=700)
  counts = np.bincount(balanced.pool_labels, minlength=10).tolist()
  imbalanced = data.load('digits-imb', seed=5, pool_size=700)
  assert np.bincount(imbalanced.pool_labels, minlength=10).tolist() == (
      expected_imbalanced_counts(counts))
  assert imbalanced.name == 'digits-imb'
  np.testing.assert_array_equal(imbalanced.test_labels, balanced.test_labels)
  np.testing.assert_allclose(imbalanced.pool_images.mean(), 0, atol=1e-5)


def test_imbalanced_is_deterministic_per_seed():
  a = data.load('digits-imb', seed=7)
  b = data.load('digits-imb', seed=7)
  np.testing.assert_array_equal(a.pool_images, b.pool_images)
  np.testing.assert_array_equal(a.pool_labels, b.pool_labels)


@pytest.mark.parametrize('counts', [[10, 10, 10, 10], [10, 1, 10], [7, 3],
                                    [0, 5, 2], [1] * 10, [200] * 10])
def test_imbalanced_counts(counts):
  assert preprocess.imbalanced_counts(np.array(counts)).tolist() == (
      expected_imbalanced_counts(counts))


def test_imbalanced_counts_examples():
  # Halves round up: 10 * 1/4 = 2.5 -> 3, 10 * 3/4 = 7.5 -> 8.
  assert preprocess.imbalanced_counts(np.array([10] * 4)).tolist() == [
      3, 5, 8, 10]
  # A scarce class scales every other class down with it.
  assert preprocess.imbalanced_counts(np.array([10, 2, 10])).tolist() == [
      1, 2, 3]
  assert preprocess.imbalanced_counts(np.array([5, 9, 12])).tolist() == [
      4, 8, 12]


def test_imbalanced_indices_are_a_sorted_subset():
  labels = np.random.default_rng(0).integers(0, 4, 100)
  keep = preprocess.imbalanced_indices(np.random.default_rng(1), labels, 4)
  assert np.all(np.diff(keep) > 0) and keep[-1] < 100
  counts = np.bincount(labels, minlength=4).tolist()
  assert np.bincount(labels[keep], minlength=4).tolist() == (
      expected_imbalanced_counts(counts))


def test_standardize_per_channel():
  rng = np.random.default_rng(0)
  pool = rng.uniform(size=(40, 3, 5, 3)).astype(np.float32) * [1, 2, 0]
  test = rng.uniform(size=(7, 3, 5, 3)).astype(np.float32)
  pool_out, test_out = preprocess.standardize(pool, test)
  mean = pool.mean(axis=(0, 1, 2), dtype=np.float64)
  std = pool.std(axis=(0, 1, 2), dtype=np.float64)
  std[2] = 1  # The constant channel is only centered.
  assert pool_out.dtype == test_out.dtype == np.float32
  np.testing.assert_allclose(pool_out, (pool - mean) / std, atol=1e-5)
  np.testing.assert_allclose(test_out, (test - mean) / std, atol=1e-5)


def test_nan_in_source_is_corrupt(monkeypatch):
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  real = datasets.load_digits

  def with_nan():
    bunch = real()
    bunch.images[3, 2, 2] = np.nan
    return bunch

  monkeypatch.setattr(datasets, 'load_digits', with_nan)
  with pytest.raises(errors.CorruptDatasetError, match='NaN or infinite'):
    data.load('digits')
