"""A round's query with the pool sharded over processes (`jal.distributed`).

Every process holds the whole trained model (replicated: the same config
and seed train the same parameters) and scores only its contiguous shard of
the pool (`distributed.process_rows`). Small per-process results are
exchanged with `distributed.gather`, so every process ends with the same
selection, the one `jal.rounds.query_round` makes in one process:

- score-based strategies (entropy, margin, bald, ...): the shard's scores
  from the predictions `rounds.predictions` makes in memory, its k best
  candidates merged across processes (`jal.stream.merge_top_k`);
- `kcenter`: `jal.stream.streamed_kcenter` over the shard's embeddings;
- `badge`: k-means++ over the factorized gradient embeddings of
  `jal.acquisition.badge`, sharded here: each step every process updates
  the distances of its rows, draws its rows' slice of the same Gumbel
  noise `gumbel(fold_in(key, t), [N])` as in memory, and offers its best
  row with that row's (a, h) vectors; the best offer (ties to the lower
  index) is the next centre in every process.

`query_round` has the signature of `rounds.query_round` (a drop-in for
`loop.RoundFns.query`). Strategies with a state, or needing other
predictions, are refused with a `ConfigError`.
"""

from collections.abc import Callable
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jal import distributed
from jal import errors
from jal import predict
from jal import rounds
from jal import stream
from jal.acquisition import badge as badge_lib
from jal.acquisition import base

SET_STRATEGIES = ('kcenter', 'badge')


def check_supported(strategy) -> None:
  """Raises `ConfigError` unless `strategy` can query a sharded pool."""
  if strategy.init is not base.no_state:
    raise errors.ConfigError(
        f'Strategy {strategy.name!r} keeps a state across rounds, which a '
        'multi-process run does not shard; run it in one process, or use a '
        'score-based strategy, kcenter or badge.')
  if strategy.name in SET_STRATEGIES:
    return
  if strategy.score is None:
    raise errors.ConfigError(
        f'Strategy {strategy.name!r} has no per-point score and no sharded '
        'selection; across processes jal runs score-based strategies '
        '(entropy, margin, bald, ...), kcenter and badge. Run it in one '
        'process.')
  stream.check_streamable(strategy)


def check_experiment(exp) -> None:
  """Raises `ConfigError` unless `exp`'s queries can run sharded: its
  strategy (`check_supported`), its posterior's samples row by row, no
  PCA for kcenter. Cheap: call it before any work."""
  check_supported(exp.strategy)
  if exp.strategy.name == 'kcenter' and exp.hparams.get('pca_dim'):
    raise errors.ConfigError(
        'config.hparams.kcenter.pca_dim > 0 is not supported across '
        'processes (the PCA would need the whole pool); set it to 0.')
  if exp.strategy.name not in SET_STRATEGIES:
    stream.experiment_predict_chunk(exp, ())  # raises on a bad posterior


def best_offer(value, index, payload, gather: Callable[[Any], Any]):
  """The best of every process's offer: highest value, ties lower index.

  Args:
    value: [] float32 this process's best value (-inf when it has none).
    index: [] int32 its global row index.
    payload: pytree that comes along with the offer (the row's vectors).
    gather: `distributed.gather` (or one process's stand-in).

  Returns:
    (index, value, payload) of the winning offer, the same in every process.
  """
  values, indices, payloads = gather((np.asarray(value, np.float32),
                                      np.asarray(index, np.int32), payload))
  values = np.where(np.isnan(values), -np.inf, values)
  best = values.max()
  winner = int(np.flatnonzero(values == best)[np.argmin(
      indices[values == best])])
  return (int(indices[winner]), float(values[winner]),
          jax.tree.map(lambda x: x[winner], payloads))


def shard_images(pool_images, rows: stream.Rows, chunk_size: int):
  """This process's rows of the pool, padded (repeating its first row) to
  at least min(chunk_size, N) rows.

  The in-memory predictions run the model on chunks of min(chunk_size, N)
  rows; padding the shard gives its chunks that same shape, so each row's
  prediction is computed as in memory (the same kernels: a chunk of another
  shape may round differently).
  """
  n = pool_images.shape[0]
  images = np.asarray(pool_images[rows.start:rows.stop])
  size = max(rows.stop - rows.start, min(chunk_size, n))
  if size > images.shape[0]:
    images = np.concatenate([images, np.repeat(
        images[:1], size - images.shape[0], axis=0)])
  return jnp.asarray(images)


@functools.partial(jax.jit, static_argnames=('exp',))
def _point_predictions(exp, variables, images):
  """log_probs [n, C] and embeddings [n, D] of rows, as `rounds.predictions`
  computes them (deterministic pass of the point model)."""
  logits, embeddings = predict.predict(
      exp.model, exp.posterior.point(variables), images,
      chunk_size=exp.config.eval_chunk)
  return jax.nn.log_softmax(logits), embeddings


