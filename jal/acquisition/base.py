"""The strategy record and the selection helpers every strategy shares.

A strategy is data, in the optax style: its name, the predictions it needs,
its hyperparameters with their defaults, and a pure pair

- `init(key, inputs, labeled_mask, **hp) -> state`, called once per
  experiment, at the first query (any pytree; `()` for most strategies);
- `select(key, inputs, labeled_mask, state, query_size, **hp) ->
  (indices [query_size] int32, state)`, jittable with `query_size` static.

The loop checkpoints the state with the experiment. `inputs` is a dict
holding the predictions named in `needs`:

- `'log_probs'`: [1, N, C] float32, one deterministic pass (eval mode).
- `'mc_log_probs'`: [K, N, C] float32, K stochastic predictions from the
  posterior source (MC dropout, ensemble members, Laplace heads, batch-norm
  passes).
  Rows of labeled points in these two may be left uncomputed (zeros) unless
  the strategy also needs embeddings.
- `'embeddings'`: [N, D] float32, penultimate activations (eval mode).
- `'features'`: tuple of [N, ...] intermediate activations the model exposes.
- `'images'`: [N, ...] the pool itself, for strategies that train their own
  networks at query time (`jal.train.fit_on_mask`).
- `'labels'`: [N] int32 the oracle's labels revealed so far, -1 at
  unlabeled points (for networks trained at query time with a supervised
  term, e.g. SRAAL's target learner).
- `'logits_fn'`: `f(x [B, ...]) -> logits [B, C]`, the trained model in eval
  mode, to differentiate with respect to its inputs.
- `'aux_params'`: the auxiliary parameters trained by the strategy's
  `objective` alongside the task model.

Every hyperparameter has a declared `ranges` entry (`jal.acquisition.ranges`);
`check_hparams` refuses values outside it before any work.

Two more hooks ride on the record: `objective` (a `jal.train.Objective`
plugged into the task model's training, or a function of the strategy's
hyperparameters that builds one) and `train_set` (`train_set(state,
train_set) -> train_set`, which may add pseudo-labelled pool rows or extra
rows to the next training; pseudo-labels never count as oracle labels).

A strategy built on another registered one (CEAL runs any base strategy)
sets `bind(hparams, config_hparams) -> Strategy`: given its own checked
hyperparameters and the config's `hparams` ({strategy name: {name: value}}),
it returns the concrete record to run, e.g. with its base's `needs` and the
base's hyperparameters bound. `resolve` applies it.

Score functions share one signature, `score(log_probs: [K, N, C]) -> [N]`
(higher = more worth labeling), so each works on deterministic (K = 1) and on
stochastic predictions alike.
"""

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jal import checks
from jal import errors
from jal.acquisition.ranges import Range

PREDICTIONS = ('log_probs', 'mc_log_probs', 'embeddings', 'features',
               'images', 'labels', 'logits_fn', 'aux_params')


def no_state(key, inputs, labeled_mask, **hparams):
  del key, inputs, labeled_mask, hparams
  return ()


class Strategy(NamedTuple):
  """A registered acquisition strategy (see the module docstring).

  Attributes:
    name: registry name.
    needs: keys of `inputs` that `init` and `select` read (a subset of
      `PREDICTIONS`).
    select: `select(key, inputs, labeled_mask, state, query_size, **hp) ->
      (indices, state)`.
    init: `init(key, inputs, labeled_mask, **hp) -> state`.
    hparams: hyperparameter names and their defaults; a value set in the
      config must have the default's type (an int may stand for a float;
      a None default takes a number or None).
    objective: optional `jal.train.Objective` for the task model's training,
      or a function `objective(**hp) -> Objective` of the hyperparameters.
    train_set: optional `train_set(state, train_set) -> train_set`.
    ranges: hyperparameter name → the `Range` of values it allows. Every
      registered strategy declares one per hyperparameter; a user's strategy
      may leave some out (those are then checked by type only).
    bind: optional `bind(hparams, config_hparams) -> Strategy`, the record
      to run once the hyperparameters are known (see `resolve`).
    score: optional `score(inputs) -> [N]`, the per-point acquisition score
      a score-based strategy ranks by (higher = more worth labeling), shown
      to the people who label a batch; None for set-based strategies.
  """
  name: str
  needs: tuple[str, ...]
  select: Callable[..., Any]
  init: Callable[..., Any] = no_state
  hparams: Mapping[str, Any] = {}
  objective: Any = None
  train_set: Callable[..., Any] | None = None
  ranges: Mapping[str, Range] = {}
  bind: Callable[..., 'Strategy'] | None = None
  score: Callable[[Mapping[str, Any]], jax.Array] | None = None


