"""The strategy record and the selection helpers every strategy shares.

A strategy is data: its name, the predictions it needs, and a pure
`select(key, inputs, labeled_mask, query_size, **hyperparameters)` returning
`query_size` distinct unlabeled pool indices. `inputs` is a dict holding the
predictions named in `needs`:

- `'log_probs'`: [1, N, C] float32, one deterministic pass (eval mode).
- `'mc_log_probs'`: [K, N, C] float32, K stochastic passes (MC dropout or
  ensemble members).
  Rows of labeled points in these two may be left uncomputed (zeros) unless
  the strategy also needs embeddings.
- `'embeddings'`: [N, D] float32, penultimate activations (eval mode).
- `'labels'`: [N] int32, revealed labels, -1 where unknown.
- `'pool_state'`: [N] int32 from the strategy's `prepare`, computed at the
  first query and kept for the rest of the experiment (e.g. cluster ids of a
  clustering done once); always present when the strategy has `prepare`.

Score functions share one signature, `score(log_probs: [K, N, C]) -> [N]`
(higher = more worth labeling), so each works on deterministic (K = 1) and on
stochastic predictions alike.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

PREDICTIONS = ('log_probs', 'mc_log_probs', 'embeddings', 'labels')


class Strategy(NamedTuple):
  """A registered acquisition strategy.

  Attributes:
    name: registry name.
    needs: keys of `inputs` that `select` reads (a subset of `PREDICTIONS`).
    select: `select(key, inputs, labeled_mask [N] bool, query_size, **kw)
      -> [query_size] int32`; jittable with `query_size` static.
    prepare: optional `prepare(key, inputs, labeled_mask, **kw) -> [N] int32`,
      run once at the first query; its result reaches every later `select`
      as `inputs['pool_state']` and is checkpointed with the experiment.
  """
  name: str
  needs: tuple[str, ...]
  select: Callable[..., jax.Array]
  prepare: Callable[..., jax.Array] | None = None


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

  return Strategy(name, (needs,), select)
