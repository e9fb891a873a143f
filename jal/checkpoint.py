"""Atomic save and restore of an experiment's state after each round.

A checkpoint is one `.npz` file: the arrays of a pytree (PRNG keys stored as
their raw key data) plus the JSON of the per-round records. It is written to a
temporary file, flushed to disk and renamed over the old one, so a kill at any
moment leaves either the previous checkpoint or the new one, never a mix.
"""

import io
import json
import os

import jax
import numpy as np

from jal import errors


def _to_numpy(leaf):
  if jax.dtypes.issubdtype(getattr(leaf, 'dtype', None), jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(leaf))
  return np.asarray(leaf)


def atomic_write(path: str, data: bytes) -> None:
  """Writes `data` to `path` so that readers see the old or the new file."""
  tmp = f'{path}.tmp'
  with open(tmp, 'wb') as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def save(path: str, tree, records: list[dict]) -> None:
  """Saves pytree `tree` and JSON-able `records` atomically to `path`."""
  arrays = {f'leaf_{i}': _to_numpy(x)
            for i, x in enumerate(jax.tree.leaves(tree))}
  buffer = io.BytesIO()
  np.savez(buffer, records=np.frombuffer(json.dumps(records).encode(),
                                         np.uint8), **arrays)
  atomic_write(path, buffer.getvalue())


def restore(path: str, like):
  """Restores `(tree, records)` saved by `save`, shaped like pytree `like`.

  Raises:
    CheckpointError: the file does not match `like` (another experiment's).
  """
  leaves, treedef = jax.tree.flatten(like)
  with np.load(path) as data:
    if len(data.files) != len(leaves) + 1:
      raise errors.CheckpointError(
          f'{path} holds {len(data.files) - 1} arrays but this experiment '
          f'needs {len(leaves)}: it was written by another experiment. Use a '
          'new work directory or delete this one.')
    restored = []
    for i, like_leaf in enumerate(leaves):
      value = data[f'leaf_{i}']
      if jax.dtypes.issubdtype(like_leaf.dtype, jax.dtypes.prng_key):
        value = jax.random.wrap_key_data(value)
      elif value.shape != like_leaf.shape or value.dtype != like_leaf.dtype:
        raise errors.CheckpointError(
            f'{path}: array {i} is {value.dtype}{list(value.shape)}, expected '
            f'{like_leaf.dtype}{list(like_leaf.shape)}. Use a new work '
            'directory or delete this one.')
      restored.append(jax.numpy.asarray(value))
    records = json.loads(data['records'].tobytes().decode())
  return jax.tree.unflatten(treedef, restored), records
