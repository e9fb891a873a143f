"""The simulated and the human oracle."""

import numpy as np

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
