"""Strategy families: which curves share a panel of the report's figures.

`FAMILIES` is the one place that sorts strategies into families; `random` is
in none of them, because every panel draws it as the reference line. A
strategy not listed (a user's, or one registered after this map was written)
goes to the 'other' panel.

`panels` splits a family of more than `MAX_LINES` strategies present in a
study into consecutive panels of near-equal size, so no panel draws more than
`MAX_LINES` curves besides `random`.
"""

import math
from collections.abc import Iterable

BASELINE = 'random'
MAX_LINES = 8
OTHER = 'other'

FAMILIES: dict[str, tuple[str, ...]] = {
    # One deterministic pass: scores of the softmax.
    'uncertainty': ('entropy', 'margin', 'least_confidence', 'ceal',
                    'var_ratio_deepalplus', 'oui'),
    # K stochastic passes (MC dropout, ensembles, Laplace): scores of the
    # predictive distribution and of its disagreement.
    'Bayesian (MC dropout)': ('entropy_dropout', 'margin_dropout',
                              'least_confidence_dropout', 'var_ratio',
                              'mean_std', 'bald', 'batchbald', 'epig'),
    # Kirsch et al. (2023): top-k of a score made stochastic.
    'stochastic batch': ('softmax_entropy', 'power_entropy',
                         'softrank_entropy', 'softmax_bald', 'power_bald',
                         'softrank_bald'),
    # Coverage of the pool, without the model's uncertainty.
    'diversity / clustering': ('kcenter', 'kmeans', 'typiclust', 'probcover'),
    # Uncertainty and diversity together.
    'hybrid': ('badge', 'dbal', 'cluster_margin'),
    # Distance to the decision boundary in input space.
    'adversarial': ('adversarial_bim', 'adversarial_deepfool'),
    # An auxiliary network trained for the query.
    'learned (auxiliary model)': ('lpl', 'waal', 'vaal', 'sraal',
                                  'discriminative'),
}


def family(name: str) -> str:
  """The family of strategy `name`; `OTHER` when the map does not list it."""
  for title, members in FAMILIES.items():
    if name in members:
      return title
  return OTHER


def panels(names: Iterable[str],
           max_lines: int = MAX_LINES) -> list[tuple[str, list[str]]]:
  """The report's panels: (title, strategies), families in `FAMILIES` order.

  Args:
    names: the study's strategies; `BASELINE` among them is left out (it is
      every panel's reference line).
    max_lines: the most strategies one panel draws.

  Returns:
    Each non-`BASELINE` name in exactly one panel, `OTHER` last; a family
    larger than `max_lines` split into panels titled 'family (1/2)', ….
  """
  by_family: dict[str, list[str]] = {}
  for name in sorted(set(names) - {BASELINE}):
    by_family.setdefault(family(name), []).append(name)
  order = [f for f in (*FAMILIES, OTHER) if f in by_family]
  found = []
  for title in order:
    members = by_family[title]
    if title != OTHER:  # the map's order: related methods side by side
      members.sort(key=FAMILIES[title].index)
    count = math.ceil(len(members) / max_lines)
    size = math.ceil(len(members) / count)
    for i in range(count):
      found.append((title if count == 1 else f'{title} ({i + 1}/{count})',
                    members[i * size:(i + 1) * size]))
  return found
