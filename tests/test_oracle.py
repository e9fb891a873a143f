"""The simulated, noisy and human oracles, and label costs."""

import jax
import numpy as np
import pytest

from jal import errors
from jal import oracle


def test_simulated_oracle_reads_ground_truth():
  labels = np.array([3, 1, 4, 1, 5], np.int32)
  answer = oracle.simulated(labels)(np.array([4, 0, 2]))
  np.testing.assert_array_equal(answer, [5, 3, 4])
  assert answer.dtype == np.int32


def test_human_oracle_accepts_names_and_indices_and_asks_again():
  replies = iter(['dog', 'zebra', '0', '7', 'cat'])
  prompts = []

  def ask(prompt):
    prompts.append(prompt)
    return next(replies)

  answer = oracle.human(['cat', 'dog'], ask=ask)(np.array([12, 30, 31]))
  np.testing.assert_array_equal(answer, [1, 0, 0])
  assert 'pool item 12' in prompts[0] and 'cat, dog' in prompts[0]
  assert len(prompts) == 5  # 'zebra' and '7' were asked again


def _key(seed=0):
  return jax.random.key(seed)


def test_noisy_oracle_flips_at_its_rate_to_other_classes_uniformly():
  num_classes, size, rate = 4, 20000, 0.3
  truth = np.arange(size, dtype=np.int32) % num_classes
  answers = oracle.noisy(truth, _key(), num_classes, flip_rate=rate)(
      np.arange(size))
  wrong = answers != truth
  # Binomial(20000, 0.3): std 0.0032; 4 std.
  assert abs(wrong.mean() - rate) < 0.013
  # A wrong answer is one of the 3 other classes, each a third of the time.
  offsets = (answers[wrong] - truth[wrong]) % num_classes
  assert set(np.unique(offsets)) == {1, 2, 3}
  np.testing.assert_allclose(np.bincount(offsets)[1:] / wrong.sum(),
                             [1 / 3] * 3, atol=0.025)


def test_noisy_oracle_follows_its_confusion_matrix_row_by_row():
  confusion = np.array([[0.9, 0.1, 0.0],
                        [0.0, 0.5, 0.5],
                        [0.2, 0.0, 0.8]])
  size = 30000
  truth = (np.arange(size) % 3).astype(np.int32)
  answers = oracle.noisy(truth, _key(1), 3, confusion=confusion)(
      np.arange(size))
  observed = np.stack([np.bincount(answers[truth == c], minlength=3) /
                       np.sum(truth == c) for c in range(3)])
  np.testing.assert_allclose(observed, confusion, atol=0.015)
  assert observed[0, 2] == observed[1, 0] == observed[2, 1] == 0


def test_noisy_answer_of_an_item_does_not_depend_on_when_it_is_asked():
  truth = np.arange(300, dtype=np.int32) % 10
  ask = oracle.noisy(truth, _key(2), 10, flip_rate=0.5)
  everything = ask(np.arange(300))
  order = np.random.default_rng(0).permutation(300)
  in_batches = np.concatenate([ask(order[i:i + 7]) for i in range(0, 300, 7)])
  np.testing.assert_array_equal(in_batches, everything[order])
  again = oracle.noisy(truth, _key(2), 10, flip_rate=0.5)(np.arange(300))
  np.testing.assert_array_equal(again, everything)
  other = oracle.noisy(truth, _key(3), 10, flip_rate=0.5)(np.arange(300))
  assert np.any(other != everything)
  assert np.all(oracle.noisy(truth, _key(2), 10)(np.arange(300)) == truth)


def test_label_costs_per_item_per_class_and_default(tmp_path):
  per_item = np.arange(6, dtype=np.float64)
  np.save(tmp_path / 'items.npy', per_item)
  costs = oracle.label_costs(str(tmp_path / 'items.npy'), 6, 3)
  assert oracle.batch_cost(costs, [1, 5], [2, 2]) == 6.0
  by_class = oracle.label_costs([1.0, 10.0, 100.0], 6, 3)
  # Charged for the class answered.
  assert oracle.batch_cost(by_class, [0, 1, 2], [2, 2, 0]) == 201.0
  assert oracle.batch_cost(oracle.label_costs(None, 6, 3), [0, 4], [1, 1]) == 2
  assert oracle.batch_cost(by_class, [], []) == 0.0


@pytest.mark.parametrize('spec, match', [
    ([1.0, 2.0], r'6 per-item costs .* or 3 per-class'),
    ([1.0, -1.0, 1.0], 'finite and >= 0'),
    ([[1.0, 2.0, 3.0]], r'shape \(1, 3\)'),
])
def test_bad_label_costs_are_refused(spec, match):
  with pytest.raises(errors.ConfigError, match=match):
    oracle.label_costs(spec, 6, 3)


def test_bad_confusion_matrix_is_refused(tmp_path):
  with pytest.raises(errors.ConfigError, match='each row summing to 1'):
    oracle.read_confusion([[0.5, 0.4], [0.0, 1.0]], 2)
  with pytest.raises(errors.ConfigError, match=r'\[3, 3\]'):
    oracle.read_confusion([[1.0, 0.0], [0.0, 1.0]], 3)
  (tmp_path / 'bad.npy').write_text('not numpy')
  with pytest.raises(errors.ConfigError, match='cannot be read as a .npy'):
    oracle.read_confusion(str(tmp_path / 'bad.npy'), 2)
  np.save(tmp_path / 'good.npy', np.eye(2))
  np.testing.assert_array_equal(
      oracle.read_confusion(str(tmp_path / 'good.npy'), 2), np.eye(2))
