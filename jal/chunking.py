"""Loops over the rows of the pool in fixed-size chunks.

Work that touches every pool point (distances, candidate scores, forward
passes) runs as a `lax.fori_loop` over chunks of rows, so memory holds one
chunk-sized tile instead of a pool-sized intermediate, and every shape is
fixed when the loop is traced. Two kinds of loop:

- `map_rows` / `fold_rows` read chunks as `dynamic_slice`s of the original
  arrays (no padded copy of the pool). The last chunk starts at N − chunk and
  overlaps the one before it, which is harmless for row-wise maps and is
  masked out where rows are accumulated.
- `map_masked` hands `fn` chunks of row indices, the rows of a mask first, and
  runs only the chunks that cover the mask: its trip count is a traced value,
  so the cost follows, e.g., the unlabeled count while shapes stay fixed.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

DEFAULT_CHUNK = 4096


def num_chunks(n: int, chunk_size: int) -> int:
  """⌈n / chunk_size⌉, the chunks covering n rows (n may be traced)."""
  return -(-n // chunk_size)


def _chunk_start(i, n: int, chunk: int):
  """Start of chunk i, clamped so the chunk lies inside [0, n)."""
  return jnp.minimum(i * chunk, n - chunk)


def map_rows(fn: Callable[..., object], arrays,
             chunk_size: int = DEFAULT_CHUNK):
  """`fn` applied to row chunks of `arrays`, results stacked back to N rows.

  Args:
    fn: maps chunks `[c, ...]` of each array to a pytree of `[c, ...]` arrays;
      row i of its output may depend only on row i of its inputs.
    arrays: sequence of arrays sharing the leading size N.
    chunk_size: rows per chunk (at most N is used).

  Returns:
    fn's output pytree with leading size N.
  """
  n = arrays[0].shape[0]
  c = min(chunk_size, n)
  specs = [jax.ShapeDtypeStruct((c,) + a.shape[1:], a.dtype) for a in arrays]
  out_specs = jax.eval_shape(fn, *specs)
  buffers = jax.tree.map(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype),
                         out_specs)

  def body(i, buffers):
    start = _chunk_start(i, n, c)
    out = fn(*[jax.lax.dynamic_slice_in_dim(a, start, c) for a in arrays])
    return jax.tree.map(
        lambda b, o: jax.lax.dynamic_update_slice_in_dim(b, o, start, 0),
        buffers, out)

  return jax.lax.fori_loop(0, num_chunks(n, c), body, buffers)


def fold_rows(fn: Callable[..., object], init, arrays,
              chunk_size: int = DEFAULT_CHUNK):
  """Folds `fn(carry, fresh [c] bool, *chunks) -> carry` over row chunks.

  `fresh` marks the rows of the chunk not seen in an earlier chunk (the last
  chunk overlaps); accumulations must ignore the other rows.
  """
  n = arrays[0].shape[0]
  c = min(chunk_size, n)

  def body(i, carry):
    start = _chunk_start(i, n, c)
    fresh = start + jnp.arange(c) >= i * c
    return fn(carry, fresh,
              *[jax.lax.dynamic_slice_in_dim(a, start, c) for a in arrays])

  return jax.lax.fori_loop(0, num_chunks(n, c), body, init)


def map_masked(fn: Callable[[jax.Array], object], n: int, chunk_size: int,
               include_mask: jax.Array | None = None):
  """`fn` over chunks of row indices, only as many chunks as the mask needs.

  The row indices are put in order with the rows of `include_mask` first (a
  stable argsort of ~mask, so each group keeps index order) and padded to
  whole chunks by repeating the start of that order. A `fori_loop` with the
  traced trip count ⌈|mask| / chunk⌉ calls `fn` on consecutive chunks and
  scatters each result to its rows. Rows that fall in no chunk run stay
  zero; rows outside the mask that share the last chunk with masked ones are
  computed too. Under `jax.vmap` over masks the loop runs to the largest trip
  count in the batch.

  Args:
    fn: `fn(rows: [chunk] int32) -> pytree of [chunk, ...] arrays`; row j of
      each output belongs to pool row `rows[j]`. A row may appear twice (in
      the padding), so its result must depend only on its index.
    n: static number of rows N.
    chunk_size: static rows per call of `fn` (at most N is used).
    include_mask: optional [N] bool of the rows to compute; every row if None
      (a loop of static length ⌈N / chunk⌉).

  Returns:
    fn's output pytree with each leaf [N, ...], its shapes and dtypes those
    of `jax.eval_shape(fn, ...)` with the leading chunk size replaced by N.
  """
  c = min(chunk_size, n)
  total = num_chunks(n, c)
  if include_mask is None:
    order, trips = jnp.arange(n, dtype=jnp.int32), total
  else:
    order = jnp.argsort(~include_mask, stable=True).astype(jnp.int32)
    trips = num_chunks(jnp.sum(include_mask, dtype=jnp.int32), c)
  order = jnp.concatenate([order, order[:total * c - n]])
  out_specs = jax.eval_shape(fn, jax.ShapeDtypeStruct((c,), jnp.int32))
  buffers = jax.tree.map(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype),
                         out_specs)

  def body(i, buffers):
    rows = jax.lax.dynamic_slice_in_dim(order, i * c, c)
    return jax.tree.map(lambda b, o: b.at[rows].set(o), buffers, fn(rows))

  return jax.lax.fori_loop(0, trips, body, buffers)
