"""The source/target split and the empty frames."""

import numpy as np
import pytest

from jal import errors
from jal.cameratrap import frames
from jal.data import digits


@pytest.fixture(scope='module')
def splits():
  return digits.load_splits(0)


def test_split_keeps_the_target_classes_from_the_source_side(splits):
  split = frames.make_split(splits, (0, 1, 2), (7, 8), 0.5, seed=0)
  assert np.array_equal(
      np.sort(split.source_labels),
      np.sort(np.searchsorted([0, 1, 2],
                              splits.train_labels[splits.train_labels < 3])))
  # Every pool digit is a 7 or an 8 of the training split, relabeled 0 or 1.
  animals = split.pool_images[split.pool_is_animal]
  originals = splits.train_images[np.isin(splits.train_labels, (7, 8))]
  assert len(animals) == len(originals)
  for image, label in zip(animals, split.pool_labels[split.pool_is_animal]):
    match = np.flatnonzero((originals == image).all(axis=(1, 2, 3)))
    assert match.size
    assert splits.train_labels[np.isin(splits.train_labels, (7, 8))][
        match[0]] == (7, 8)[label]
  assert set(np.unique(split.test_labels)) == {0, 1}
  assert len(split.test_labels) == np.isin(splits.test_labels, (7, 8)).sum()


@pytest.mark.parametrize('share', [0.0, 0.5, 0.75])
def test_empty_share(splits, share):
  split = frames.make_split(splits, (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), share, 1)
  for is_animal in (split.pool_is_animal, split.detector_is_animal):
    assert abs(np.mean(~is_animal) - share) < 0.01
  assert np.all(split.pool_labels[~split.pool_is_animal] == split.empty_label)
  assert split.pool_images.min() >= 0 and split.pool_images.max() <= 1


def test_empty_frames_are_the_three_kinds_in_turn(splits):
  rng = np.random.default_rng(0)
  made = frames.empty_frames(rng, 6, splits.train_images[:5])
  blank, noise, clutter = made[0], made[1], made[2]
  assert blank.std() < 0.05  # a flat level
  assert noise.std() > 0.05
  # Clutter is a permutation of one source image's 4x4 tiles: same pixels.
  assert any(np.allclose(np.sort(clutter.ravel()), np.sort(image.ravel()))
             for image in splits.train_images[:5])


def test_split_is_deterministic_in_the_seed(splits):
  a = frames.make_split(splits, (0, 1), (2, 3), 0.5, seed=3)
  b = frames.make_split(splits, (0, 1), (2, 3), 0.5, seed=3)
  c = frames.make_split(splits, (0, 1), (2, 3), 0.5, seed=4)
  assert np.array_equal(a.pool_images, b.pool_images)
  assert not np.array_equal(a.pool_images, c.pool_images)


@pytest.mark.parametrize('source, target, share, match', [
    ((0, 1), (1, 2), 0.5, 'share'),
    ((0, 1), (2, 3), 1.0, 'empty_share'),
    ((0, 1), (11, 12), 0.5, 'No training image'),
])
def test_bad_splits_are_refused(splits, source, target, share, match):
  with pytest.raises(errors.ConfigError, match=match):
    frames.make_split(splits, source, target, share, seed=0)
