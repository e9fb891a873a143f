"""CEAL: cost-effective active learning with confident pseudo-labels.

Wang, Zhang, Li, Zhang and Lin, "Cost-Effective Active Learning for Deep
Image Classification", IEEE TCSVT 27(12), 2017. Each round a base criterion
(any registered strategy; `entropy` by default, as DeepAL+'s
`CEALSampling+EntropySampling`) picks the b points the oracle labels. Then
every other unlabeled point whose predictive entropy (nats, from the current
model's deterministic pass) is below a threshold δ_t gets its predicted class
as a pseudo-label for the NEXT training only. Pseudo-labels are recomputed
each round (they never accumulate: a point returns to the pool after one
training), never reach the oracle, and never count toward the budget.

The threshold shrinks with the query index t = 1, 2, ... (the first query is
t = 1):

- `decay='linear'` (the paper, default): δ_t = δ₀ − d·t;
- `decay='cumulative'` (DeepAL+'s `query_strategies/ceal.py`, which
  subtracts d·t from a running δ every round): δ_t = δ₀ − d·t(t+1)/2;
- `decay='none'`: δ_t = δ₀.

A δ_t ≤ 0 pseudo-labels nothing. Entropy takes 0·log 0 = 0, so a point
whose other classes underflow to probability 0 is confident (DeepAL+'s
`(-p * log p).sum()` gives NaN there and never pseudo-labels it). The defaults δ₀ = 1e-5 (the survey's
threshold) and d = 0.033e-5 are DeepAL+'s; its code defaults to δ₀ = 5e-5:
for code parity set `delta=5e-5, decay='cumulative'`.

The base strategy runs with `config.hparams.<base>` (its defaults unless the
config sets them), exactly as it would run alone, and with the same keys, so
CEAL's oracle batches equal its base's given the same model. Its `needs`
and its training objective (if any) become CEAL's (`Strategy.bind`).

Fixed shapes: the pseudo-labels are an [N] int32 array (-1 = none) in the
strategy state; the training set is `labeled | pseudo ≥ 0` over the pool
mask, so each round compiles once.
"""

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jal import train
from jal.acquisition import ranges
from jal.acquisition.base import Strategy, resolve

DECAYS = ('linear', 'cumulative', 'none')


class CealState(NamedTuple):
  """CEAL's state between rounds.

  Attributes:
    num_queries: [] int32, queries made so far (t of the latest; 0 before
      the first, when no pseudo-labels exist).
    pseudo_labels: [N] int32, the next training's pseudo-label of each pool
      point, -1 for none.
    base: the base strategy's state.
  """
  num_queries: jax.Array
  pseudo_labels: jax.Array
  base: Any


def threshold(t: jax.typing.ArrayLike, delta: float, delta_decay: float,
              decay: str) -> jax.Array:
  """δ_t, the entropy threshold of query t (1-based; see the module doc).

  Args:
    t: [] int, the query index.
    delta: δ₀.
    delta_decay: d.
    decay: 'linear' (δ₀ − d·t), 'cumulative' (δ₀ − d·t(t+1)/2) or 'none'.

  Returns:
    [] float32; may be negative (then nothing is pseudo-labeled).
  """
  t = jnp.asarray(t, jnp.float32)
  if decay == 'linear':
    return delta - delta_decay * t
  if decay == 'cumulative':
    return delta - delta_decay * t * (t + 1) / 2
  if decay == 'none':
    return jnp.float32(delta)
  raise ValueError(f'decay must be one of {DECAYS}, got {decay!r}.')


def confident_entropy(log_probs: jax.Array) -> jax.Array:
  """H[p] = −Σ p log p in nats, accurate when p is nearly one-hot.

  Written in d_c = log p_c − log p_max so that the top class's term, about
  1 − p_max, is not lost to rounding: with s = Σ_{c≠max} e^{d_c},
  H = log1p(s) − Σ_c e^{d_c} d_c / (1 + s).

  Args:
    log_probs: [N, C] log-probabilities (need not be exactly normalized).

  Returns:
    [N] float.
  """
  diffs = log_probs - jnp.max(log_probs, axis=-1, keepdims=True)
  top = jax.nn.one_hot(jnp.argmax(log_probs, -1), log_probs.shape[-1],
                       dtype=bool)
  rest = jnp.where(top, 0.0, jnp.exp(diffs))
  s = jnp.sum(rest, axis=-1)
  # 0·log 0 = 0: a class of probability 0 (d_c = −inf) adds nothing.
  terms = jnp.where(rest > 0, rest * diffs, 0.0)
  return jnp.log1p(s) - jnp.sum(terms, axis=-1) / (1.0 + s)


