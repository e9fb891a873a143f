"""Pools read from disk in fixed-size chunks: selection in chunk-bounded memory.

A pool too large for memory stays on disk as an `.npy` file (`NpySource`,
a read-only memory map) or any object with the same four members
(`num_rows`, `row_shape`, `dtype`, `read(start, stop)`); `ArraySource` wraps
an array already in memory. Selection then reads the pool chunk by chunk:

- `streamed_top_k`: the k best rows under any per-row score, keeping only k
  candidates (scores and global indices) between chunks;
- `streamed_select`: every score-based strategy (`Strategy.score` not None)
  on predictions computed chunk by chunk (`predict_chunk`), e.g. from a
  trained experiment (`experiment_predict_chunk`, the values
  `jal.rounds.predictions` gives in memory);
- `embed_to_npy`: an [N, D] embedding cache written chunk by chunk;
- `streamed_kcenter`, `streamed_kmeans`, `streamed_kmeans_select`:
  k-center and k-means over features on disk.

Every chunk has the same shape (the last is padded; padded rows are never
selected), so each jitted step compiles once per call.

Many processes: each reads only its shard of the rows (`rows`, e.g.
`shard_rows(num_rows, num_processes, process_id)`), and `gather(tree)`
exchanges small per-process results: it returns the pytree with a new
leading axis of length num_processes, identical in every process (e.g.
`jal.distributed.gather`). The default is one process. Every process then
returns the same selection, equal to the single-process one.

Ranking rules are those of `jal.acquisition.base.top_k_unlabeled_first`:
NaN is the lowest score, an unlabeled point always ranks above a labeled
one (even at −inf), ties go to the lower index.
"""

import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jal import checks
from jal import errors

# Index of a padded (non-existent) row: above every real index, so it loses
# every tie and is never selected while k ≤ the number of rows.
PAD_INDEX = np.iinfo(np.int32).max

DEFAULT_CHUNK = 65536


# --------------------------------------------------------------- sources


class Rows(NamedTuple):
  """A contiguous range of pool rows, [start, stop)."""
  start: int
  stop: int

  @property
  def size(self) -> int:
    return self.stop - self.start


def shard_rows(num_rows: int, num_shards: int, index: int) -> Rows:
  """Shard `index` of `num_rows` rows split into `num_shards` contiguous parts.

  Sizes differ by at most one, the lower shards being the larger.

  Raises:
    ConfigError: a negative row count, a shard count below 1, or an index
      outside [0, num_shards).
  """
  checks.int_at_least(num_rows, 0, 'num_rows')
  checks.positive_int(num_shards, 'num_shards')
  checks.int_in(index, 0, num_shards - 1, 'index',
                f'one of the {num_shards} shards')
  base, extra = divmod(num_rows, num_shards)
  start = index * base + min(index, extra)
  return Rows(start, start + base + (index < extra))


