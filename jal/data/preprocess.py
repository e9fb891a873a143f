"""Pool preprocessing: class-imbalanced subsampling and standardization."""

import numpy as np

_CHUNK = 256
# Pixel data in [0, 1] varying less than this is constant up to rounding.
_MIN_STD = 1e-6


def imbalanced_counts(class_counts: np.ndarray) -> np.ndarray:
  """How many images of each class an imbalanced pool keeps.

  Class ratios 1:2:…:C (DeepAL+'s CIFAR10-imb): with
  `n = min_c floor(count_c * C / (c + 1))`, the largest top-class size every
  class can supply, class `c` (0-based) keeps `floor(n * (c + 1) / C + 1/2)`
  images. On a balanced pool class C-1 keeps all its images.

  Args:
    class_counts: [C] int, images per class in the pool.

  Returns:
    [C] int64, images per class to keep.
  """
  class_counts = np.asarray(class_counts, np.int64)
  num_classes = class_counts.shape[0]
  shares = np.arange(1, num_classes + 1)
  n = int(np.min(class_counts * num_classes // shares)) if num_classes else 0
  # Integer arithmetic for round-half-up: floor((2n(c+1) + C) / 2C).
  wanted = (2 * n * shares + num_classes) // (2 * num_classes)
  return np.minimum(wanted, class_counts)


def imbalanced_indices(rng: np.random.Generator, labels: np.ndarray,
                       num_classes: int) -> np.ndarray:
  """Indices of an imbalanced subsample of a pool (see `imbalanced_counts`).

  Args:
    rng: chooses which images of each class are kept.
    labels: [N] int, classes in [0, num_classes).
    num_classes: C.

  Returns:
    [N'] int64, sorted, so the subsample keeps the pool's order.
  """
  counts = np.bincount(labels, minlength=num_classes)
  keep = imbalanced_counts(counts)
  chosen = [rng.permutation(np.flatnonzero(labels == c))[:keep[c]]
            for c in range(num_classes)]
  return np.sort(np.concatenate(chosen))


def standardize(pool_images: np.ndarray,
                test_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Standardizes both sets per channel with the pool's mean and std.

  Args:
    pool_images: [N, H, W, C] float32.
    test_images: [M, H, W, C] float32.

  Returns:
    `(pool_images, test_images)`, float32; a channel that is constant over
    the pool (std below 1e-6) is only centered.
  """
  channels = pool_images.shape[-1]
  total = np.zeros(channels)
  total_sq = np.zeros(channels)
  # Float64 sums over small chunks laid out channel-major: accurate, fast, and
  # no full-size temporary whatever the pool size.
  for start in range(0, pool_images.shape[0], _CHUNK):
    chunk = pool_images[start:start + _CHUNK].reshape(-1, channels)
    rows = np.ascontiguousarray(chunk.T, dtype=np.float64)
    total += rows.sum(axis=1)
    total_sq += np.einsum('ij,ij->i', rows, rows)
  count = max(pool_images.size // channels, 1)
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  std = np.where(std > _MIN_STD, std, 1.0)
  mean, scale = mean.astype(np.float32), (1 / std).astype(np.float32)

  def apply(images):
    out = np.subtract(images, mean, dtype=np.float32)
    out *= scale
    return out

  return apply(pool_images), apply(test_images)
