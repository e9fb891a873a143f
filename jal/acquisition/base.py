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
- `'logits_fn'`: `f(x [B, ...]) -> logits [B, C]`, the trained model in eval
  mode, to differentiate with respect to its inputs.
- `'aux_params'`: the auxiliary parameters trained by the strategy's
  `objective` alongside the task model.

Two more hooks ride on the record: `objective` (a `jal.train.Objective`
plugged into the task model's training) and `train_set` (`train_set(state,
train_set) -> train_set`, which may add pseudo-labelled pool rows or extra
rows to the next training; pseudo-labels never count as oracle labels).

Score functions share one signature, `score(log_probs: [K, N, C]) -> [N]`
(higher = more worth labeling), so each works on deterministic (K = 1) and on
stochastic predictions alike.
"""

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jal import errors

PREDICTIONS = ('log_probs', 'mc_log_probs', 'embeddings', 'features',
               'images', 'logits_fn', 'aux_params')


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
    objective: optional `jal.train.Objective` for the task model's training.
    train_set: optional `train_set(state, train_set) -> train_set`.
  """
  name: str
  needs: tuple[str, ...]
  select: Callable[..., Any]
  init: Callable[..., Any] = no_state
  hparams: Mapping[str, Any] = {}
  objective: Any = None
  train_set: Callable[..., Any] | None = None


def keyword_defaults(fn: Callable) -> dict[str, Any]:
  """The defaults of `fn`'s parameters that have one."""
  return {name: p.default for name, p in inspect.signature(fn).parameters.items()
          if p.default is not p.empty}


def stateless(name: str, needs: tuple[str, ...],
              select: Callable[..., jax.Array], **fields) -> Strategy:
  """A strategy without state from `select(key, inputs, mask, query_size,
  **hp) -> indices`; its hyperparameters are `select`'s keyword defaults."""

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
    ConfigError: a name the strategy does not take, or a value of the wrong
      type.
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
  return {**strategy.hparams, **values}


def query(strategy: Strategy, key: jax.Array, inputs: dict,
          labeled_mask: jax.Array, query_size: int, **hparams) -> jax.Array:
  """One query of `strategy` outside the loop: `init`, then `select`.

  For research use on fixed inputs; hyperparameters not given take the
  strategy's defaults.

  Returns:
    [query_size] int32 pool indices.
  """
  hparams = check_hparams(strategy, hparams)
  state = strategy.init(jax.random.fold_in(key, 1), inputs, labeled_mask,
                        **hparams)
  indices, _ = strategy.select(key, inputs, labeled_mask, state, query_size,
                               **hparams)
  return indices


def top_k_unlabeled(scores: jax.Array, labeled_mask: jax.Array,
                    query_size: int) -> jax.Array:
  """Indices of the `query_size` highest-scoring unlabeled points.

  Args:
    scores: [N] float; NaN counts as the lowest score.
    labeled_mask: [N] bool; labeled points are never chosen.
    query_size: static number to choose; at most the unlabeled count.

  Returns:
    [query_size] int32, best first; ties go to the lower index.
  """
  scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
  # Unlabeled -inf scores must still beat labeled points.
  scores = jnp.where(labeled_mask, -jnp.inf, jnp.maximum(scores, jnp.finfo(
      scores.dtype).min))
  _, indices = jax.lax.top_k(scores, query_size)
  return indices.astype(jnp.int32)


def score_strategy(name: str, score: Callable[[jax.Array], jax.Array],
                   needs: str = 'log_probs') -> Strategy:
  """Wraps `score(log_probs [K, N, C]) -> [N]` as a top-k strategy."""

  def select(key, inputs, labeled_mask, query_size):
    del key
    return top_k_unlabeled(score(inputs[needs]), labeled_mask, query_size)

  return stateless(name, (needs,), select)