class ArraySource:
  """A pool held in memory (any array with a leading row axis)."""

  def __init__(self, array):
    array = np.asanyarray(array)
    _check_rows(array.shape, array.dtype, 'array')
    self.array = array

  @property
  def num_rows(self) -> int:
    return self.array.shape[0]

  @property
  def row_shape(self) -> tuple[int, ...]:
    return tuple(self.array.shape[1:])

  @property
  def dtype(self) -> np.dtype:
    return self.array.dtype

  def read(self, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) as an array [stop − start, *row_shape]."""
    return self.array[start:stop]


_NPY_MAGIC = b'\x93NUMPY'


class NpySource(ArraySource):
  """A pool in an `.npy` file, read through a read-only memory map.

  Raises:
    DatasetNotFoundError: no file at `path`.
    ConfigError: the file is not an `.npy` array (e.g. `.npz`, pickle, text),
      holds Python objects, or has no row axis.
  """

  def __init__(self, path: str | os.PathLike):
    path = os.fspath(path)
    if not os.path.isfile(path):
      what = 'a directory, not' if os.path.isdir(path) else 'no'
      raise errors.DatasetNotFoundError(
          f'{path!r} is {what} .npy pool file. Write one with '
          '`np.save(path, array)` or `jal.stream.embed_to_npy`.')
    with open(path, 'rb') as f:
      if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise errors.ConfigError(
            f'{path!r} is not an .npy file (no NumPy magic header). A pool '
            'must be one array saved with `np.save` (not `np.savez` or a '
            'pickle).')
      f.seek(0)
      version = np.lib.format.read_magic(f)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      try:
        shape, _, dtype = read_header(f)
      except ValueError as e:
        raise errors.ConfigError(
            f'{path!r} has a malformed .npy header ({e}); write it again '
            'with `np.save`.') from None
    if dtype.hasobject:
      raise errors.ConfigError(
          f'{path!r} holds Python objects (dtype {dtype}), which cannot be '
          'memory-mapped; save a numeric array instead.')
    _check_rows(shape, dtype, path)
    self.path = path
    super().__init__(np.load(path, mmap_mode='r'))


def _check_rows(shape, dtype, name) -> None:
  if np.dtype(dtype).hasobject:
    raise errors.ConfigError(
        f'{name} holds Python objects (dtype {dtype}); a pool must be a '
        'numeric array.')
  if len(shape) < 1:
    raise errors.ConfigError(
        f'{name} must have a leading row axis [N, ...], got shape {shape}.')
  if shape[0] >= PAD_INDEX:
    raise errors.ConfigError(
        f'{name} has {shape[0]} rows; at most {PAD_INDEX - 1} are supported.')


def as_source(pool):
  """`pool` itself if it is a source, else `ArraySource(pool)`."""
  if all(hasattr(pool, a) for a in ('num_rows', 'row_shape', 'dtype',
                                     'read')):
    return pool
  return ArraySource(pool)


def _rows(rows: Rows | None, num_rows: int) -> Rows:
  if rows is None:
    return Rows(0, num_rows)
  start, stop = rows
  if not (checks.is_int(start) and checks.is_int(stop)
          and 0 <= start <= stop <= num_rows):
    raise errors.ConfigError(
        f'rows must be a Rows(start, stop) with 0 <= start <= stop <= '
        f'{num_rows} (the pool rows), got {tuple(rows)}.')
  return Rows(int(start), int(stop))


def _chunks(source, rows: Rows, chunk_size: int):
  """Yields (start, valid, x [chunk_size, ...]) over `rows`, zero-padded."""
  for start in range(rows.start, rows.stop, chunk_size):
    stop = min(start + chunk_size, rows.stop)
    x = np.asarray(source.read(start, stop))
    if x.shape[0] != stop - start or tuple(x.shape[1:]) != tuple(
        source.row_shape):
      raise errors.ConfigError(
          f'source.read({start}, {stop}) returned shape {x.shape}, expected '
          f'({stop - start}, *{tuple(source.row_shape)}).')
    if stop - start < chunk_size:
      x = np.concatenate(
          [x, np.zeros((chunk_size - (stop - start),) + x.shape[1:],
                       x.dtype)])
    yield start, stop - start, x


def single_process(tree):
  """The default `gather`: one process, a leading axis of length 1."""
  return jax.tree.map(lambda x: np.asarray(x)[None], tree)


def _mask_chunk(labeled_mask: np.ndarray, start: int, valid: int,
                chunk_size: int) -> np.ndarray:
  out = np.ones((chunk_size,), bool)
  out[:valid] = labeled_mask[start:start + valid]
  return out


# ----------------------------------------------------------------- top-k


def ranking_keys(scores: jax.Array, labeled: jax.Array) -> jax.Array:
  """The keys `top_k_unlabeled_first` ranks by: NaN → −inf, unlabeled
  scores at least the lowest finite float, labeled −inf (−0 stays below
  +0, as in `jax.lax.top_k`)."""
  scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
  scores = jnp.maximum(scores, jnp.finfo(scores.dtype).min)
  return jnp.where(labeled, -jnp.inf, scores)


def _total_order(scores: jax.Array) -> jax.Array:
  """int32 keys ordered as the float32 scores, −0 below +0 (as
  `jax.lax.top_k` orders them; `jax.lax.sort` would tie them)."""
  bits = jax.lax.bitcast_convert_type(scores.astype(jnp.float32), jnp.int32)
  return jnp.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _best_k(scores: jax.Array, indices: jax.Array, k: int):
  """The first k of (scores, indices) by score descending, index ascending."""
  scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores).astype(jnp.float32)
  _, idx, scores = jax.lax.sort(
      (~_total_order(scores), indices.astype(jnp.int32), scores), num_keys=2)
  return scores[:k], idx[:k]


def merge_top_k(scores_a: jax.Array, indices_a: jax.Array,
                scores_b: jax.Array, indices_b: jax.Array, k: int):
  """The k best of two candidate lists, exactly.

  Args:
    scores_a: [a] float scores (NaN counts as −inf).
    indices_a: [a] int global indices, distinct from `indices_b`.
    scores_b: [b] float.
    indices_b: [b] int.
    k: static, at most a + b.

  Returns:
    (scores [k], indices [k] int32), best first; ties go to the lower index.
  """
  checks.positive_int(k, 'k')
  total = np.shape(scores_a)[0] + np.shape(scores_b)[0]
  if k > total:
    raise errors.ConfigError(
        f'k = {k} exceeds the {total} candidates of the two lists; lower it.')
  return _best_k(jnp.concatenate([jnp.asarray(scores_a),
                                  jnp.asarray(scores_b)]),
                 jnp.concatenate([jnp.asarray(indices_a, jnp.int32),
                                  jnp.asarray(indices_b, jnp.int32)]), k)


@functools.partial(jax.jit, static_argnums=0)
def _top_k_step(k: int, chunk_scores, candidates, x, labeled, start, valid):
  """Merges one chunk's rows into the running k candidates."""
  c = x.shape[0]
  scores = chunk_scores(x)
  if scores.shape != (c,):
    raise errors.ConfigError(
        f'chunk_scores returned shape {scores.shape} for a chunk of {c} rows; '
        f'it must return [{c}] scores.')
  position = jnp.arange(c, dtype=jnp.int32)
  real = position < valid
  keys = jnp.where(real, ranking_keys(scores.astype(jnp.float32), labeled),
                   -jnp.inf)
  indices = jnp.where(real, start + position, PAD_INDEX)
  if c > k:  # top_k keeps ties in index order, as the merge needs
    keys, pos = jax.lax.top_k(keys, k)
    indices = indices[pos]
  return _best_k(jnp.concatenate([candidates[0], keys]),
                 jnp.concatenate([candidates[1], indices]), k)


