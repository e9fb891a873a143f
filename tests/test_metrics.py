"""AUBC and F-acc on hand-computed curves; balanced accuracy against sklearn."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from jal import metrics


def test_aubc_of_a_flat_curve_is_its_height():
  assert metrics.aubc([10, 20, 40], [0.7, 0.7, 0.7]) == pytest.approx(0.7)


def test_aubc_hand_computed():
  # Trapezoids: (20-10)*(0.5+0.7)/2 = 6; (40-20)*(0.7+0.9)/2 = 16.
  # Area 22 over the range 30.
  assert metrics.aubc([10, 20, 40], [0.5, 0.7, 0.9]) == pytest.approx(22 / 30)


def test_aubc_of_a_linear_ramp_is_its_midpoint():
  n = np.arange(0, 101, 10)
  assert metrics.aubc(n, n / 100) == pytest.approx(0.5)


def test_aubc_single_point_and_bounds():
  assert metrics.aubc([5], [0.3]) == pytest.approx(0.3)
  rng = np.random.default_rng(0)
  value = metrics.aubc(np.arange(1, 11), rng.uniform(size=10))
  assert 0.0 <= value <= 1.0


@pytest.mark.parametrize('num_labeled, accuracies', [
    ([10, 10, 20], [0.1, 0.2, 0.3]),
    ([10, 20], [0.1]),
    ([], []),
])
def test_aubc_rejects_bad_curves(num_labeled, accuracies):
  with pytest.raises(ValueError):
    metrics.aubc(num_labeled, accuracies)


def test_final_accuracy_and_accuracy():
  assert metrics.final_accuracy([0.2, 0.5, 0.8]) == 0.8
  logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
  assert float(metrics.accuracy(logits, np.array([0, 1, 1]))) == (
      pytest.approx(2 / 3))


@pytest.mark.filterwarnings('ignore:y_pred contains classes not in y_true')
def test_balanced_accuracy_matches_sklearn():
  rng = np.random.default_rng(0)
  # Class 3 of 5 never occurs in the labels: left out of the mean, as
  # sklearn does; predictions of it still count as errors.
  labels = rng.choice([0, 1, 2, 4], size=200, p=[0.7, 0.2, 0.05, 0.05])
  logits = rng.normal(size=(200, 5))
  logits[np.arange(200), labels] += rng.uniform(0, 3, 200)
  expected = sklearn_metrics.balanced_accuracy_score(
      labels, logits.argmax(-1))
  assert float(metrics.balanced_accuracy(jnp.asarray(logits),
                                         jnp.asarray(labels))) == (
      pytest.approx(expected, abs=1e-6))


def _numpy_ece(probs, labels, num_bins=15):
  """The textbook ECE: loop over bins (lo, hi] of max-probability."""
  confidence = probs.max(axis=1)
  correct = probs.argmax(axis=1) == labels
  total = 0.0
  for m in range(num_bins):
    lo, hi = m / num_bins, (m + 1) / num_bins
    members = (confidence > lo) & (confidence <= hi)
    if members.any():
      total += members.mean() * abs(correct[members].mean() -
                                    confidence[members].mean())
  return total


def test_ece_matches_a_plain_numpy_loop():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(500, 4)) * 3
  labels = rng.integers(0, 4, size=500)
  probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  got = metrics.ece(jnp.log(jnp.asarray(probs)), jnp.asarray(labels))
  assert float(got) == pytest.approx(_numpy_ece(probs, labels), abs=1e-5)
  assert float(got) > 0.1  # random labels: an overconfident model


def test_ece_of_a_calibrated_model_is_zero_and_of_a_sure_wrong_one_is_one():
  # Confidence 0.75 in every bin member, right on 3 of 4 points: calibrated.
  probs = np.array([[0.75, 0.25]] * 4)
  labels = np.array([0, 0, 0, 1])
  assert float(metrics.ece(jnp.log(probs), labels)) == pytest.approx(0.0,
                                                                     abs=1e-6)
  sure = np.array([[1.0 - 1e-7, 1e-7]] * 3)
  assert float(metrics.ece(jnp.log(sure), np.array([1, 1, 1]))) == (
      pytest.approx(1.0, abs=1e-5))
