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