def keyword_defaults(fn: Callable) -> dict[str, Any]:
  """The defaults of `fn`'s parameters that have one."""
  return {name: p.default for name, p in inspect.signature(fn).parameters.items()
          if p.default is not p.empty}


def stateless(name: str, needs: tuple[str, ...],
              select: Callable[..., jax.Array], **fields) -> Strategy:
  """A strategy without state from `select(key, inputs, mask, query_size,
  **hp) -> indices`; its hyperparameters are `select`'s keyword defaults
  (pass their `ranges=` among `fields`)."""

  def select_with_state(key, inputs, labeled_mask, state, query_size, **hp):
    return select(key, inputs, labeled_mask, query_size, **hp), state

  return Strategy(name, tuple(needs), select_with_state,
                  hparams=keyword_defaults(select), **fields)


def _type_ok(value, default) -> bool:
  if default is None:
    return value is None or (isinstance(value, (int, float))
                             and not isinstance(value, bool))
  if isinstance(default, bool):
    return isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  return isinstance(value, type(default))


def check_hparams(strategy: Strategy, values: Mapping[str, Any]) -> dict:
  """The strategy's hyperparameters: defaults overridden by `values`.

  Raises:
    ConfigError: a name the strategy does not take, a value of the wrong
      type, or a value outside the hyperparameter's declared range.
  """
  unknown = sorted(set(values) - set(strategy.hparams))
  if unknown:
    raise errors.ConfigError(
        f'config.hparams.{strategy.name} has {", ".join(unknown)}, which '
        f'strategy {strategy.name!r} does not take; its hyperparameters are: '
        f'{", ".join(strategy.hparams) or "none"}.')
  for name, value in values.items():
    default = strategy.hparams[name]
    if not _type_ok(value, default):
      raise errors.ConfigError(
          f'config.hparams.{strategy.name}.{name} must be of the type of its '
          f'default {default!r}, got {value!r}.')
  hparams = {**strategy.hparams, **values}
  for name, value in hparams.items():
    allowed = strategy.ranges.get(name)
    if allowed is not None and not allowed.contains(value):
      raise errors.ConfigError(
          f'config.hparams.{strategy.name}.{name} must be '
          f'{allowed.description}, got {value!r}. Set it within that range '
          f'or leave it out for the default, {strategy.hparams[name]!r}.')
  return hparams


def resolve(strategy: Strategy, config_hparams: Mapping[str, Mapping]
            ) -> tuple[Strategy, dict]:
  """The record to run and its checked hyperparameters.

  Args:
    strategy: a registered or user strategy.
    config_hparams: {strategy name: {hyperparameter: value}}, e.g. the
      config's `hparams`; `strategy`'s own entry overrides its defaults, and
      a strategy with `bind` may read others' (CEAL: its base's).

  Returns:
    `strategy.bind(hparams, config_hparams)` if it has `bind`, else
    `strategy`; and the hyperparameters.

  Raises:
    ConfigError: see `check_hparams`.
  """
  hparams = check_hparams(strategy,
                          dict(config_hparams.get(strategy.name, {})))
  if strategy.bind is not None:
    strategy = strategy.bind(hparams, config_hparams)
  return strategy, hparams