def pseudo_labels(log_probs: jax.Array, eligible: jax.Array,
                  delta_t: jax.typing.ArrayLike) -> jax.Array:
  """argmax p where eligible and H[p] < δ_t, else -1.

  Args:
    log_probs: [N, C] one deterministic pass.
    eligible: [N] bool, the points that may be pseudo-labeled (unlabeled and
      not just queried).
    delta_t: [] threshold.

  Returns:
    [N] int32.
  """
  confident = eligible & (confident_entropy(log_probs) < delta_t)
  return jnp.where(confident, jnp.argmax(log_probs, -1), -1).astype(jnp.int32)


def _registry():
  from jal import acquisition  # pylint: disable=g-import-not-at-top
  return acquisition.REGISTRY


def _valid_base(name) -> bool:
  strategy = _registry().get(name) if isinstance(name, str) else None
  return (strategy is not None and strategy.train_set is None and
          strategy.bind is None)


def _init(key, inputs, labeled_mask, *, base, delta, delta_decay, decay,
          base_strategy, base_hparams):
  del base, delta, delta_decay, decay
  return CealState(
      jnp.zeros((), jnp.int32),
      jnp.full(labeled_mask.shape, -1, jnp.int32),
      base_strategy.init(key, inputs, labeled_mask, **base_hparams))


def _select(key, inputs, labeled_mask, state, query_size, *, base, delta,
            delta_decay, decay, base_strategy, base_hparams):
  del base
  selected, base_state = base_strategy.select(
      key, inputs, labeled_mask, state.base, query_size, **base_hparams)
  t = state.num_queries + 1
  queried = labeled_mask.at[selected].set(True)
  pseudo = pseudo_labels(inputs['log_probs'][0], ~queried,
                         threshold(t, delta, delta_decay, decay))
  return selected, CealState(t, pseudo, base_state)


def _train_set(state: CealState, rows: train.TrainSet) -> train.TrainSet:
  """The labeled rows plus this round's pseudo-labeled ones."""
  use = (state.num_queries > 0) & (state.pseudo_labels >= 0) & ~rows.mask
  return rows._replace(mask=rows.mask | use,
                       labels=jnp.where(use, state.pseudo_labels, rows.labels))


HPARAMS = dict(base='entropy', delta=1e-5, delta_decay=0.033e-5,
               decay='linear')
RANGES = dict(
    base=ranges.Range(_valid_base, "the name of a registered strategy "
                      "without a training-set hook or a base of its own "
                      "(not 'ceal')"),
    delta=ranges.NON_NEGATIVE,
    delta_decay=ranges.NON_NEGATIVE,
    decay=ranges.one_of(*DECAYS))


def bind(hparams: Mapping[str, Any],
         config_hparams: Mapping[str, Mapping]) -> Strategy:
  """CEAL over `hparams['base']`, run with `config_hparams[base]`.

  Args:
    hparams: CEAL's checked hyperparameters.
    config_hparams: {strategy name: {hyperparameter: value}}; the base's
      entry (defaults where absent) is checked and bound.

  Returns:
    The concrete record: the base's needs plus 'log_probs', its objective.
  """
  base_strategy, base_hparams = resolve(_registry()[hparams['base']],
                                        config_hparams)
  bound = dict(base_strategy=base_strategy, base_hparams=base_hparams)
  objective = base_strategy.objective
  if callable(objective):  # built from the base's hyperparameters
    objective = objective(**base_hparams)
  return Strategy(
      'ceal', tuple(dict.fromkeys(('log_probs', *base_strategy.needs))),
      functools.partial(_select, **bound), init=functools.partial(
          _init, **bound),
      hparams=HPARAMS, objective=objective,
      train_set=_train_set, ranges=RANGES)


def _default_select(key, inputs, labeled_mask, state, query_size, **hparams):
  return bind(hparams, {}).select(key, inputs, labeled_mask, state,
                                  query_size, **hparams)


def _default_init(key, inputs, labeled_mask, **hparams):
  return bind(hparams, {}).init(key, inputs, labeled_mask, **hparams)


# Unbound, the record runs the base with its defaults; `resolve` (the loop,
# `query`) binds the configured base and its hyperparameters.
STRATEGIES = (
    Strategy('ceal', ('log_probs',), _default_select, init=_default_init,
             hparams=HPARAMS, train_set=_train_set, ranges=RANGES,
             bind=bind),
)
