"""Tests of random crop and flip augmentation against a numpy reference."""

import jax
import numpy as np
import pytest

from jal.data import augment


def images(shape=(16, 6, 5, 3), dtype=np.float32):
  return np.random.default_rng(0).uniform(1, 2, shape).astype(dtype)


def reference(batch, offsets, flips, padding):
  """Zero-pad, slice each window, mirror the flagged ones: plain numpy."""
  _, height, width, _ = batch.shape
  padded = np.pad(batch, ((0, 0), (padding, padding), (padding, padding),
                          (0, 0)))
  out = []
  for image, (row, col), flip in zip(padded, offsets, flips):
    crop = image[row:row + height, col:col + width]
    out.append(crop[:, ::-1] if flip else crop)
  return np.stack(out)


@pytest.mark.parametrize('dtype', [np.float32, np.uint8])
def test_shape_and_dtype(dtype):
  batch = images(dtype=dtype)
  out = augment.random_crop_flip(jax.random.key(0), batch)
  assert out.shape == batch.shape and out.dtype == dtype


def test_identity_without_padding_or_flip():
  batch = images()
  out = augment.random_crop_flip(jax.random.key(1), batch, padding=0,
                                 flip=False)
  np.testing.assert_array_equal(out, batch)


def test_flip_only_mirrors_some_images():
  batch = images(shape=(32, 4, 5, 2))
  out = np.asarray(augment.random_crop_flip(jax.random.key(2), batch,
                                            padding=0))
  flipped = [np.array_equal(o, b[:, ::-1]) for o, b in zip(out, batch)]
  kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
  assert all(f or k for f, k in zip(flipped, kept))
  assert any(flipped) and any(kept)


@pytest.mark.parametrize('padding', [1, 3])
@pytest.mark.parametrize('flip', [False, True])
def test_matches_reference(padding, flip):
  batch = images()
  key = jax.random.key(3)
  offsets, flips = augment.draw_crop_flip(key, batch.shape[0],
                                          padding=padding, flip=flip)
  offsets, flips = np.asarray(offsets), np.asarray(flips)
  assert offsets.shape == (16, 2) and flips.shape == (16,)
  assert offsets.min() >= 0 and offsets.max() <= 2 * padding
  assert len(np.unique(offsets, axis=0)) > 1
  if not flip:
    assert not flips.any()
  out = augment.random_crop_flip(key, batch, padding=padding, flip=flip)
  np.testing.assert_array_equal(out, reference(batch, offsets, flips, padding))


def test_centre_crop_is_identity():
  batch = images()
  offsets = np.full((16, 2), 2)
  flips = np.zeros(16, bool)
  np.testing.assert_array_equal(
      augment.crop_flip(batch, offsets, flips, padding=2), batch)


def test_jit_matches_eager():
  batch = images()
  key = jax.random.key(4)
  jitted = jax.jit(augment.random_crop_flip, static_argnames=('padding',
                                                              'flip'))
  np.testing.assert_array_equal(jitted(key, batch, padding=2),
                                augment.random_crop_flip(key, batch,
                                                         padding=2))
