"""The camera-trap stand-in data: a source/target class split and empty frames.

Seed 001's pipeline embeds with a network trained on one dataset (eMammal)
and labels another (Snapshot Serengeti, about 75% empty frames). Here both
come from one labeled dataset split by class: the embedder and the detector
see only the source classes, active learning runs on the target classes,
and empty frames are mixed into the target pool.

Empty frames come in three kinds, in turn: *blank* (a flat grey level with
faint sensor noise), *noise* (uniform noise at a random contrast) and
*clutter* (an image of the same side cut into a 4×4 grid of tiles and
shuffled: strokes without an object, the hard case for the detector). A
side's clutter is made from that side's own images, so the detector's
training frames never show a target class.
"""

from typing import NamedTuple

import numpy as np

from jal import errors
from jal.data import dataset

EMPTY_KINDS = ('blank', 'noise', 'clutter')
_TILES = 4


class Split(NamedTuple):
  """The pipeline's arrays, images [.., H, W, C] float32 in [0, 1].

  Attributes:
    source_images: [S, H, W, C] the source classes' training images.
    source_labels: [S] int32 in [0, len(source_classes)).
    detector_images: [S + E_s, H, W, C] the source images and empty frames
      made from them, for the detector.
    detector_is_animal: [S + E_s] bool, False for the empty frames.
    pool_images: [P, H, W, C] the target classes' training images and empty
      frames, shuffled together.
    pool_labels: [P] int32: the target class in [0, T), or T for an empty
      frame (`empty_label`); -1 throughout for a pool whose labels nobody
      knows yet (a practitioner's own frames, labeled through
      `pipeline.Campaign`).
    test_images: [M, H, W, C] the target classes' test images (no empties);
      M may be 0.
    test_labels: [M] int32 in [0, T).
    num_target_classes: T.
  """
  source_images: np.ndarray
  source_labels: np.ndarray
  detector_images: np.ndarray
  detector_is_animal: np.ndarray
  pool_images: np.ndarray
  pool_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_target_classes: int

  @property
  def empty_label(self) -> int:
    """The label of an empty frame in the pool, after the target classes."""
    return self.num_target_classes

  @property
  def pool_is_animal(self) -> np.ndarray:
    return self.pool_labels != self.empty_label


def empty_frames(rng: np.random.Generator, count: int,
                 images: np.ndarray) -> np.ndarray:
  """`count` empty frames shaped like `images`, the kinds in turn.

  Args:
    rng: numpy generator.
    count: number of frames.
    images: [N, H, W, C] float32 in [0, 1], N ≥ 1: the side's own images, the
      source of the clutter tiles.

  Returns:
    [count, H, W, C] float32 in [0, 1].
  """
  _, height, width, channels = images.shape
  shape = (height, width, channels)
  frames = np.empty((count, *shape), np.float32)
  th, tw = height // _TILES, width // _TILES
  for i in range(count):
    kind = EMPTY_KINDS[i % len(EMPTY_KINDS)]
    if kind == 'blank':
      frame = rng.uniform(0.0, 0.3) + rng.normal(0.0, 0.02, shape)
    elif kind == 'noise':
      frame = rng.uniform(0.0, rng.uniform(0.2, 1.0), shape)
    else:
      image = images[rng.integers(images.shape[0])]
      tiles = [image[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
               for r in range(_TILES) for c in range(_TILES)]
      order = rng.permutation(len(tiles))
      frame = np.zeros(shape, np.float32)
      for slot, t in enumerate(order):
        r, c = divmod(slot, _TILES)
        frame[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tiles[t]
    frames[i] = np.clip(frame, 0.0, 1.0)
  return frames


def _classes(labels: np.ndarray, classes, noun: str):
  """Rows of `labels` in `classes`, and their labels renumbered 0.."""
  classes = [int(c) for c in classes]
  rows = np.flatnonzero(np.isin(labels, classes))
  if not rows.size:
    raise errors.ConfigError(
        f'No {noun} image has a class in {classes}; choose classes the '
        'dataset has.')
  lookup = np.full(int(labels.max()) + 1, -1, np.int32)
  lookup[classes] = np.arange(len(classes), dtype=np.int32)
  return rows, lookup[labels[rows]]


def empty_count(num_animals: int, empty_share: float) -> int:
  """Empty frames to add to `num_animals` images for a share `empty_share`."""
  return int(round(num_animals * empty_share / (1.0 - empty_share)))


def make_split(splits: dataset.Splits, source_classes, target_classes,
               empty_share: float, seed: int) -> Split:
  """Splits a dataset into the source side and a target pool with empties.

  Args:
    splits: the dataset as its source stores it (images in [0, 1]).
    source_classes: classes the embedder and detector learn from.
    target_classes: disjoint classes active learning labels.
    empty_share: fraction of the pool (and of the detector's training set)
      that is empty frames, in [0, 1).
    seed: draws the empty frames and the pool's order.

  Returns:
    The `Split`.

  Raises:
    ConfigError: overlapping or missing classes, or a share outside [0, 1).
  """
  overlap = set(map(int, source_classes)) & set(map(int, target_classes))
  if overlap:
    raise errors.ConfigError(
        f'source_classes and target_classes share {sorted(overlap)}: the '
        'embedder must never see a target class. Make them disjoint.')
  if not 0.0 <= empty_share < 1.0:
    raise errors.ConfigError(
        f'empty_share={empty_share}: give the pool\'s share of empty frames '
        'as a fraction in [0, 1), e.g. 0.75 as in Snapshot Serengeti.')
  rng = np.random.default_rng(seed)
  src_rows, src_labels = _classes(splits.train_labels, source_classes,
                                  'training')
  tgt_rows, tgt_labels = _classes(splits.train_labels, target_classes,
                                  'training')
  test_rows, test_labels = _classes(splits.test_labels, target_classes, 'test')
  source = splits.train_images[src_rows]
  target = splits.train_images[tgt_rows]
  num_targets = len(target_classes)

  source_empties = empty_frames(
      rng, empty_count(len(source), empty_share), source)
  detector_images = np.concatenate([source, source_empties])
  detector_is_animal = np.arange(len(detector_images)) < len(source)

  pool_empties = empty_frames(rng, empty_count(len(target), empty_share),
                              target)
  order = rng.permutation(len(target) + len(pool_empties))
  pool_images = np.concatenate([target, pool_empties])[order]
  pool_labels = np.concatenate(
      [tgt_labels, np.full(len(pool_empties), num_targets, np.int32)])[order]
  return Split(source, src_labels, detector_images, detector_is_animal,
               pool_images, pool_labels, splits.test_images[test_rows],
               test_labels, num_targets)
