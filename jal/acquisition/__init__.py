"""Acquisition strategies: the registry that maps a name to a `Strategy`.

Each family lives in its own module and exports a `STRATEGIES` tuple; this
module only gathers them. To add a family, write the module and list it in
`_FAMILIES`.
"""

from jal import errors
from jal.acquisition import adversarial
from jal.acquisition import badge
from jal.acquisition import batchbald
from jal.acquisition import bayesian
from jal.acquisition import ceal
from jal.acquisition import cluster_margin
from jal.acquisition import coldstart
from jal.acquisition import discriminative
from jal.acquisition import epig
from jal.acquisition import kcenter
from jal.acquisition import kmeans
from jal.acquisition import loss_prediction
from jal.acquisition import sraal
from jal.acquisition import stochastic
from jal.acquisition import uncertainty
from jal.acquisition import vaal
from jal.acquisition import waal
from jal.acquisition.base import (PREDICTIONS, Strategy, check_hparams,
                                  query, resolve, score_strategy, stateless,
                                  top_k_unlabeled)

_FAMILIES = (
    uncertainty.STRATEGIES,
    bayesian.STRATEGIES,
    batchbald.STRATEGIES,
    stochastic.STRATEGIES,
    epig.STRATEGIES,
    kcenter.STRATEGIES,
    kmeans.STRATEGIES,
    badge.STRATEGIES,
    cluster_margin.STRATEGIES,
    coldstart.STRATEGIES,
    ceal.STRATEGIES,
    discriminative.STRATEGIES,
    loss_prediction.STRATEGIES,
    waal.STRATEGIES,
    adversarial.STRATEGIES,
    vaal.STRATEGIES,
    sraal.STRATEGIES,
)

REGISTRY: dict[str, Strategy] = {
    s.name: s for family in _FAMILIES for s in family}


def names() -> list[str]:
  """Registered strategy names, sorted."""
  return sorted(REGISTRY)


def get(name: str) -> Strategy:
  """The strategy registered as `name`; an error lists the valid names."""
  try:
    return REGISTRY[name]
  except KeyError:
    raise errors.UnknownNameError(
        f'Unknown strategy {name!r}. Valid names: {", ".join(names())}.'
    ) from None
