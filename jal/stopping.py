"""When to stop labeling: stopping criteria over the per-round records.

Every criterion is a pure function of the list of per-round records that
`jal.loop.run` writes (`results.jsonl`) and a few parameters
(`config.stopping`, see `jal.config.stopping_defaults`). It returns the
round at which it first fires, the round whose model one would keep and
after which one would stop querying, or None if it has not fired:

- budget: the labeled set (initial set included) reaches `budget` labels;
  default the run's whole budget, initial_size + num_rounds * query_size.
- max_rounds: `max_rounds` rounds of queries are done (round r has made r).
- target_accuracy: the validation accuracy reaches `target_accuracy`. It
  needs labels, so it reads the records' `validation_accuracy`: test
  examples held out for it (`config.validation_size`), never the test
  accuracy, which a labeling campaign does not have.
- plateau: over the last `plateau_window` + 1 rounds the validation
  accuracy moves by less than `plateau_delta` (max − min).
- stabilizing_predictions (Bloodgood & Vijay-Shanker 2009): the mean of the
  last `kappa_window` values of Cohen's kappa between consecutive models'
  predictions on a stop set of unlabeled pool points (`stop_set_kappa`)
  exceeds `kappa` (0.99 over 3 in the paper). No labels needed.

A simulated run goes on to its whole budget; `evaluate` then tells when
each criterion would have stopped it, and `score` what that would have
saved and cost against the full run.
"""

from collections.abc import Callable, Mapping, Sequence

import numpy as np

CRITERIA = ('budget', 'max_rounds', 'target_accuracy', 'plateau',
            'stabilizing_predictions')

Records = Sequence[Mapping]


def cohen_kappa(first, second, num_classes: int) -> float:
  """Cohen's kappa between two labelings of the same S items.

  κ = (p_o − p_e) / (1 − p_e), p_o the fraction of items labeled alike and
  p_e = Σ_c p_first(c) p_second(c) the agreement expected by chance. When
  p_e = 1 (both give every item one same class) κ is 1.

  Args:
    first: [S] int classes in [0, C).
    second: [S] int classes in [0, C).
    num_classes: C.
  """
  first = np.asarray(first, np.int64)
  second = np.asarray(second, np.int64)
  if first.shape != second.shape or first.ndim != 1 or first.size == 0:
    raise ValueError('cohen_kappa needs two non-empty labelings of one '
                     f'length; got shapes {first.shape} and {second.shape}.')
  observed = np.mean(first == second)
  chance = np.dot(np.bincount(first, minlength=num_classes),
                  np.bincount(second, minlength=num_classes)) / first.size**2
  if chance >= 1.0:
    return 1.0
  return float((observed - chance) / (1.0 - chance))


def _first(records: Records, fires: Callable[[int], bool]) -> int | None:
  """The round of the first record index i with fires(i), else None."""
  for i, record in enumerate(records):
    if fires(i):
      return int(record['round'])
  return None


def budget(records: Records, labels: int) -> int | None:
  """First round whose labeled set holds at least `labels` labels."""
  return _first(records, lambda i: records[i]['num_labeled'] >= labels)


def max_rounds(records: Records, rounds: int) -> int | None:
  """First round that has made `rounds` rounds of queries (round ≥ rounds)."""
  return _first(records, lambda i: records[i]['round'] >= rounds)


def _validation(records: Records, i: int) -> float | None:
  value = records[i].get('validation_accuracy')
  return None if value is None or np.isnan(value) else float(value)


def target_accuracy(records: Records, target: float | None) -> int | None:
  """First round whose validation accuracy is at least `target`."""
  if target is None:
    return None

  def fires(i):
    value = _validation(records, i)
    return value is not None and value >= target

  return _first(records, fires)


def plateau(records: Records, delta: float, window: int) -> int | None:
  """First round r ≥ window where the validation accuracies of rounds
  r − window … r span less than `delta` (max − min)."""

  def fires(i):
    if i < window:
      return False
    values = [_validation(records, j) for j in range(i - window, i + 1)]
    return None not in values and max(values) - min(values) < delta

  return _first(records, fires)


def stabilizing_predictions(records: Records, kappa: float,
                            window: int) -> int | None:
  """First round where the mean stop-set kappa of the last `window` rounds
  (each against its previous round's model) exceeds `kappa`."""

  def fires(i):
    if i + 1 < window:
      return False
    values = [records[j].get('stop_set_kappa')
              for j in range(i - window + 1, i + 1)]
    return None not in values and float(np.mean(values)) > kappa

  return _first(records, fires)


def full_budget(config: Mapping) -> int:
  """The run's whole budget: initial_size + num_rounds * query_size."""
  return int(config['initial_size'] +
             config['num_rounds'] * config['query_size'])


def rules(config: Mapping) -> dict[str, Callable[[Records], int | None]]:
  """{criterion: records → first firing round or None} with the config's
  parameters (`config['stopping']`; a ConfigDict or its JSON both work)."""
  params = config['stopping']
  labels = params['budget']
  rounds = params['max_rounds']
  return dict(
      budget=lambda r: budget(r, full_budget(config) if labels is None
                              else labels),
      max_rounds=lambda r: max_rounds(r, config['num_rounds'] if rounds
                                      is None else rounds),
      target_accuracy=lambda r: target_accuracy(r,
                                                params['target_accuracy']),
      plateau=lambda r: plateau(r, params['plateau_delta'],
                                params['plateau_window']),
      stabilizing_predictions=lambda r: stabilizing_predictions(
          r, params['kappa'], params['kappa_window']))


def evaluate(records: Records, config: Mapping) -> dict[str, int | None]:
  """{criterion: the round at which it first fires, or None}."""
  return {name: rule(records) for name, rule in rules(config).items()}


def fired(records: Records, config: Mapping) -> list[str]:
  """The criteria that have fired by the last record, in `CRITERIA` order."""
  return [name for name, round_ in evaluate(records, config).items()
          if round_ is not None]


def score(records: Records, evaluated: Mapping[str, int | None],
          budget_labels: int | None = None) -> dict[str, dict | None]:
  """What stopping where each criterion fired saves and gives up.

  Args:
    records: a run's records, to its whole budget.
    evaluated: `evaluate(records, config)`.
    budget_labels: the whole budget; default the last record's labels.

  Returns:
    {criterion: None if it never fired, else dict(round, num_labeled,
    labels_saved (budget − num_labeled), accuracy (test accuracy there),
    final_accuracy (at the whole budget), accuracy_lost (final − there))}.
  """
  by_round = {int(r['round']): r for r in records}
  last = records[-1]
  if budget_labels is None:
    budget_labels = int(last['num_labeled'])
  scores = {}
  for name, round_ in evaluated.items():
    if round_ is None or round_ not in by_round:
      scores[name] = None
      continue
    there = by_round[round_]
    scores[name] = dict(
        round=round_, num_labeled=int(there['num_labeled']),
        labels_saved=budget_labels - int(there['num_labeled']),
        accuracy=float(there['test_accuracy']),
        final_accuracy=float(last['test_accuracy']),
        accuracy_lost=float(last['test_accuracy']) -
        float(there['test_accuracy']))
  return scores