def shard_predictions(exp, trained, pool_images, rows: stream.Rows):
  """([n, C] log_probs, [n, D] embeddings) of this process's `rows`."""
  images = shard_images(pool_images, rows, exp.config.eval_chunk)
  log_probs, embeddings = _point_predictions(exp, trained.variables, images)
  size = rows.stop - rows.start
  return log_probs[:size], embeddings[:size]


@functools.partial(jax.jit, static_argnames=('exp', 'k'))
def _shard_candidates(exp, key, trained, images, excluded, start, size, k):
  """This shard's k best (ranking keys, global indices), best first.

  The strategy's score of every row, from the predictions
  `rounds.predictions` makes for the whole pool in memory (same key), ranked
  as `top_k_unlabeled_first` ranks them; padded rows are never candidates.
  """
  inputs = rounds.predictions(exp, key, trained, images, excluded,
                              exp.strategy.needs)
  keys = stream.ranking_keys(exp.strategy.score(inputs), excluded)
  position = jnp.arange(images.shape[0])
  keys = jnp.where(position < size, keys, -jnp.inf)
  best, order = jax.lax.top_k(keys, k)
  return best, jnp.where(order < size, order + start,
                         stream.PAD_INDEX).astype(jnp.int32)


def score_select(exp, key, trained, pool_images, excluded: np.ndarray,
                 rows: stream.Rows, query_size: int,
                 gather: Callable[[Any], Any] = distributed.gather
                 ) -> np.ndarray:
  """A score-based strategy's top-k with the pool's rows over processes.

  Args:
    exp: the experiment (its strategy has a `score`).
    key: the round's prediction key (as `rounds.query_round` splits it).
    trained: the round's `rounds.Trained` model.
    pool_images: [N, ...] the pool (this process reads its rows).
    excluded: [N] bool, the points the strategy may not pick (labeled, or
      outside `config.pool_subsample`'s draw).
    rows: this process's rows.
    query_size: b.
    gather: the cross-process exchange.

  Returns:
    [query_size] int32 global indices, best first, the same in every
    process: those of `top_k_unlabeled_first` on the in-memory scores.
  """
  images = shard_images(pool_images, rows, exp.config.eval_chunk)
  padded = np.ones((images.shape[0],), bool)
  padded[:rows.stop - rows.start] = excluded[rows.start:rows.stop]
  k = min(query_size, images.shape[0])
  best, indices = _shard_candidates(
      exp, key, trained, images, jnp.asarray(padded), np.int32(rows.start),
      np.int32(rows.stop - rows.start), k)
  best = np.concatenate([np.asarray(best), np.full(query_size - k, -np.inf,
                                                   np.float32)])
  indices = np.concatenate([np.asarray(indices), np.full(
      query_size - k, stream.PAD_INDEX, np.int32)])
  all_best, all_indices = gather((best.astype(np.float32), indices))
  merged = (all_best[0], all_indices[0])
  for p in range(1, all_best.shape[0]):
    merged = stream.merge_top_k(*merged, all_best[p], all_indices[p],
                                query_size)
  return np.asarray(merged[1], np.int32)


class OffsetSource:
  """Rows [start, stop) of a pool held in memory by one process, as a
  `jal.stream` source over all `num_rows` (reads outside them fail)."""

  def __init__(self, local: np.ndarray, rows: stream.Rows, num_rows: int):
    self._local = np.asarray(local)
    self._rows = rows
    self.num_rows = num_rows
    self.row_shape = tuple(self._local.shape[1:])
    self.dtype = self._local.dtype

  def read(self, start: int, stop: int) -> np.ndarray:
    if start < self._rows.start or stop > self._rows.stop:
      raise errors.ConfigError(
          f'Rows [{start}, {stop}) were read from a process holding only '
          f'[{self._rows.start}, {self._rows.stop}).')
    return self._local[start - self._rows.start:stop - self._rows.start]

  def take(self, indices) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.size and (indices.min() < self._rows.start or
                         indices.max() >= self._rows.stop):
      raise errors.ConfigError(
          f'Rows {indices.tolist()} were read from a process holding only '
          f'[{self._rows.start}, {self._rows.stop}).')
    return self._local[indices - self._rows.start]


@functools.partial(jax.jit, static_argnames=('include_bias',))
def _badge_local_start(log_probs, embeddings, candidates, include_bias):
  a = badge_lib.loss_gradient_wrt_logits(log_probs)
  g_sq = badge_lib.factorized_sq_norms(a, embeddings, include_bias)
  masked = jnp.where(candidates, g_sq, -jnp.inf)
  best = jnp.argmax(masked)
  return a, g_sq, best, masked[best]


