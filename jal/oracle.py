"""Oracles reveal the labels of queried points.

An oracle is a function `oracle(indices [b] int32) -> labels [b] int32`. The
simulated oracle reads the ground truth; a human oracle would ask a person.
"""

from collections.abc import Callable

import numpy as np

Oracle = Callable[[np.ndarray], np.ndarray]


def simulated(pool_labels) -> Oracle:
  """An oracle that answers with the pool's ground-truth labels [N]."""
  pool_labels = np.asarray(pool_labels, np.int32)
  return lambda indices: pool_labels[np.asarray(indices)]


def human(class_names, ask: Callable[[str], str] = input) -> Oracle:
  """An oracle that asks a person for each queried index by `ask`.

  Args:
    class_names: the C class names; the person answers a name or an index.
    ask: prompt function (defaults to `input`).
  """
  class_names = list(class_names)

  def label(indices):
    answers = []
    for index in np.asarray(indices):
      while True:
        answer = ask(f'Label of pool item {int(index)} '
                     f'({", ".join(class_names)}): ').strip()
        if answer in class_names:
          answers.append(class_names.index(answer))
          break
        if answer.isdigit() and int(answer) < len(class_names):
          answers.append(int(answer))
          break
    return np.asarray(answers, np.int32)

  return label
