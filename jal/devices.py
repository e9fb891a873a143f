"""Spreading a leading axis (MC passes, ensemble members) over all devices.

`map_sharded` is `vmap` whose mapped axis is split over a 1-D mesh of
this process's devices (`jax.local_devices()`) with `jax.shard_map`, padded
up to a multiple of the device count. One device is the same code with a mesh
of one, and results do not depend on the number of devices. In a
multi-process run (`jal.distributed`) each process holds the whole model and
spreads its passes over its own devices only.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jal import chunking

AXIS = 'samples'


def device_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over this process's devices, its axis named `AXIS`."""
  return jax.sharding.Mesh(np.asarray(jax.local_devices()), (AXIS,))


def map_sharded(fn: Callable[..., jax.Array], sharded, replicated,
                size: int):
  """`vmap(fn)(sharded, replicated)` with the leading axis over all devices.

  Args:
    fn: `fn(one_sharded, replicated) -> pytree`, vmapped over the leading
      axis of every leaf of `sharded`.
    sharded: pytree whose leaves share the leading axis of length `size`.
    replicated: pytree passed whole to every device.
    size: the length of the leading axis.

  Returns:
    The stacked results, leading axis `size`.
  """
  mesh = device_mesh()
  num_devices = mesh.devices.size
  padded = chunking.num_chunks(size, num_devices) * num_devices

  def pad(x):
    return jnp.concatenate([x, jnp.repeat(x[:1], padded - size, axis=0)])

  sharded = jax.tree.map(pad, sharded)
  local = jax.shard_map(
      lambda s, r: jax.vmap(fn, in_axes=(0, None))(s, r), mesh=mesh,
      in_specs=(P(AXIS), P()), out_specs=P(AXIS), check_vma=False)
  return jax.tree.map(lambda x: x[:size], local(sharded, replicated))
