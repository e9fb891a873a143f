"""PLACEHOLDER until the chunking branch lands."""
import jax
import jax.numpy as jnp


def num_chunks(n: int, chunk_size: int) -> int:
  return -(-n // chunk_size)


def map_masked(fn, n, chunk_size, include_mask=None):
  chunk_size = min(chunk_size, n)
  count = num_chunks(n, chunk_size)
  if include_mask is None:
    order = jnp.arange(count * chunk_size) % n
    needed = count
  else:
    order = jnp.argsort(~include_mask, stable=True).astype(jnp.int32)
    order = jnp.concatenate([order, order[:count * chunk_size - n]])
    needed = (jnp.sum(include_mask) + chunk_size - 1) // chunk_size

  def rows_of(index):
    return jax.lax.dynamic_slice(order, (index * chunk_size,), (chunk_size,))

  def body(index, outputs):
    rows = rows_of(index)
    return jax.tree.map(lambda o, v: o.at[rows].set(v), outputs,
                        fn(index, rows))

  shapes = jax.eval_shape(fn, 0, rows_of(0))
  outputs = jax.tree.map(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype),
                         shapes)
  return jax.lax.fori_loop(0, needed, body, outputs)