def streamed_top_k(chunk_scores: Callable[[jax.Array], jax.Array], source,
                   labeled_mask, k: int, *, chunk_size: int = DEFAULT_CHUNK,
                   rows: Rows | None = None,
                   gather: Callable[[Any], Any] | None = None):
  """The k highest-scoring rows of a pool read chunk by chunk.

  Memory holds one chunk and k candidates. Chunks have a fixed size (the
  last is zero-padded and its padding never selected), so `chunk_scores`
  compiles once; pass it as a `jax.tree_util.Partial` to give it arrays
  (model variables) as traced arguments rather than constants.

  Args:
    chunk_scores: `chunk_scores(x [c, ...]) -> [c]` scores, higher = better,
      row i depending only on row i.
    source: the pool (a source, see the module docstring, or an array).
    labeled_mask: [N] bool over the whole pool; labeled rows rank below
      every unlabeled one.
    k: static number of rows to return, at most N (more than the unlabeled
      count: the surplus are labeled rows, as in `top_k_unlabeled_first`).
    chunk_size: rows per chunk.
    rows: the rows this process scores (default all); with many processes,
      the shards must cover the pool.
    gather: cross-process exchange (module docstring); default one process.

  Returns:
    (scores [k] float32, indices [k] int32 global row indices), best first,
    the same in every process. Scores are the ranking keys: the score, with
    NaN and −inf of unlabeled rows raised to the lowest finite float32 and
    labeled rows −inf.

  Raises:
    ConfigError: a bad argument, named.
  """
  source = as_source(source)
  n = source.num_rows
  labeled_mask = np.asarray(labeled_mask)
  checks.mask(labeled_mask, 'labeled_mask', n)
  checks.positive_int(k, 'k')
  checks.int_in(k, 1, n, 'k', f'the pool has {n} rows')
  checks.positive_int(chunk_size, 'chunk_size')
  rows = _rows(rows, n)
  chunk_scores = (chunk_scores if isinstance(chunk_scores,
                                             jax.tree_util.Partial)
                  else jax.tree_util.Partial(chunk_scores))
  chunk = max(1, min(chunk_size, rows.size))
  candidates = (jnp.full((k,), -jnp.inf, jnp.float32),
                jnp.full((k,), PAD_INDEX, jnp.int32))
  for start, valid, x in _chunks(source, rows, chunk):
    candidates = _top_k_step(
        k, chunk_scores, candidates, x,
        _mask_chunk(labeled_mask, start, valid, chunk), np.int32(start),
        np.int32(valid))
  scores, indices = jax.tree.map(np.asarray, candidates)
  if gather is not None:
    all_scores, all_indices = gather((scores, indices))
    scores, indices = jax.tree.map(
        np.asarray, _best_k(jnp.asarray(all_scores).reshape(-1),
                            jnp.asarray(all_indices).reshape(-1), k))
  return scores, indices


