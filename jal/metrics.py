"""Accuracy and the summaries of an accuracy–budget curve (DeepAL+ §3).

Given rounds r = 0…R with n_r labeled examples and test accuracy a_r:

- AUBC (area under the budget curve) is the trapezoid rule over n,
  normalized by the budget range so that it lies in [0, 1]:
      AUBC = Σ_{r=1..R} (n_r − n_{r−1}) (a_r + a_{r−1}) / 2  /  (n_R − n_0).
  A curve with a single point has AUBC = a_0.
- F-acc is the accuracy at the last round, a_R.

Balanced accuracy (for imbalanced data) is the mean over the classes present
in the labels of each class's recall, as `sklearn.metrics.
balanced_accuracy_score`; its curve has an AUBC and a final value too.

The expected calibration error (Guo et al. 2017) splits the N test points
into M = 15 equal-width bins of confidence p_max in (m/M, (m+1)/M] and
averages the gap between each bin's accuracy and its mean confidence,
weighted by the bin's share of the points:
    ECE = Σ_m |B_m| / N · |acc(B_m) − conf(B_m)|.
"""

import numpy as np
import jax
import jax.numpy as jnp


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of argmax predictions equal to the labels; [N, C], [N] → []."""
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def balanced_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean per-class recall over the classes present in `labels`.

  Args:
    logits: [N, C] scores (logits or log-probabilities).
    labels: [N] int classes in [0, C).

  Returns:
    [] the mean over classes c with at least one label of
    #(predicted c and labeled c) / #(labeled c).
  """
  num_classes = logits.shape[-1]
  members = jax.nn.one_hot(labels, num_classes)  # [N, C]
  correct = (jnp.argmax(logits, axis=-1) == labels)[:, None] * members
  counts = members.sum(axis=0)
  recall = correct.sum(axis=0) / jnp.maximum(counts, 1)
  present = counts > 0
  return jnp.sum(jnp.where(present, recall, 0.0)) / jnp.sum(present)


ECE_BINS = 15


def ece(log_probs: jax.Array, labels: jax.Array,
        num_bins: int = ECE_BINS) -> jax.Array:
  """Expected calibration error over equal-width confidence bins.

  Args:
    log_probs: [N, C] log-probabilities (or logits: they are normalized).
    labels: [N] int classes in [0, C).
    num_bins: M, the number of bins of [0, 1].

  Returns:
    [] the ECE (formula above), in [0, 1].
  """
  probs = jax.nn.softmax(log_probs, axis=-1)
  confidence = jnp.max(probs, axis=-1)
  correct = (jnp.argmax(probs, axis=-1) == labels).astype(jnp.float32)
  # Bin m holds the confidences in (m/M, (m+1)/M]; a confidence of 0 (never
  # reached by a softmax's maximum) would go to the first.
  bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0,
                  num_bins - 1)
  members = jax.nn.one_hot(bins, num_bins)  # [N, M]
  gap = members.T @ (correct - confidence)  # [M] Σ over the bin
  return jnp.sum(jnp.abs(gap)) / labels.shape[0]


def aubc(num_labeled, accuracies) -> float:
  """Normalized area under the accuracy–budget curve (formula above).

  Args:
    num_labeled: [R+1] strictly increasing labeled-set sizes.
    accuracies: [R+1] test accuracies in [0, 1].
  """
  n = np.asarray(num_labeled, np.float64)
  a = np.asarray(accuracies, np.float64)
  if n.shape != a.shape or n.ndim != 1 or n.size == 0:
    raise ValueError('num_labeled and accuracies must be 1-D, non-empty and '
                     f'of one length; got shapes {n.shape} and {a.shape}.')
  if n.size == 1:
    return float(a[0])
  if np.any(np.diff(n) <= 0):
    raise ValueError(f'num_labeled must increase strictly; got {n.tolist()}.')
  area = np.sum(np.diff(n) * (a[1:] + a[:-1]) / 2.0)
  return float(area / (n[-1] - n[0]))


def final_accuracy(accuracies) -> float:
  """F-acc: the accuracy of the last round."""
  return float(np.asarray(accuracies)[-1])