@functools.partial(jax.jit, static_argnames=('num_rows', 'include_bias'))
def _badge_local_step(key, t, a, h, g_sq, min_sq, available, a_p, h_p,
                      g_sq_p, start, num_rows, include_bias):
  """One k-means++ step on this process's rows: distances to the last pick,
  the D² Gumbel score, the best available local row."""
  hp = jax.lax.Precision.HIGHEST
  dots = (jnp.matmul(a, a_p, precision=hp) *
          (jnp.matmul(h, h_p, precision=hp) + float(include_bias)))
  min_sq = jnp.minimum(min_sq, jnp.maximum(g_sq - 2.0 * dots + g_sq_p, 0.0))
  gumbel = jax.lax.dynamic_slice_in_dim(
      jax.random.gumbel(jax.random.fold_in(key, t), (num_rows,)), start,
      a.shape[0])
  log_mass = jnp.log(min_sq)  # unit weights: log w = 0
  score = jnp.where(jnp.isfinite(log_mass), log_mass + gumbel, -1e30)
  masked = jnp.where(available, score, -jnp.inf)
  best = jnp.argmax(masked)
  return min_sq, best, masked[best]


def badge_select(key: jax.Array, log_probs: jax.Array, embeddings: jax.Array,
                 candidates: np.ndarray, rows: stream.Rows, num_rows: int,
                 query_size: int, include_bias: bool = True,
                 gather: Callable[[Any], Any] = distributed.gather
                 ) -> np.ndarray:
  """`badge.badge_select` with the pool's rows spread over processes.

  Args:
    key: PRNG key of the D² draws (the same in every process).
    log_probs: [n, C] float32 of this process's rows.
    embeddings: [n, D] float32 of its rows.
    candidates: [n] bool, its unlabeled rows.
    rows: its rows [start, stop) of the pool.
    num_rows: N, the whole pool.
    query_size: picks, at most the candidates of all processes.
    include_bias: whether the gradient includes the bias's part.
    gather: the cross-process exchange.

  Returns:
    [query_size] int32 global indices in seeding order, the same in every
    process and the same as `badge.badge_select` on the whole pool.
  """
  candidates = np.asarray(candidates, bool)
  total = int(gather(np.int32(candidates.sum())).sum())
  if not 1 <= query_size <= total:
    raise errors.ConfigError(
        f'query_size = {query_size} must be in [1, {total}] (the unlabeled '
        'points of the pool).')
  a, g_sq, best, value = _badge_local_start(
      log_probs, embeddings, jnp.asarray(candidates), include_bias)
  h = embeddings

  def offer(best, value):
    best = int(best)
    return best_offer(value, rows.start + best,
                      (np.asarray(a[best]), np.asarray(h[best]),
                       np.asarray(g_sq[best])), gather)

  pick, _, (a_p, h_p, g_sq_p) = offer(best, value)
  picks = [pick]
  available = candidates.copy()
  min_sq = jnp.full((rows.stop - rows.start,), jnp.inf, jnp.float32)
  for t in range(1, query_size):
    if rows.start <= picks[-1] < rows.stop:
      available[picks[-1] - rows.start] = False
    min_sq, best, value = _badge_local_step(
        key, t, a, h, g_sq, min_sq, jnp.asarray(available), a_p, h_p,
        g_sq_p, rows.start, num_rows, include_bias)
    pick, _, (a_p, h_p, g_sq_p) = offer(best, value)
    picks.append(pick)
  return np.asarray(picks, np.int32)


def query_round(exp, data, trained, state, query_size: int | None = None):
  """`rounds.query_round` with the pool sharded over the processes.

  Returns:
    selected [query_size] int32 pool indices (the same in every process)
    and the strategy state (unchanged: supported strategies have none).
  """
  check_experiment(exp)
  query_size = query_size or exp.config.query_size
  n = data.pool_images.shape[0]
  rows = distributed.process_rows(n)
  # The labeled points, and with config.pool_subsample those outside this
  # round's draw: what the strategy sees as labeled in memory too.
  mask = np.asarray(rounds.query_mask(exp, state))
  name = exp.strategy.name
  _, _, query_key = rounds.round_keys(state)
  predict_key, _, select_key = jax.random.split(query_key, 3)
  if name not in SET_STRATEGIES:
    return (score_select(exp, predict_key, trained, data.pool_images, mask,
                         rows, query_size), state.strategy_state)
  log_probs, embeddings = shard_predictions(exp, trained, data.pool_images,
                                            rows)
  if name == 'badge':
    selected = badge_select(select_key, log_probs, embeddings,
                            ~mask[rows.start:rows.stop], rows, n, query_size,
                            exp.hparams['include_bias'])
  else:
    selected = stream.streamed_kcenter(
        OffsetSource(np.asarray(embeddings), rows, n), mask, query_size,
        chunk_size=exp.hparams.get('chunk_size', exp.config.eval_chunk),
        rows=rows, gather=distributed.gather)
  return np.asarray(selected, np.int32), state.strategy_state