# ------------------------------------------------- score-based strategies

STREAMED_PREDICTIONS = ('log_probs', 'mc_log_probs')


@functools.lru_cache(maxsize=None)
def _scorer(score: Callable, needs: tuple[str, ...]):
  """`f(predict_chunk, key, x) -> [c]`, one function per strategy score."""

  def chunk_scores(predict_chunk, key, x):
    inputs = predict_chunk(key, x)
    missing = [name for name in needs if name not in inputs]
    if missing:
      raise errors.ConfigError(
          f'predict_chunk returned {sorted(inputs)}, lacking '
          f'{", ".join(map(repr, missing))}, which the strategy needs.')
    for name in needs:
      if jnp.ndim(inputs[name]) != 3 or inputs[name].shape[1] != x.shape[0]:
        raise errors.ConfigError(
            f'predict_chunk returned {name!r} of shape '
            f'{jnp.shape(inputs[name])} for a chunk of {x.shape[0]} rows; '
            'it must be [K, c, C] (K = 1 for log_probs).')
    return score(inputs)

  return chunk_scores


def _as_partial(fn) -> jax.tree_util.Partial:
  if isinstance(fn, jax.tree_util.Partial):
    return fn
  if not callable(fn):
    raise errors.ConfigError(
        f'Expected a function, got {type(fn).__name__}.')
  return jax.tree_util.Partial(fn)


def check_streamable(strategy) -> None:
  """Raises unless `strategy` ranks by a score on streamable predictions."""
  if strategy.score is None:
    raise errors.ConfigError(
        f'Strategy {strategy.name!r} has no per-point score, so it cannot be '
        'streamed as a top-k; streamed selection covers score-based '
        'strategies (entropy, margin, bald, ...), and k-center and k-means '
        'through `streamed_kcenter` / `streamed_kmeans_select`.')
  other = sorted(set(strategy.needs) - set(STREAMED_PREDICTIONS))
  if other:
    raise errors.ConfigError(
        f'Strategy {strategy.name!r} needs {other}; streamed selection '
        f'computes only {STREAMED_PREDICTIONS} per chunk.')


def streamed_select(strategy, key: jax.Array, predict_chunk: Callable,
                    source, labeled_mask, query_size: int, *,
                    chunk_size: int = DEFAULT_CHUNK,
                    rows: Rows | None = None,
                    gather: Callable[[Any], Any] | None = None) -> np.ndarray:
  """A score-based strategy's query over a pool read chunk by chunk.

  Equal to `jal.acquisition.query(strategy, key, inputs, labeled_mask,
  query_size)` on the in-memory `inputs` that `predict_chunk` gives row by
  row.

  Args:
    strategy: a `Strategy` with a `score` (e.g. `acquisition.get('bald')`).
    key: PRNG key handed to `predict_chunk` (for a round, the prediction key
      `jal.rounds.predictions` gets; see `streamed_query_round`).
    predict_chunk: `predict_chunk(key, x [c, ...]) -> inputs` holding what
      the strategy needs: `log_probs` [1, c, C] and/or `mc_log_probs`
      [K, c, C], row i depending only on row i and the key. A
      `jax.tree_util.Partial` passes its arrays as traced arguments (see
      `experiment_predict_chunk`).
    source: the pool (a source or an array).
    labeled_mask: [N] bool over the whole pool.
    query_size: b, at most the unlabeled count.
    chunk_size: rows per chunk.
    rows: the rows this process reads (default all).
    gather: cross-process exchange (see the module docstring).

  Returns:
    [query_size] int32 global indices of unlabeled rows, best first, the
    same in every process.

  Raises:
    ConfigError: a strategy without a score or needing other predictions, or
      a bad argument, named.
  """
  check_streamable(strategy)
  labeled_mask = np.asarray(labeled_mask)
  checks.mask(labeled_mask, 'labeled_mask', as_source(source).num_rows)
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, labeled_mask, 'query_size',
                    'pool points are unlabeled', count_false=True)
  chunk_scores = jax.tree_util.Partial(
      _scorer(strategy.score, tuple(strategy.needs)),
      _as_partial(predict_chunk), key)
  _, indices = streamed_top_k(chunk_scores, source, labeled_mask, query_size,
                              chunk_size=chunk_size, rows=rows, gather=gather)
  return indices


