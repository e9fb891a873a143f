"""Posterior sources: where the K stochastic predictions come from.

A source is data, like a strategy: a `Posterior` record says how to
initialise the variables it trains, how to fit them with the task trainer,
which single model gives the deterministic predictions, and how to sample
log-probabilities `[K, N, C]` over the pool. The registry `SOURCES` maps a
config name to a builder `make(model, input_shape, config) -> Posterior`:

| name | K stochastic predictions from |
|---|---|
| `mc_dropout` | K passes with dropout on (consistent masks by default) |
| `ensemble` | M members trained at once (`vmap` over stacked variables) |
| `laplace` | K heads sampled from a last-layer Laplace posterior |
| `bn_train` | K passes with batch norm on batch statistics of shuffled chunks (DeepAL+'s "D" versions) |
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jal import errors
from jal import models
from jal.posterior import sources
from jal.posterior import laplace


class Posterior(NamedTuple):
  """A posterior source bound to a model and a config.

  Attributes:
    name: registry name.
    init: `init(key) -> variables` (stacked over members for an ensemble).
    fit: `fit(fit_one, key, variables) -> variables`, where
      `fit_one(key, variables) -> trained variables` trains one model.
    point: `point(variables) -> Variables` of the single model behind the
      deterministic predictions (log_probs, embeddings).
    test_log_probs: `test_log_probs(variables, images) -> [N, C]` for the
      test accuracy (an ensemble's mean prediction).
    sample: `sample(key, variables, images, labeled_mask, include_mask) ->
      [K, N, C]` log-probabilities.
  """
  name: str
  init: Callable[[jax.Array], Any]
  fit: Callable[..., Any]
  point: Callable[[Any], models.Variables]
  test_log_probs: Callable[..., jax.Array]
  sample: Callable[..., jax.Array]


SOURCES = {
    'mc_dropout': sources.mc_dropout,
    'ensemble': sources.ensemble,
    'laplace': laplace.laplace,
    'bn_train': sources.bn_train,
}


def names() -> list[str]:
  return sorted(SOURCES)


def get(name: str, model: models.Model, input_shape: tuple[int, ...],
        config) -> Posterior:
  """The source `name` for `model`; an error lists the valid names."""
  if name not in SOURCES:
    raise errors.UnknownNameError(
        f'config.posterior: unknown posterior source {name!r}. Valid names: '
        f'{", ".join(names())}.')
  return Posterior(name, **SOURCES[name](model, tuple(input_shape), config))
