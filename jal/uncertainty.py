"""Stochastic predictions: MC dropout passes and deep-ensemble members.

Both return log-probabilities `[K, N, C]` over the pool, K being the number
of MC-dropout passes or ensemble members M:

- `mc_dropout_log_probs` is a `vmap` over K dropout keys of one chunked
  evaluation-mode forward pass (batch norm frozen, dropout on). Layers before
  the first dropout do not depend on the key, so `vmap` leaves them unbatched
  and every pass shares them.
- `ensemble_log_probs` is a `vmap` over stacked member variables.

The K (or M) axis is spread over all devices: a `jax.shard_map` over a 1-D
mesh of `jax.devices()` gives each device a slice of the keys (or members),
padded up to a multiple of the device count. One device is the same code with
a mesh of one, and the results do not depend on the number of devices.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jal import models
from jal import train

AXIS = 'samples'


def device_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over all devices, its axis named `AXIS`."""
  return jax.sharding.Mesh(np.asarray(jax.devices()), (AXIS,))


def map_sharded(fn: Callable[..., jax.Array], sharded, replicated,
                size: int) -> jax.Array:
  """`vmap(fn)(sharded, replicated)` with the leading axis over all devices.

  Args:
    fn: `fn(one_sharded, replicated) -> array`, vmapped over the leading axis
      of every leaf of `sharded`.
    sharded: pytree whose leaves share the leading axis of length `size`.
    replicated: pytree passed whole to every device.
    size: the length of the leading axis.

  Returns:
    The stacked results, leading axis `size`.
  """
  mesh = device_mesh()
  num_devices = mesh.devices.size
  padded = -(-size // num_devices) * num_devices

  def pad(x):
    return jnp.concatenate([x, jnp.repeat(x[:1], padded - size, axis=0)])

  sharded = jax.tree.map(pad, sharded)
  local = jax.shard_map(
      lambda s, r: jax.vmap(fn, in_axes=(0, None))(s, r), mesh=mesh,
      in_specs=(P(AXIS), P()), out_specs=P(AXIS), check_vma=False)
  return local(sharded, replicated)[:size]


@functools.partial(jax.jit, static_argnames=('graphdef', 'num_passes',
                                             'chunk_size'))
def mc_dropout_log_probs(key: jax.Array, graphdef, variables: models.Variables,
                         images: jax.Array, *, num_passes: int,
                         chunk_size: int = 1000,
                         include_mask: jax.Array | None = None) -> jax.Array:
  """Log-probabilities of `num_passes` MC-dropout passes.

  Args:
    key: PRNG key; pass k uses `fold_in(key, k)`.
    graphdef: model structure.
    variables: trained variables.
    images: [N, H, W, C] float32.
    num_passes: K.
    chunk_size: images per forward pass.
    include_mask: [N] bool; if given, only these images are sure to be
      computed (see `jal.train.predict`).

  Returns:
    [K, N, C] float32 log-probabilities.
  """

  def one_pass(k, replicated):
    variables, images, include_mask = replicated
    logits, _ = train.predict(graphdef, variables, images,
                              chunk_size=chunk_size,
                              dropout_key=jax.random.fold_in(key, k),
                              include_mask=include_mask)
    return jax.nn.log_softmax(logits)

  return map_sharded(one_pass, jnp.arange(num_passes),
                     (variables, images, include_mask), num_passes)


@functools.partial(jax.jit, static_argnames=('graphdef', 'chunk_size'))
def ensemble_log_probs(graphdef, variables: models.Variables,
                       images: jax.Array, *, chunk_size: int = 1000,
                       include_mask: jax.Array | None = None) -> jax.Array:
  """Log-probabilities of every member of an ensemble (dropout off).

  Args:
    graphdef: model structure shared by the members.
    variables: member variables stacked along a leading axis of length M.
    images: [N, H, W, C] float32.
    chunk_size: images per forward pass.
    include_mask: [N] bool; see `jal.train.predict`.

  Returns:
    [M, N, C] float32 log-probabilities.
  """

  def one_member(member, replicated):
    images, include_mask = replicated
    logits, _ = train.predict(graphdef, member, images, chunk_size=chunk_size,
                              include_mask=include_mask)
    return jax.nn.log_softmax(logits)

  size = jax.tree.leaves(variables)[0].shape[0]
  return map_sharded(one_member, variables, (images, include_mask), size)


def member(variables: models.Variables, index: int) -> models.Variables:
  """Member `index` of stacked ensemble variables."""
  return jax.tree.map(lambda x: x[index], variables)