@functools.lru_cache(maxsize=None)
def _experiment_predict(exp, needs: tuple[str, ...]):
  """`f(variables, key, x) -> inputs`, as `rounds.predictions` computes them."""
  # Imported here: jal.rounds pulls in the whole training stack.
  from jal import predict  # pylint: disable=g-import-not-at-top
  config = exp.config

  def logits(variables, x, key=None):
    out, _ = predict.predict(exp.model, variables, x,
                             chunk_size=config.eval_chunk, key=key,
                             consistent=True)
    return jax.nn.log_softmax(out)

  def predict_chunk(variables, key, x):
    inputs = {}
    if 'log_probs' in needs:
      inputs['log_probs'] = logits(exp.posterior.point(variables), x)[None]
    if 'mc_log_probs' in needs:
      if exp.posterior.name == 'mc_dropout':
        passes = jnp.arange(config.posterior_samples)
        inputs['mc_log_probs'] = jax.vmap(
            lambda k: logits(variables, x, jax.random.fold_in(key, k)))(passes)
      else:  # ensemble
        inputs['mc_log_probs'] = jax.vmap(
            lambda member: logits(member, x))(variables)
    return inputs

  return predict_chunk


def experiment_predict_chunk(exp, variables, needs=None
                             ) -> jax.tree_util.Partial:
  """`predict_chunk(key, x)` of a trained experiment, for `streamed_select`.

  Gives, row by row, the values `jal.rounds.predictions` gives in memory with
  the same key: `log_probs` from the deterministic pass of the posterior's
  point model, `mc_log_probs` from K consistent MC-dropout passes (pass k
  with `fold_in(key, k)`) or from the ensemble's members. The K axis is a
  `vmap` in this process (not spread over devices), so it also runs in
  each of many processes.

  Args:
    exp: a `jal.rounds.Experiment`.
    variables: its trained variables (`Trained.variables`).
    needs: the predictions to compute; default the strategy's.

  Raises:
    ConfigError: predictions other than log_probs / mc_log_probs, or
      `mc_log_probs` from a posterior whose samples are not row by row
      (`laplace` fits on the labeled pool, `bn_train` uses batch statistics)
      or from per-chunk dropout masks (`config.consistent_dropout = False`).
  """
  needs = tuple(exp.strategy.needs if needs is None else needs)
  other = sorted(set(needs) - set(STREAMED_PREDICTIONS))
  if other:
    raise errors.ConfigError(
        f'Streamed predictions cover {STREAMED_PREDICTIONS}, not {other}.')
  if 'mc_log_probs' in needs:
    if exp.posterior.name not in ('mc_dropout', 'ensemble'):
      raise errors.ConfigError(
          f'config.posterior = {exp.posterior.name!r} cannot be streamed: its '
          'samples of a row depend on other rows. Use mc_dropout or '
          'ensemble.')
    if exp.posterior.name == 'mc_dropout' and not exp.config.consistent_dropout:
      raise errors.ConfigError(
          'Streamed MC dropout needs config.consistent_dropout = True (the '
          'same masks for every row whatever the chunking); with per-chunk '
          'masks the streamed scores would differ from in-memory ones.')
  return jax.tree_util.Partial(_experiment_predict(exp, needs), variables)


def streamed_query_round(exp, trained, state, source, query_size=None, *,
                         chunk_size: int = DEFAULT_CHUNK,
                         rows: Rows | None = None,
                         gather: Callable[[Any], Any] | None = None):
  """`jal.rounds.query_round` for a score-based strategy over a streamed pool.

  Same keys as in memory (the round's query key, split as `query_round`
  does), so it selects what `query_round` selects on the pool in memory.

  Returns:
    selected [query_size] int32 global pool indices (the same in every
    process) and the strategy state (unchanged: score strategies have none).
  """
  from jal import rounds  # pylint: disable=g-import-not-at-top
  check_streamable(exp.strategy)
  _, _, query_key = rounds.round_keys(state)
  predict_key, _, _ = jax.random.split(query_key, 3)
  selected = streamed_select(
      exp.strategy, predict_key,
      experiment_predict_chunk(exp, trained.variables), source,
      np.asarray(state.labeled_mask), query_size or exp.config.query_size,
      chunk_size=chunk_size, rows=rows, gather=gather)
  return selected, state.strategy_state
