"""Stopping criteria on hand-made records; Cohen's kappa against numpy."""

import numpy as np
import pytest

from jal import config as config_lib
from jal import stopping


def _records(validation=None, kappas=None, num_rounds=6, initial=20,
             query=10):
  """Records of rounds 0…num_rounds with the given per-round values."""
  records = []
  for r in range(num_rounds + 1):
    records.append(dict(
        round=r, num_labeled=initial + r * query,
        test_accuracy=0.5 + 0.05 * r,
        validation_accuracy=None if validation is None else validation[r],
        stop_set_kappa=None if kappas is None else kappas[r]))
  return records


def _numpy_kappa(a, b):
  """Cohen's kappa from the confusion table, as in the textbook."""
  classes = np.union1d(a, b)
  table = np.array([[np.sum((a == i) & (b == j)) for j in classes]
                    for i in classes], np.float64) / a.size
  observed = np.trace(table)
  chance = table.sum(axis=1) @ table.sum(axis=0)
  return (observed - chance) / (1 - chance)


def test_cohen_kappa_matches_the_confusion_table_definition():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 5, size=400)
  b = np.where(rng.random(400) < 0.7, a, rng.integers(0, 5, size=400))
  assert stopping.cohen_kappa(a, b, 5) == pytest.approx(_numpy_kappa(a, b))
  assert stopping.cohen_kappa(a, a, 5) == pytest.approx(1.0)
  assert stopping.cohen_kappa([2, 2, 2], [2, 2, 2], 3) == 1.0
  # Independent labelings agree only by chance: kappa near 0.
  c = rng.integers(0, 5, size=400)
  assert abs(stopping.cohen_kappa(a, c, 5)) < 0.1
  with pytest.raises(ValueError, match='one length'):
    stopping.cohen_kappa([0, 1], [0], 2)


def test_budget_and_max_rounds_fire_where_they_are_reached():
  records = _records()  # 20, 30, …, 80 labels
  assert stopping.budget(records, 45) == 3
  assert stopping.budget(records, 50) == 3
  assert stopping.budget(records, 81) is None
  assert stopping.max_rounds(records, 4) == 4
  assert stopping.max_rounds(records, 0) == 0
  assert stopping.max_rounds(records, 7) is None


def test_target_accuracy_reads_validation_accuracy_only():
  validation = [0.5, 0.6, 0.79, 0.8, 0.7, 0.9, 0.9]
  records = _records(validation)
  assert stopping.target_accuracy(records, 0.8) == 3
  assert stopping.target_accuracy(records, 0.95) is None
  assert stopping.target_accuracy(records, None) is None
  # Test accuracy reaches 0.75 in round 5, but there is no validation set.
  assert stopping.target_accuracy(_records(), 0.75) is None


def test_plateau_fires_when_a_whole_window_moves_less_than_delta():
  validation = [0.5, 0.7, 0.8, 0.804, 0.8, 0.807, 0.806]
  records = _records(validation)
  # Rounds 2..4 span 0.004 < 0.005; round 3's window (1..3) spans 0.104.
  assert stopping.plateau(records, 0.005, 2) == 4
  # Rounds 2..5 span 0.007: not under 0.005; under 0.01 from round 5.
  assert stopping.plateau(records, 0.005, 3) is None
  assert stopping.plateau(records, 0.01, 3) == 5
  assert stopping.plateau(_records(), 1.0, 1) is None


def test_stabilizing_predictions_needs_the_mean_of_a_window_of_kappas():
  kappas = [None, 0.5, 0.995, 0.98, 0.999, 0.999, 0.999]
  records = _records(kappas=kappas)
  # Means over 3: (0.5, .995, .98) .825; (.995, .98, .999) .9913 > .99.
  assert stopping.stabilizing_predictions(records, 0.99, 3) == 4
  assert stopping.stabilizing_predictions(records, 0.999, 3) is None
  assert stopping.stabilizing_predictions(records, 0.99, 1) == 2
  # Round 0 has no kappa: a window reaching it never fires.
  assert stopping.stabilizing_predictions(records, 0.0, 7) is None


def _config(**stopping_fields):
  config = config_lib.default()
  config.initial_size, config.query_size, config.num_rounds = 20, 10, 6
  config.validation_size = 100
  for name, value in stopping_fields.items():
    config.stopping[name] = value
  return config


def test_evaluate_applies_the_configs_parameters():
  records = _records([0.5, 0.7, 0.8, 0.804, 0.8, 0.9, 0.95],
                     [None, 0.9, 0.995, 0.995, 0.995, 0.995, 0.995])
  config = _config(target_accuracy=0.9, plateau_window=2, max_rounds=5)
  assert stopping.evaluate(records, config) == dict(
      budget=6, max_rounds=5, target_accuracy=5, plateau=4,
      stabilizing_predictions=4)
  # The config as summary.json stores it (JSON) gives the same answer.
  assert stopping.evaluate(records, config.to_dict()) == (
      stopping.evaluate(records, config))
  config.stopping.budget = 45
  assert stopping.evaluate(records, config)['budget'] == 3
  assert stopping.fired(records[:4], config) == ['budget']
  assert stopping.fired(records[:2], config) == []


def test_score_counts_labels_saved_and_accuracy_given_up():
  records = _records()  # test accuracy 0.5 + 0.05 r, 20 + 10 r labels
  scores = stopping.score(records, dict(plateau=2, target_accuracy=None))
  assert scores['target_accuracy'] is None
  assert scores['plateau'] == dict(
      round=2, num_labeled=40, labels_saved=40, accuracy=0.6,
      final_accuracy=0.8, accuracy_lost=pytest.approx(0.2))
