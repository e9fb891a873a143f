"""Oracles reveal the labels of queried points, and what labels cost.

An oracle is a function `oracle(indices [b] int32) -> labels [b] int32`. The
simulated oracle reads the ground truth; the noisy one answers like an
annotator who errs (a flip rate, or a per-class confusion matrix); a human
oracle asks a person.

The noisy oracle's answer for pool item i is drawn with `fold_in(key, i)`:
it depends on the key and the item only, never on when or in which batch
the item is asked, so a resumed run, a vmapped trial that reads every
answer up front, and an uninterrupted run all see the same answers.

Label costs: `label_costs(spec, pool_size, num_classes)` turns a config's
`label_costs` (None: 1 a label; a list of C per-class costs; a `.npy` file
of N per-item or C per-class costs) into a `Costs`, and `batch_cost` prices
a batch. A per-class cost is charged for the class the oracle answered, the
only class a real labeling campaign knows.
"""

import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jal import errors

Oracle = Callable[[np.ndarray], np.ndarray]


def simulated(pool_labels) -> Oracle:
  """An oracle that answers with the pool's ground-truth labels [N]."""
  pool_labels = np.asarray(pool_labels, np.int32)
  return lambda indices: pool_labels[np.asarray(indices)]


def confusion_from_flip_rate(flip_rate: float,
                             num_classes: int) -> np.ndarray:
  """[C, C] confusion matrix of an annotator who errs with prob. `flip_rate`.

  Row c (true class c) keeps c with probability 1 − flip_rate and gives
  each of the C − 1 other classes flip_rate / (C − 1).
  """
  off = flip_rate / (num_classes - 1)
  return np.full((num_classes, num_classes), off) + np.eye(num_classes) * (
      1.0 - flip_rate - off)


def noisy_answers(key: jax.Array, true_labels, indices,
                  confusion) -> np.ndarray:
  """[b] int32: each index's answer drawn from its true class's row.

  Args:
    key: the oracle's PRNG key.
    true_labels: [b] int ground truth of the queried items.
    indices: [b] int pool indices (the answer for index i uses
      `fold_in(key, i)`).
    confusion: [C, C] rows = true class, each a distribution over answers.
  """
  indices = np.asarray(indices, np.int64).reshape(-1)
  if indices.size == 0:
    return np.zeros((0,), np.int32)
  logits = jnp.log(jnp.asarray(confusion, jnp.float32))[
      jnp.asarray(true_labels, jnp.int32)]
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
      jnp.asarray(indices, jnp.uint32))
  return np.asarray(jax.vmap(jax.random.categorical)(keys, logits), np.int32)


def noisy(pool_labels, key: jax.Array, num_classes: int, *,
          flip_rate: float = 0.0, confusion=None) -> Oracle:
  """A simulated annotator who errs: a flip rate or a confusion matrix.

  Args:
    pool_labels: [N] int ground truth.
    key: PRNG key of the answers (see the module docstring).
    num_classes: C.
    flip_rate: ε; with probability ε the answer is a uniformly random
      other class. Ignored when `confusion` is given.
    confusion: [C, C] row-stochastic matrix, row = true class.
  """
  pool_labels = np.asarray(pool_labels, np.int32)
  if confusion is None:
    confusion = confusion_from_flip_rate(flip_rate, num_classes)
  confusion = np.asarray(confusion, np.float64)

  def answer(indices):
    indices = np.asarray(indices)
    return noisy_answers(key, pool_labels[indices], indices,
                         confusion).reshape(indices.shape)

  return answer


def _load(spec, field: str):
  """A config field's array: the list itself, or the `.npy` file it names.

  Raises:
    ConfigError: the file cannot be read as a `.npy` array.
  """
  if isinstance(spec, (str, os.PathLike)):
    try:
      return np.load(os.fspath(spec), allow_pickle=False)
    except (OSError, ValueError) as e:
      raise errors.ConfigError(
          f'config.{field} = {spec!r} cannot be read as a .npy array ({e}); '
          'give a path to a file written by numpy.save.') from None
  return np.asarray(spec)


def read_confusion(spec, num_classes: int) -> np.ndarray:
  """config.oracle_confusion (nested list or `.npy` path) as [C, C] float64.

  Raises:
    ConfigError: not a [C, C] matrix of finite probabilities whose rows sum
      to 1.
  """
  loaded = _load(spec, 'oracle_confusion')
  try:
    matrix = np.asarray(loaded, np.float64)
  except (TypeError, ValueError):
    matrix = np.zeros((0,))
  if (matrix.shape != (num_classes, num_classes) or
      not np.all(np.isfinite(matrix)) or np.any(matrix < 0) or
      not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6)):
    raise errors.ConfigError(
        f'config.oracle_confusion must be a [{num_classes}, {num_classes}] '
        'matrix of probabilities, row = true class, each row summing to 1; '
        f'got an array of shape {matrix.shape}. Fix the matrix or set it to '
        'None.')
  return matrix


class Costs(NamedTuple):
  """What labels cost: per pool item [N], or per answered class [C]."""
  per_item: np.ndarray | None
  per_class: np.ndarray | None


def label_costs(spec, pool_size: int, num_classes: int) -> Costs:
  """config.label_costs as `Costs`.

  Args:
    spec: None (1 a label), a list of C per-class costs, or a `.npy` path
      holding N per-item costs or C per-class costs (N when both fit).
    pool_size: N.
    num_classes: C.

  Raises:
    ConfigError: not a 1-D array of N or C finite costs >= 0.
  """
  if spec is None:
    return Costs(None, np.ones(num_classes))
  loaded = _load(spec, 'label_costs')
  try:
    costs = np.asarray(loaded, np.float64)
  except (TypeError, ValueError):
    costs = np.zeros((0, 0))
  if (costs.ndim != 1 or costs.shape[0] not in (pool_size, num_classes) or
      not np.all(np.isfinite(costs)) or np.any(costs < 0)):
    raise errors.ConfigError(
        f'config.label_costs must hold {pool_size} per-item costs (one per '
        f'pool item) or {num_classes} per-class costs, all finite and >= 0; '
        f'got an array of shape {costs.shape}. Fix it or set it to None '
        '(1 a label).')
  if costs.shape[0] == pool_size:
    return Costs(costs, None)
  return Costs(None, costs)


def batch_cost(costs: Costs, indices, answers) -> float:
  """The cost of labeling pool `indices` [b] answered with `answers` [b]."""
  indices = np.asarray(indices, np.int64)
  if costs.per_item is not None:
    return float(costs.per_item[indices].sum())
  return float(costs.per_class[np.asarray(answers, np.int64)].sum())


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
