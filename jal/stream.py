"""Pools read from disk in fixed-size chunks: selection in chunk-bounded memory.

A pool too large for memory stays on disk as an `.npy` file (`NpySource`,
a read-only memory map), in a random-access sequence such as a TFDS
`data_source` (`SequenceSource`), or any object with the same four members
(`num_rows`, `row_shape`, `dtype`, `read(start, stop)`); `ArraySource` wraps
an array already in memory. Selection then reads the pool chunk by chunk:

- `streamed_top_k`: the k best rows under any per-row score, keeping only k
  candidates (scores and global indices) between chunks;
- `streamed_select`: every score-based strategy (`Strategy.score` not None)
  on predictions computed chunk by chunk (`predict_chunk`), e.g. from a
  trained experiment (`experiment_predict_chunk`, the values
  `jal.rounds.predictions` gives in memory);
- `embed_to_npy`: an [N, D] embedding cache written chunk by chunk,
  resumable (`experiment_embed_chunk` gives a trained model's embeddings);
- `streamed_kcenter`, `streamed_kmeans`, `streamed_kmeans_select`:
  k-center and k-means over features on disk;
- `streamed_query_round`: `jal.rounds.query_round` over a streamed pool, for
  the score-based strategies, `kcenter` and `kmeans`.

Memory: one chunk being read, at most two in flight on the device, the k
candidates; k-center and k-means add [N_local] distances and the labeled
points' features (L × D) or the k centres.

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

import collections
import functools
import hashlib
import json
import mmap
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jal import checks
from jal import chunking
from jal import cluster
from jal import errors
from jal import predict

# Index of a padded (non-existent) row: above every real index, so it loses
# every tie and is never selected while k ≤ the number of rows.
PAD_INDEX = np.iinfo(np.int32).max

# Rows per chunk. On 2 CPU cores with a D = 128 → 256 → 10 MLP, 4096-16384
# rows scored as fast as 65536 or faster, at a fraction of the memory
# (experiments/bench_scale.py).
DEFAULT_CHUNK = 16384


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

  def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
    """Copies rows [start, stop) into `out` [stop − start, ...]."""
    np.copyto(out, self.array[start:stop])

  def take(self, indices) -> np.ndarray:
    """Rows at `indices` [m] as an array [m, *row_shape] (only those read)."""
    return self.array[np.asarray(indices)]


_NPY_MAGIC = b'\x93NUMPY'


class NpySource(ArraySource):
  """A pool in an `.npy` file, read through a read-only memory map.

  With `release_pages` (the default) every read drops its pages from this
  process's mapping, so the resident memory follows the chunk. Without, the
  pages read stay mapped (clean page cache, counted in the RSS, reclaimed
  under memory pressure): repeated passes (`streamed_kcenter` reads the
  features once per pick) then run about twice as fast.

  Raises:
    DatasetNotFoundError: no file at `path`.
    ConfigError: the file is not an `.npy` array (e.g. `.npz`, pickle, text),
      holds Python objects, or has no row axis.
  """

  def __init__(self, path: str | os.PathLike, *, release_pages: bool = True):
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
    self._map = getattr(self.array, '_mmap', None)
    self._base = 0
    if (release_pages and self._map is not None
        and hasattr(self._map, 'madvise')):
      view = np.frombuffer(self._map, np.uint8)
      self._base = view.ctypes.data
      del view  # an exported buffer would keep the map from closing
    else:
      self._map = None

  def read(self, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop), copied out of the map (see `read_into`)."""
    out = np.empty((max(0, stop - start),) + self.row_shape, self.dtype)
    self.read_into(start, stop, out)
    return out

  def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
    """Copies rows [start, stop) into `out` [stop − start, ...].

    The pages read are then dropped from this process's mapping
    (`MADV_DONTNEED`; they stay in the page cache), so its resident memory
    follows the chunk rather than growing with every row read.
    """
    rows = self.array[start:stop]
    np.copyto(out, rows)
    if self._map is not None and out.nbytes:
      page = mmap.PAGESIZE
      lo = rows.ctypes.data - self._base
      hi = lo + out.nbytes
      lo -= lo % page
      hi = min(len(self._map), -(-hi // page) * page)
      self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class SequenceSource:
  """A pool in any random-access sequence of examples, e.g. a TFDS
  `data_source` (array_record files, no TensorFlow needed):

    SequenceSource(tfds.data_source('mnist', split='train'), 'image')

  Rows are read with `items.__getitems__(indices)` when the sequence has it
  (TFDS batches its reads), else one `items[i]` at a time; `feature` picks
  a field of dict examples. The row shape and dtype are those of example 0;
  an example of another shape is an error.
  """

  def __init__(self, items, feature: str | None = None):
    if not hasattr(items, '__len__') or not hasattr(items, '__getitem__'):
      raise errors.ConfigError(
          f'items must be a random-access sequence (len() and [i]), got '
          f'{type(items).__name__}.')
    self.items, self.feature = items, feature
    self.num_rows = len(items)
    if not self.num_rows:
      raise errors.ConfigError('items is empty; a pool needs rows.')
    first = self._row(items[0], 0)
    _check_rows((self.num_rows,) + first.shape, first.dtype, 'items')
    self.row_shape, self.dtype = tuple(first.shape), first.dtype

  def _row(self, example, i: int) -> np.ndarray:
    if self.feature is not None:
      if not isinstance(example, dict) or self.feature not in example:
        raise errors.ConfigError(
            f'Example {i} has no feature {self.feature!r}'
            + (f'; it has {sorted(example)}.' if isinstance(example, dict)
               else '.'))
      example = example[self.feature]
    row = np.asarray(example)
    if hasattr(self, 'row_shape') and (row.shape != self.row_shape or
                                       row.dtype != self.dtype):
      raise errors.ConfigError(
          f'Example {i} is {row.dtype}{list(row.shape)}, example 0 '
          f'{self.dtype}{list(self.row_shape)}; a pool needs rows of one '
          'shape and dtype (resize them first).')
    return row

  def read(self, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) stacked [stop − start, *row_shape]."""
    indices = list(range(start, stop))
    if hasattr(self.items, '__getitems__'):
      examples = self.items.__getitems__(indices)
    else:
      examples = [self.items[i] for i in indices]
    out = np.empty((len(indices),) + self.row_shape, self.dtype)
    for j, (i, example) in enumerate(zip(indices, examples)):
      out[j] = self._row(example, i)
    return out


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


def _aligned_empty(shape, dtype, align: int = 64) -> np.ndarray:
  """An uninitialised array whose data is `align`-byte aligned: JAX on CPU
  then uses it without a copy (an unaligned one is copied, at a few GB/s)."""
  nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
  buffer = np.empty(nbytes + align, np.uint8)
  offset = (-buffer.ctypes.data) % align
  return buffer[offset:offset + nbytes].view(dtype).reshape(shape)


def _chunks(source, rows: Rows, chunk_size: int):
  """Yields (start, valid, x [chunk_size, ...]) over `rows`, zero-padded.

  Each chunk is a fresh aligned buffer (the device may still be reading the
  previous one: JAX dispatches asynchronously and aliases aligned arrays).
  """
  row_shape = tuple(source.row_shape)
  for start in range(rows.start, rows.stop, chunk_size):
    stop = min(start + chunk_size, rows.stop)
    valid = stop - start
    x = _aligned_empty((chunk_size,) + row_shape, source.dtype)
    if hasattr(source, 'read_into'):
      source.read_into(start, stop, x[:valid])
    else:
      rows_read = np.asarray(source.read(start, stop))
      if rows_read.shape != (valid,) + row_shape:
        raise errors.ConfigError(
            f'source.read({start}, {stop}) returned shape {rows_read.shape}, '
            f'expected ({valid}, *{row_shape}).')
      x[:valid] = rows_read
    x[valid:] = 0
    yield start, valid, x


class _Throttle:
  """Keeps at most `depth` chunk computations in flight.

  JAX dispatches asynchronously, so a loop over chunks would otherwise read
  the whole pool ahead of the device, holding every chunk in memory. Each
  call records a step's output and waits for the one `depth` steps back, so
  reading the next chunk still overlaps computing the current one.
  """

  def __init__(self, depth: int = 2):
    self.depth, self.pending = depth, collections.deque()

  def __call__(self, out):
    self.pending.append(out)
    if len(self.pending) > self.depth:
      jax.block_until_ready(self.pending.popleft())
    return out


def _take(source, indices: np.ndarray) -> np.ndarray:
  """Rows of `source` at sorted `indices`: `source.take` if it has one, else
  one `read` per row."""
  if hasattr(source, 'take'):
    return np.asarray(source.take(indices))
  if not len(indices):
    return np.zeros((0,) + tuple(source.row_shape), source.dtype)
  return np.concatenate([np.asarray(source.read(i, i + 1)) for i in indices])


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
    (scores [k], indices [k] int32), best first; ties go to the lower index
    (−0 ranks below +0, as in `jax.lax.top_k`, which the in-memory
    selection uses).
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
  throttle = _Throttle()
  for start, valid, x in _chunks(source, rows, chunk):
    candidates = throttle(_top_k_step(
        k, chunk_scores, candidates, x,
        _mask_chunk(labeled_mask, start, valid, chunk), np.int32(start),
        np.int32(valid)))
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

  The values equal the in-memory ones to float32 rounding, not always bit
  for bit: XLA on CPU may round a forward pass over another chunk shape
  differently (~1 ulp; measured on digits with an MLP: chunks of ≤ 333 rows
  differed from the in-memory chunks of 1000 in a third of the rows,
  chunks of 500-2000 rows in none). A streamed selection can therefore
  differ from the in-memory one only between points whose scores agree to
  float32 rounding (exact duplicates kept their ties in every test).

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


@functools.lru_cache(maxsize=None)
def _experiment_embed(exp):
  """`f(variables, x) -> [c, D]` embeddings, as `rounds.predictions`."""

  def embed_chunk(variables, x):
    _, embeddings = predict.predict(exp.model, exp.posterior.point(variables),
                                    x, chunk_size=exp.config.eval_chunk)
    return embeddings

  return embed_chunk


def experiment_embed_chunk(exp, variables) -> jax.tree_util.Partial:
  """`embed_chunk(x) -> [c, D]`, the penultimate activations of a trained
  experiment's point model (what `jal.rounds.predictions` gives as
  `embeddings`), for `embed_to_npy`."""
  return jax.tree_util.Partial(_experiment_embed(exp), variables)


# Set-based strategies `streamed_query_round` runs over an embedding cache.
STREAMED_SET_STRATEGIES = ('kcenter', 'kmeans')


def _checksum(tree) -> str:
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()[:16]


def streamed_query_round(exp, trained, state, source, query_size=None, *,
                         chunk_size: int = DEFAULT_CHUNK,
                         rows: Rows | None = None,
                         gather: Callable[[Any], Any] | None = None,
                         embeddings_path: str | os.PathLike | None = None):
  """`jal.rounds.query_round` over a streamed pool.

  Same keys as in memory (the round's query key, split as `query_round`
  does), so it selects what `query_round` selects on the pool in memory
  (up to points whose scores or distances agree to float32 rounding, see
  `experiment_predict_chunk`):
  every score-based strategy (`streamed_select`), and `kcenter` and `kmeans`
  over the round model's embeddings, first written chunk by chunk to
  `embeddings_path` (`embed_to_npy`, resumable within the round; with many
  processes give each its own path: it writes only its rows).

  Returns:
    selected [query_size] int32 global pool indices (the same in every
    process) and the strategy state (unchanged: these strategies have none).

  Raises:
    ConfigError: a strategy that cannot be streamed, `kcenter` with
      `pca_dim` > 0 (the PCA needs the whole pool), or no `embeddings_path`
      for `kcenter` / `kmeans`.
  """
  # Imported here: jal.rounds pulls in training, models and data.
  from jal import rounds  # pylint: disable=g-import-not-at-top
  query_size = query_size or exp.config.query_size
  # With config.pool_subsample, the round's random draw is all it may pick.
  labeled_mask = np.asarray(rounds.query_mask(exp, state))
  _, _, query_key = rounds.round_keys(state)
  predict_key, _, select_key = jax.random.split(query_key, 3)
  name = exp.strategy.name
  if name not in STREAMED_SET_STRATEGIES:
    check_streamable(exp.strategy)
    selected = streamed_select(
        exp.strategy, predict_key,
        experiment_predict_chunk(exp, trained.variables), source,
        labeled_mask, query_size, chunk_size=chunk_size, rows=rows,
        gather=gather)
    return selected, state.strategy_state
  if embeddings_path is None:
    raise errors.ConfigError(
        f'Streamed {name!r} needs embeddings_path, the .npy file to cache '
        'the round\'s embeddings in (one per process).')
  if exp.hparams.get('pca_dim'):
    raise errors.ConfigError(
        'config.hparams.kcenter.pca_dim > 0 cannot be streamed (the PCA '
        'needs the whole pool); set it to 0.')
  features = embed_to_npy(
      experiment_embed_chunk(exp, trained.variables), source, embeddings_path,
      chunk_size=chunk_size, rows=rows,
      tag=f'round {int(state.round)} model {_checksum(trained.variables)}')
  if name == 'kcenter':
    selected = streamed_kcenter(features, labeled_mask, query_size,
                                chunk_size=chunk_size, rows=rows,
                                gather=gather)
  else:
    selected = streamed_kmeans_select(
        select_key, features, labeled_mask, query_size,
        num_iters=exp.hparams['num_iters'], chunk_size=chunk_size, rows=rows,
        gather=gather)
  return selected, state.strategy_state


# -------------------------------------------------------- embedding cache


@jax.jit
def _apply(fn, x):
  """`fn(x)`, `fn` a `jax.tree_util.Partial` (its arrays traced)."""
  return fn(x)


def _progress_path(path: str) -> str:
  return path + '.progress.json'


def _partial_path(path: str) -> str:
  return path[:-4] + '.partial.npy' if path.endswith('.npy') else (
      path + '.partial.npy')


def embed_to_npy(embed_chunk: Callable[[jax.Array], jax.Array], source,
                 path: str | os.PathLike, *, chunk_size: int = DEFAULT_CHUNK,
                 rows: Rows | None = None, tag: str = '') -> 'NpySource':
  """Writes `embed_chunk` of every pool row to an [N, D] `.npy`, chunk by chunk.

  The file is written as `<path minus .npy>.partial.npy` through
  `np.lib.format.open_memmap`, and renamed to `path` once complete, so
  `path` never holds a partial cache. Progress is recorded after every chunk
  (`path + '.progress.json'`): a run killed midway resumes at the first chunk
  not yet written when called again with the same pool size, chunk size,
  rows and `tag` (name the model in `tag`, e.g. the round, so that a cache
  of another model is never resumed); otherwise it starts afresh.

  Args:
    embed_chunk: `embed_chunk(x [c, ...]) -> [c, D]` float, row i depending
      only on row i (e.g. a `jax.tree_util.Partial` over model variables).
    source: the pool (a source or an array).
    path: the `.npy` file to write (replaced if it exists).
    chunk_size: rows per chunk.
    rows: the rows to embed (default all). The file still has N rows (a
      sparse file: rows outside stay zero and take no disk), so each of many
      processes can write its own shard to its own file and read it back
      with global row indices (`streamed_kcenter(..., rows=rows)`).
    tag: identifies the model whose embeddings these are (for resuming).

  Returns:
    An `NpySource` over the written file.

  Raises:
    ConfigError: `embed_chunk` does not return [c, D] floats; a bad argument.
  """
  path = os.fspath(path)
  source = as_source(source)
  n = source.num_rows
  checks.positive_int(chunk_size, 'chunk_size')
  rows = _rows(rows, n)
  embed_chunk = _as_partial(embed_chunk)
  chunk = max(1, min(chunk_size, rows.size))
  spec = jax.eval_shape(
      embed_chunk,
      jax.ShapeDtypeStruct((chunk,) + tuple(source.row_shape), source.dtype))
  if (len(getattr(spec, 'shape', ())) != 2 or spec.shape[0] != chunk
      or not jnp.issubdtype(spec.dtype, jnp.floating)):
    raise errors.ConfigError(
        f'embed_chunk must map a chunk [{chunk}, ...] to [{chunk}, D] floats, '
        f'got {getattr(spec, "shape", spec)}.')
  dim = spec.shape[1]
  header = dict(num_rows=n, dim=dim, dtype=np.dtype(spec.dtype).str,
                chunk_size=chunk, rows=list(rows), tag=str(tag))
  partial, progress = _partial_path(path), _progress_path(path)
  done = rows.start
  try:
    with open(progress) as f:
      record = json.load(f)
    if record.get('header') == header and os.path.isfile(partial):
      done = int(record['done'])
  except (OSError, ValueError, KeyError, TypeError):
    pass
  if done == rows.start:
    out = np.lib.format.open_memmap(partial, mode='w+', dtype=spec.dtype,
                                    shape=(n, dim))
  else:
    out = np.lib.format.open_memmap(partial, mode='r+')
  pending = None  # write a chunk while the next one computes
  for start, valid, x in _chunks(source, Rows(done, rows.stop), chunk):
    result = _apply(embed_chunk, x)
    if pending is not None:
      _write_chunk(out, *pending, progress, header)
    pending = (start, valid, result)
  if pending is not None:
    _write_chunk(out, *pending, progress, header)
  out.flush()
  del out
  os.replace(partial, path)
  if os.path.exists(progress):
    os.remove(progress)
  return NpySource(path)


def _write_chunk(out, start, valid, result, progress, header) -> None:
  out[start:start + valid] = np.asarray(result)[:valid]
  out.flush()
  tmp = progress + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(dict(header=header, done=start + valid), f)
  os.replace(tmp, progress)


# ----------------------------------------------- k-center and k-means


def _features(features) -> tuple[Any, int, int]:
  """Checks a features source: [N, D] floats. Returns (source, N, D)."""
  source = as_source(features)
  if len(source.row_shape) != 1 or not np.issubdtype(source.dtype,
                                                      np.floating):
    raise errors.ConfigError(
        f'features must be [N, D] floats, got rows of shape '
        f'{tuple(source.row_shape)} and dtype {source.dtype}.')
  return source, source.num_rows, source.row_shape[0]


class _Pool:
  """This process's rows of a features source in fixed-size chunks, with
  per-chunk state on the device (squared norms, minimum distances, which
  rows may still be picked); the features themselves stay on disk."""

  def __init__(self, source, rows: Rows, chunk_size: int):
    self.source, self.rows = source, rows
    self.chunk = max(1, min(chunk_size, rows.size))
    self.starts = list(range(rows.start, rows.stop, self.chunk))

  def __iter__(self):
    """Yields (chunk number, start, valid, x [chunk, D])."""
    for i, (start, valid, x) in enumerate(_chunks(self.source, self.rows,
                                                  self.chunk)):
      yield i, start, valid, x

  def local(self, array: np.ndarray, fill) -> list[np.ndarray]:
    """A global [N] host array cut into this process's padded chunks."""
    out = []
    for start in self.starts:
      valid = min(self.chunk, self.rows.stop - start)
      piece = np.full((self.chunk,), fill, array.dtype)
      piece[:valid] = array[start:start + valid]
      out.append(piece)
    return out


def _better(value, index, best_value, best_index):
  """(value, index) beats the best so far: higher value, ties lower index."""
  return (value > best_value) | ((value == best_value) & (index < best_index))


def _chunk_best(values, start, x, best):
  """Merges a chunk's best (value, global index, row) into `best`."""
  pos = jnp.argmax(values)  # the first maximum: the lowest index
  value, index = values[pos], start + pos.astype(jnp.int32)
  take = _better(value, index, best[0], best[1])
  return (jnp.where(take, value, best[0]), jnp.where(take, index, best[1]),
          jnp.where(take, x[pos], best[2]))


def _no_best(dim: int):
  return (jnp.float32(-jnp.inf), jnp.int32(PAD_INDEX),
          jnp.zeros((dim,), jnp.float32))


def _global_best(gather, best) -> tuple[int, np.ndarray, float]:
  """Every process's best (value, index, row) → the global one (highest
  value, ties to the lower index), the same in every process."""
  values, indices, points = jax.tree.map(np.asarray, gather(best))
  order = np.lexsort((indices, -values.astype(np.float64)))
  p = order[0]
  return int(indices[p]), points[p], float(values[p])


@jax.jit
def _kcenter_init(x, labeled, valid, blocks, blocks_sq, blocks_valid):
  """A chunk's squared norms, squared distances to the nearest labeled
  point (`cluster.min_sq_distances_to_subset`'s tiles: [4096, s] at most)
  and availability."""
  x_sq = cluster.sq_norms(x)

  def block(j, min_sq):
    def tile(x_tile, x_sq_tile, min_tile):
      d = cluster.pairwise_sq_distances(x_tile, blocks[j], x_sq_tile,
                                        blocks_sq[j])
      d = jnp.where(blocks_valid[j][None, :], d, jnp.inf)
      return jnp.minimum(min_tile, jnp.min(d, axis=1))

    return chunking.map_rows(tile, (x, x_sq, min_sq), cluster.DEFAULT_CHUNK)

  min_sq = jax.lax.fori_loop(0, blocks.shape[0], block,
                             jnp.full(x_sq.shape, jnp.inf, x.dtype))
  return x_sq, min_sq, valid & ~labeled


@functools.partial(jax.jit, static_argnames='kind')
def _greedy_step(x, x_sq, min_sq, available, start, point, pick, best,
                 log_w=None, gumbel=None, *, kind: str):
  """One chunk of one greedy step: the distances to the last pick `point`
  (global index `pick`, < 0 for none yet) folded into `min_sq`, the pick
  made unavailable, and the chunk's best candidate merged into `best`.

  kind 'kcenter': the value is `min_sq` (farthest first). kind 'kmeans++':
  `cluster.kmeans_plusplus`'s Gumbel-max draw, log w + log d² + g.
  """
  index = start + jnp.arange(x.shape[0], dtype=jnp.int32)
  min_sq = jnp.where(pick >= 0,
                     jnp.minimum(min_sq,
                                 cluster.sq_distances_to(x, point, x_sq)),
                     min_sq)
  available = available & (index != pick)
  if kind == 'kcenter':
    value = min_sq
  else:
    log_mass = log_w + jnp.log(min_sq)
    value = jnp.where(jnp.isfinite(log_mass), log_mass + gumbel, -1e30)
  values = jnp.where(available, value, -jnp.inf)
  return min_sq, available, _chunk_best(values, start, x, best)


def _check_pool(labeled_mask, n: int, query_size: int, chunk_size: int,
                what: str = 'pool points are unlabeled'):
  labeled_mask = np.asarray(labeled_mask)
  checks.mask(labeled_mask, 'labeled_mask', n)
  checks.positive_int(query_size, 'query_size')
  checks.count_fits(query_size, labeled_mask, 'query_size', what,
                    count_false=True)
  checks.positive_int(chunk_size, 'chunk_size')
  return labeled_mask


def _check_finite(gather, x_sq: list[jax.Array]) -> None:
  """Raises in every process if any process's features hold NaN or inf
  (seen in their squared norms; all raise together, none is left waiting)."""
  local = np.int32(sum(int(jnp.sum(~jnp.isfinite(s))) for s in x_sq))
  counts = np.asarray(gather(local))
  if counts.any():
    raise errors.ConfigError(
        f'features hold {int(counts.sum())} rows with NaN or inf (or so large '
        'that their squared norm overflows); remove or fix them first.')


def _owners(gather, rows: Rows) -> np.ndarray:
  """[P, 2] every process's (start, stop), in process order."""
  return np.asarray(gather(np.asarray([rows.start, rows.stop], np.int32)))


def _gather_rows(source, gather, rows: Rows, owners: np.ndarray,
                 indices: np.ndarray, dim: int) -> np.ndarray:
  """Feature rows at global `indices` [m], each read by the process owning
  it and exchanged (copied exactly, never summed)."""
  mine = (indices >= rows.start) & (indices < rows.stop)
  local = np.zeros((len(indices), dim), np.float32)
  local[mine] = _take(source, indices[mine])
  everyone = np.asarray(gather(local))  # [P, m, D]
  owner = np.searchsorted(owners[:, 1], indices, side='right')
  owner = np.where(owners[np.minimum(owner, len(owners) - 1), 0] <= indices,
                   owner, len(owners))
  if (owner >= len(owners)).any():
    raise errors.ConfigError(
        f'Row {int(indices[owner >= len(owners)][0])} belongs to no process: '
        f'the processes\' rows {owners.tolist()} must cover the pool.')
  return everyone[owner, np.arange(len(indices))]


def streamed_kcenter(features, labeled_mask, query_size: int, *,
                     chunk_size: int = DEFAULT_CHUNK,
                     rows: Rows | None = None,
                     gather: Callable[[Any], Any] | None = None,
                     subset_chunk: int = 1024) -> np.ndarray:
  """Greedy k-center over features on disk: `kcenter_select`, exactly.

  The labeled points' features (L × D, read by their owners and gathered)
  are the initial centres; each process keeps its rows' squared norms and
  minimum squared distances on the device ([N_local] each) and reads its
  features from the source once per pick. Each pick: every process's best
  (value, global index, feature row) is gathered and the global pick is the
  highest value, ties to the lower index. Distances use the formula and
  tiles of `jal.cluster`, so the picks equal
  `jal.acquisition.kcenter.kcenter_select(features, labeled_mask,
  query_size)` (bit for bit in every test: chunks of 64-1000 rows, D from 8
  to 300, 1 and 3 processes; XLA could in principle round a tile of
  another shape differently, as noted in `experiment_predict_chunk`).

  Args:
    features: [N, D] float source (e.g. `embed_to_npy`'s) or array.
    labeled_mask: [N] bool over the whole pool.
    query_size: static number of picks, at most the unlabeled count.
    chunk_size: rows per chunk.
    rows: this process's rows (default all).
    gather: cross-process exchange (see the module docstring).
    subset_chunk: labeled points per distance tile.

  Returns:
    [query_size] int32 global indices in pick order, the same in every
    process.
  """
  source, n, dim = _features(features)
  labeled_mask = _check_pool(labeled_mask, n, query_size, chunk_size)
  checks.positive_int(subset_chunk, 'subset_chunk')
  rows = _rows(rows, n)
  gather = gather or single_process
  pool = _Pool(source, rows, chunk_size)

  labeled = np.flatnonzero(labeled_mask)
  s = max(1, min(subset_chunk, len(labeled)))
  num_blocks = max(1, -(-len(labeled) // s))  # one empty block if none
  padded = np.concatenate([labeled, np.full(num_blocks * s - len(labeled),
                                            -1, labeled.dtype)])
  owners = _owners(gather, rows)
  blocks = _gather_rows(source, gather, rows, owners,
                        padded[padded >= 0], dim) if len(labeled) else (
                            np.zeros((0, dim), np.float32))
  blocks = np.concatenate([blocks, np.zeros((num_blocks * s - len(labeled),
                                             dim), np.float32)])
  blocks = jnp.asarray(blocks.reshape(num_blocks, s, dim))
  blocks_valid = jnp.asarray((padded >= 0).reshape(num_blocks, s))
  blocks_sq = cluster.sq_norms(blocks)

  x_sq, min_sq, available = [], [], []
  labeled_chunks = pool.local(labeled_mask, True)
  throttle = _Throttle()
  for i, start, valid, x in pool:
    a, b, c = throttle(_kcenter_init(x, labeled_chunks[i],
                                     np.arange(pool.chunk) < valid, blocks,
                                     blocks_sq, blocks_valid))
    x_sq.append(a), min_sq.append(b), available.append(c)
  _check_finite(gather, x_sq)

  picks = np.zeros((query_size,), np.int32)
  point, pick = jnp.zeros((dim,), jnp.float32), -1
  for t in range(query_size):
    best = _no_best(dim)
    for i, start, valid, x in pool:
      min_sq[i], available[i], best = throttle(_greedy_step(
          x, x_sq[i], min_sq[i], available[i], np.int32(start), point,
          np.int32(pick), best, kind='kcenter'))
    pick, point, _ = _global_best(gather, best)
    picks[t] = pick
  return picks


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _gumbel_rows(key, t, n: int, start: int, size: int):
  """Rows [start, start + size) of `gumbel(fold_in(key, t), [N])`, the
  draw `cluster.kmeans_plusplus` makes at step t over the whole pool."""
  g = jax.random.gumbel(jax.random.fold_in(key, t), (n,))
  return jax.lax.slice_in_dim(g, start, start + size)


def _streamed_seeds(key, pool: _Pool, n: int, dim: int, weights: np.ndarray,
                    num_centres: int, gather) -> tuple[np.ndarray, np.ndarray]:
  """`cluster.kmeans_plusplus` over the streamed pool (Euclidean): the seed
  indices [k] and their feature rows [k, D]."""
  eligible = weights > 0
  log_w = np.log(np.where(eligible, weights, 1.0)).astype(np.float32)
  log_w_chunks = pool.local(log_w, 0.0)
  available = [jnp.asarray(a) for a in pool.local(eligible, False)]
  rows = pool.rows
  x_sq, min_sq = [], []
  throttle = _Throttle()
  seeds = np.zeros((num_centres,), np.int32)
  points = np.zeros((num_centres, dim), np.float32)
  point, pick = jnp.zeros((dim,), jnp.float32), -1
  for t in range(num_centres):
    gumbel = _gumbel_rows(key, t, n, rows.start, rows.size)
    gumbel = jnp.pad(gumbel, (0, len(pool.starts) * pool.chunk - rows.size))
    best = _no_best(dim)
    for i, start, valid, x in pool:
      if t == 0:
        x_sq.append(cluster.sq_norms(jnp.asarray(x)))
        min_sq.append(jnp.full((pool.chunk,), jnp.inf, jnp.float32))
      g = jax.lax.dynamic_slice_in_dim(gumbel, i * pool.chunk, pool.chunk)
      # Step 0 draws ∝ w: log d² = +inf must not enter, so d² = 1 there.
      log_w_t = log_w_chunks[i]
      if t == 0:
        min_sq_0 = jnp.ones((pool.chunk,), jnp.float32)
        _, available[i], best = throttle(_greedy_step(
            x, x_sq[i], min_sq_0, available[i], np.int32(start), point,
            np.int32(-1), best, log_w_t, g, kind='kmeans++'))
      else:
        min_sq[i], available[i], best = throttle(_greedy_step(
            x, x_sq[i], min_sq[i], available[i], np.int32(start), point,
            np.int32(pick), best, log_w_t, g, kind='kmeans++'))
    if t == 0:
      _check_finite(gather, x_sq)
    pick, point, _ = _global_best(gather, best)
    seeds[t], points[t] = pick, point
  return seeds, points


@jax.jit
def _lloyd_chunk(x, w, centres, sums, mass):
  """One chunk's weighted sums and mass per nearest centre (`cluster.lloyd`)."""
  k = centres.shape[0]
  d = cluster.pairwise_sq_distances(x, centres,
                                    y_sq=cluster.sq_norms(centres))
  nearest = jnp.argmin(d, axis=1)
  sums = sums + jax.ops.segment_sum(w[:, None] * x, nearest, k)
  mass = mass + jax.ops.segment_sum(w, nearest, k)
  return sums, mass


def _streamed_lloyd(pool: _Pool, weights: np.ndarray, centres: np.ndarray,
                    num_iters: int, gather) -> np.ndarray:
  """`cluster.lloyd` over the streamed pool; per-process sums are gathered
  and added in process order."""
  w_chunks = pool.local(weights.astype(np.float32), 0.0)
  throttle = _Throttle()
  centres = jnp.asarray(centres)
  for _ in range(num_iters):
    sums = jnp.zeros_like(centres)
    mass = jnp.zeros((centres.shape[0],), jnp.float32)
    for i, _, _, x in pool:
      sums, mass = throttle(_lloyd_chunk(x, w_chunks[i], centres, sums,
                                         mass))
    all_sums, all_mass = jax.tree.map(np.asarray, gather((sums, mass)))
    sums, mass = all_sums[0], all_mass[0]
    for p in range(1, all_sums.shape[0]):
      sums, mass = sums + all_sums[p], mass + all_mass[p]
    centres = jnp.where(mass[:, None] > 0,
                        sums / jnp.maximum(mass, 1e-30)[:, None], centres)
  return np.asarray(centres)


def streamed_kmeans(key: jax.Array, features, weights, num_centres: int, *,
                    num_iters: int = 10, chunk_size: int = DEFAULT_CHUNK,
                    rows: Rows | None = None,
                    gather: Callable[[Any], Any] | None = None) -> np.ndarray:
  """Weighted k-means over features on disk: `cluster.kmeans`'s algorithm.

  k-means++ seeding draws exactly as `cluster.kmeans_plusplus` (step t's
  Gumbel draw over all N rows, sliced to this process's rows), so the seeds
  equal the in-memory ones. Lloyd iterations sum each chunk's weighted
  points per nearest centre; the per-process sums are gathered and added in
  process order. Sums added in another order round differently: the centres
  match `cluster.kmeans` to float32 rounding (relative ~1e-6 per
  iteration) and exactly when every point's nearest centre is clear (well
  separated data); a point almost equidistant from two centres may be
  assigned differently, and the centres then differ by its share.

  Args:
    key: PRNG key for the seeding.
    features: [N, D] float source or array.
    weights: [N] float ≥ 0 over the whole pool (0 leaves a point out).
    num_centres: k, at most the number of positive weights.
    num_iters: Lloyd iterations.
    chunk_size: rows per chunk.
    rows: this process's rows (default all).
    gather: cross-process exchange (see the module docstring).

  Returns:
    [k, D] float32 centres, the same in every process.
  """
  source, n, dim = _features(features)
  weights = np.asarray(weights, np.float32)
  checks.array(weights, 1, 'weights', '[N]')
  checks.size(weights.shape[0], n, 'weights', 'entries', 'one per point')
  checks.non_negative(weights, 'weights')
  checks.positive_int(num_centres, 'num_centres')
  checks.count_fits(num_centres, weights, 'num_centres',
                    'weights are positive')
  checks.int_at_least(num_iters, 0, 'num_iters')
  checks.positive_int(chunk_size, 'chunk_size')
  gather = gather or single_process
  pool = _Pool(source, _rows(rows, n), chunk_size)
  _, centres = _streamed_seeds(key, pool, n, dim, weights, num_centres,
                               gather)
  return _streamed_lloyd(pool, weights, centres, num_iters, gather)


@jax.jit
def _nearest_chunk(x, candidates, start, centres, best_sq, best_index):
  """A chunk's candidates each assigned to its nearest centre; per centre
  the nearest candidate so far (ties to the lower index), as in
  `cluster.nearest_distinct`."""
  k = centres.shape[0]
  d = cluster.pairwise_sq_distances(x, centres,
                                    y_sq=cluster.sq_norms(centres))
  nearest = jnp.where(candidates, jnp.argmin(d, axis=1), k)
  sq = jnp.min(d, axis=1)
  chunk_sq = jax.ops.segment_min(sq, nearest, k + 1)[:k]
  index = start + jnp.arange(x.shape[0], dtype=jnp.int32)
  is_best = candidates & (sq == chunk_sq.at[jnp.minimum(nearest, k - 1)].get(
      mode='clip'))
  is_best &= nearest < k
  chunk_index = jax.ops.segment_min(jnp.where(is_best, index, PAD_INDEX),
                                    nearest, k + 1)[:k]
  take = (chunk_sq < best_sq) | ((chunk_sq == best_sq) &
                                 (chunk_index < best_index))
  return (jnp.where(take, chunk_sq, best_sq),
          jnp.where(take, chunk_index, best_index))


@jax.jit
def _nearest_untaken_chunk(x, x_sq, candidates, start, centre, best):
  """A chunk's candidate nearest to `centre` merged into `best`."""
  d = cluster.sq_distances_to(x, centre, x_sq)
  return _chunk_best(jnp.where(candidates, -d, -jnp.inf), start, x, best)


def _streamed_nearest_distinct(pool: _Pool, candidates: np.ndarray,
                               centres: np.ndarray, gather) -> np.ndarray:
  """`cluster.nearest_distinct` over the streamed pool."""
  k, dim = centres.shape
  centres = jnp.asarray(centres)
  cand_chunks = pool.local(candidates, False)
  best_sq = jnp.full((k,), jnp.inf, jnp.float32)
  best_index = jnp.full((k,), PAD_INDEX, jnp.int32)
  throttle = _Throttle()
  for i, start, _, x in pool:
    best_sq, best_index = throttle(_nearest_chunk(
        x, cand_chunks[i], np.int32(start), centres, best_sq, best_index))
  all_sq, all_index = jax.tree.map(np.asarray, gather((best_sq, best_index)))
  picks = np.full((k,), PAD_INDEX, np.int64)
  for j in range(k):  # per centre: nearest over processes, ties lower index
    order = np.lexsort((all_index[:, j], all_sq[:, j].astype(np.float64)))
    picks[j] = all_index[order[0], j]
  taken = np.zeros(len(candidates), bool)
  taken[picks[picks < PAD_INDEX]] = True
  for j in np.flatnonzero(picks == PAD_INDEX):
    # A centre that got no candidate: the nearest candidate not yet taken.
    best = _no_best(dim)
    free = pool.local(candidates & ~taken, False)
    for i, start, _, x in pool:
      x_sq = cluster.sq_norms(jnp.asarray(x))
      best = throttle(_nearest_untaken_chunk(
          x, x_sq, free[i], np.int32(start), centres[j], best))
    picks[j], _, _ = _global_best(gather, best)
    taken[picks[j]] = True
  return picks.astype(np.int32)


def streamed_kmeans_select(key: jax.Array, features, labeled_mask,
                           query_size: int, *, num_iters: int = 10,
                           chunk_size: int = DEFAULT_CHUNK,
                           rows: Rows | None = None,
                           gather: Callable[[Any], Any] | None = None
                           ) -> np.ndarray:
  """The `kmeans` strategy over features on disk.

  k-means with `query_size` centres on the unlabeled rows
  (`streamed_kmeans`), then the nearest distinct unlabeled row to each
  centre, as `jal.acquisition.kmeans.kmeans_select(key, features,
  ~labeled_mask, query_size, num_iters)` does in memory: the same picks on
  well separated data; otherwise see `streamed_kmeans` on rounding.

  Returns:
    [query_size] int32 distinct unlabeled global indices, one per centre,
    the same in every process.
  """
  source, n, _ = _features(features)
  labeled_mask = _check_pool(labeled_mask, n, query_size, chunk_size)
  weights = (~labeled_mask).astype(np.float32)
  centres = streamed_kmeans(key, source, weights, query_size,
                            num_iters=num_iters, chunk_size=chunk_size,
                            rows=rows, gather=gather)
  pool = _Pool(source, _rows(rows, n), chunk_size)
  return _streamed_nearest_distinct(pool, ~labeled_mask, centres,
                                    gather or single_process)