def _check_input(name: str, x, n: int, unlabeled) -> None:
  """Raises unless `inputs[name]` has the layout the module docstring gives."""
  arg = f'inputs[{name!r}]'
  if name in ('log_probs', 'mc_log_probs'):
    checks.log_probs(x, arg, 3, '[K, N, C]', n=n, rows=unlabeled)
  elif name == 'embeddings':
    shape = checks.array(x, 2, arg, '[N, D]', floating=True)
    checks.size(shape[0], n, arg, 'rows', 'one per pool point')
    checks.finite(x, arg)
  elif name == 'features':
    if not isinstance(x, (tuple, list)):
      raise errors.ConfigError(
          f'{arg} must be a tuple of [N, ...] arrays, got {type(x).__name__}.')
    for i, feature in enumerate(x):
      if not np.shape(feature) or np.shape(feature)[0] != n:
        raise errors.ConfigError(
            f'{arg}[{i}] must be [N, ...] with N = {n} pool points, got shape '
            f'{np.shape(feature)}.')
  elif name == 'images':
    if not np.shape(x) or np.shape(x)[0] != n:
      raise errors.ConfigError(
          f'{arg} must be the [N, ...] pool with N = {n}, got shape '
          f'{np.shape(x)}.')
  elif name == 'labels':
    shape = checks.array(x, 1, arg, '[N]')
    checks.size(shape[0], n, arg, 'rows', 'one per pool point')
  elif name == 'logits_fn' and not callable(x):
    raise errors.ConfigError(
        f'{arg} must be a function x [B, ...] -> logits [B, C], got '
        f'{type(x).__name__}.')


def check_query_args(strategy: Strategy, inputs: Mapping[str, Any],
                     labeled_mask, query_size: int) -> None:
  """Raises a `ConfigError` naming the first bad argument of `query`.

  Shapes are always checked; values (finite, normalized, how many points are
  unlabeled) only when concrete.
  """
  n = checks.mask(labeled_mask, 'labeled_mask')
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, labeled_mask, 'query_size',
                    'pool points are unlabeled', count_false=True)
  if not isinstance(inputs, Mapping):
    raise errors.ConfigError(
        f'inputs must be a dict of predictions, got {type(inputs).__name__}.')
  missing = [name for name in strategy.needs if name not in inputs]
  if missing:
    raise errors.ConfigError(
        f'inputs lacks {", ".join(map(repr, missing))}, which strategy '
        f'{strategy.name!r} needs (see `jal.acquisition.base` for each '
        'layout).')
  unlabeled = (~np.asarray(labeled_mask) if checks.concrete(labeled_mask)
               else None)
  for name in strategy.needs:
    _check_input(name, inputs[name], n, unlabeled)
  if {'log_probs', 'mc_log_probs'} <= set(strategy.needs):
    checks.size(np.shape(inputs['mc_log_probs'])[-1],
                np.shape(inputs['log_probs'])[-1], "inputs['mc_log_probs']",
                'classes', "as many as inputs['log_probs']")


def check_selection(name: str, indices, labeled_mask, query_size: int) -> None:
  """Raises unless concrete `indices` are `query_size` distinct unlabeled
  pool indices (the strategy's contract)."""
  if np.shape(indices) != (query_size,):
    raise errors.ConfigError(
        f'Strategy {name!r} returned indices of shape {np.shape(indices)}, '
        f'expected ({query_size},).')
  if not checks.concrete(indices, labeled_mask):
    return
  picks, labeled = np.asarray(indices), np.asarray(labeled_mask)
  problem = None
  if picks.min() < 0 or picks.max() >= labeled.shape[0]:
    problem = f'indices outside [0, {labeled.shape[0]})'
  elif len(np.unique(picks)) < query_size:
    problem = 'repeated indices'
  elif labeled[picks].any():
    problem = f'labeled points {picks[labeled[picks]].tolist()}'
  if problem:
    raise errors.ConfigError(
        f'Strategy {name!r} selected {problem}: {picks.tolist()}. Its scores '
        'or inputs may hold NaN or inf; check them, or the strategy.')


def query(strategy: Strategy, key: jax.Array, inputs: dict,
          labeled_mask: jax.Array, query_size: int, **hparams) -> jax.Array:
  """One query of `strategy` outside the loop: `init`, then `select`.

  For research use on fixed inputs; hyperparameters not given take the
  strategy's defaults (a strategy with `bind` is bound with only its own:
  CEAL's base runs with its defaults). The arguments are checked first, and the selection
  after (see `check_query_args`, `check_selection`).

  Args:
    strategy: a `Strategy`, e.g. `jal.acquisition.get('bald')`.
    key: PRNG key.
    inputs: the predictions named in `strategy.needs` (layouts in the module
      docstring), each with N pool points.
    labeled_mask: [N] bool.
    query_size: static batch size b, 1 ≤ b ≤ the unlabeled count.
    **hparams: the strategy's hyperparameters, within their ranges.

  Returns:
    [query_size] int32 distinct unlabeled pool indices.

  Raises:
    ConfigError: a bad hyperparameter or argument, naming it.
  """
  strategy, hparams = resolve(strategy, {strategy.name: hparams})
  check_query_args(strategy, inputs, labeled_mask, query_size)
  # NumPy arrays are fine here; strategies index with `.at` and trace.
  labeled_mask = jnp.asarray(labeled_mask)
  inputs = {name: jnp.asarray(value) if isinstance(value, np.ndarray)
            else value for name, value in inputs.items()}
  state = strategy.init(jax.random.fold_in(key, 1), inputs, labeled_mask,
                        **hparams)
  indices, _ = strategy.select(key, inputs, labeled_mask, state, query_size,
                               **hparams)
  check_selection(strategy.name, indices, labeled_mask, query_size)
  return indices


def top_k_unlabeled_first(scores: jax.Array, labeled_mask: jax.Array,
                          k: int) -> jax.Array:
  """The `k` highest-scoring points, every unlabeled one before any labeled.

  Unlike `top_k_unlabeled`, `k` may exceed the unlabeled count: the surplus
  are labeled points (strategies that pre-filter a fixed number of candidates
  mask them out afterwards). Unchecked: for use inside strategies.

  Args:
    scores: [N] float; NaN counts as the lowest score.
    labeled_mask: [N] bool.
    k: static, at most N.

  Returns:
    [k] int32, best first; ties go to the lower index.
  """
  scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
  # Unlabeled -inf scores must still beat labeled points.
  scores = jnp.where(labeled_mask, -jnp.inf, jnp.maximum(scores, jnp.finfo(
      scores.dtype).min))
  _, indices = jax.lax.top_k(scores, k)
  return indices.astype(jnp.int32)


def top_k_unlabeled(scores: jax.Array, labeled_mask: jax.Array,
                    query_size: int) -> jax.Array:
  """Indices of the `query_size` highest-scoring unlabeled points.

  Args:
    scores: [N] float; NaN counts as the lowest score.
    labeled_mask: [N] bool; labeled points are never chosen.
    query_size: static number to choose; at most the unlabeled count
      (checked when the mask is concrete).

  Returns:
    [query_size] int32, best first; ties go to the lower index.
  """
  n = checks.array(scores, 1, 'scores', '[N]')[0]
  checks.mask(labeled_mask, 'labeled_mask', n)
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, labeled_mask, 'query_size',
                    'pool points are unlabeled', count_false=True)
  return top_k_unlabeled_first(scores, labeled_mask, query_size)


def score_strategy(name: str, score: Callable[[jax.Array], jax.Array],
                   needs: str = 'log_probs') -> Strategy:
  """Wraps `score(log_probs [K, N, C]) -> [N]` as a top-k strategy."""

  def select(key, inputs, labeled_mask, query_size):
    del key
    return top_k_unlabeled(score(inputs[needs]), labeled_mask, query_size)

  return stateless(name, (needs,), select,
                   score=lambda inputs: score(inputs[needs]))
