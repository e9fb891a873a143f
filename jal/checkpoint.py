"""Atomic save and restore of an experiment's state, keyed by pytree path.

A checkpoint is one `.npz` file: every array of a pytree under the name of
its path (`jax.tree_util.keystr`, e.g. `.labeled_mask` or
`.strategy_state[0]`; PRNG keys stored as their raw key data), plus a JSON
header (format version, the experiment's fingerprint) and the JSON of the
per-round records. `restore` reads it against a template tree and refuses a
file whose paths, shapes, dtypes or fingerprint differ, so fields can never
be swapped silently. Writes go to a temporary file, are flushed to disk and
renamed over the old one, so a kill at any moment leaves either the previous
checkpoint or the new one.
"""

import io
import json
import os
import zipfile

import jax
import numpy as np

from jal import errors

FORMAT = 2
_HEADER = '__header__'
_RECORDS = '__records__'


def atomic_write(path: str, data: bytes) -> None:
  """Writes `data` to `path` so that readers see the old or the new file.

  Raises:
    OSError: the write failed (its `filename` names the file); `path` keeps
      its old contents and the temporary file is removed.
  """
  tmp = f'{path}.tmp'
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as e:
    if e.filename is None:  # a failed write or fsync (a full disk) names none
      e.filename = tmp
    _remove_quietly(tmp)
    raise


def _remove_quietly(path: str) -> None:
  try:
    os.remove(path)
  except OSError:
    pass


def _is_key(leaf) -> bool:
  return jax.dtypes.issubdtype(getattr(leaf, 'dtype', None),
                               jax.dtypes.prng_key)


def _json_array(value) -> np.ndarray:
  return np.frombuffer(json.dumps(value).encode(), np.uint8)


def flatten(tree) -> dict[str, np.ndarray]:
  """The leaves of `tree` as numpy arrays named by their paths."""
  return {jax.tree_util.keystr(path): np.asarray(
      jax.random.key_data(leaf) if _is_key(leaf) else leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def save(path: str, tree, records: list[dict], fingerprint: str = '') -> None:
  """Saves pytree `tree` and JSON-able `records` atomically to `path`."""
  arrays = flatten(tree)
  buffer = io.BytesIO()
  np.savez(buffer, **{_HEADER: _json_array(dict(format=FORMAT,
                                                 fingerprint=fingerprint)),
                      _RECORDS: _json_array(records)}, **arrays)
  atomic_write(path, buffer.getvalue())


def _fail(path: str, what: str):
  raise errors.CheckpointError(
      f'{path}: {what}. It cannot be resumed: delete the work directory (or '
      'this file, to start the experiment over) or use a new one.')


def restore(path: str, like, fingerprint: str = ''):
  """Restores `(tree, records)` saved by `save`, shaped like pytree `like`.

  Raises:
    CheckpointError: the file is damaged, of another format, written by
      another experiment (fingerprint), or its paths, shapes or dtypes differ
      from `like`.
  """
  if not os.path.isfile(path):
    _fail(path, 'is not a regular file')
  try:
    with np.load(path, allow_pickle=False) as data:
      stored = {name: data[name] for name in data.files}
    header = json.loads(stored.pop(_HEADER).tobytes().decode())
    records = json.loads(stored.pop(_RECORDS).tobytes().decode())
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
          UnicodeDecodeError) as e:
    _fail(path, f'is damaged or not a jal checkpoint ({type(e).__name__})')
  if header.get('format') != FORMAT:
    _fail(path, f'has format {header.get("format")}, this jal writes {FORMAT}')
  if header.get('fingerprint') != fingerprint:
    _fail(path, 'was written by another experiment (its fingerprint differs)')
  if not isinstance(records, list):
    _fail(path, 'holds no list of per-round records')
  flat, treedef = jax.tree_util.tree_flatten_with_path(like)
  expected = [jax.tree_util.keystr(p) for p, _ in flat]
  if sorted(expected) != sorted(stored):
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    _fail(path, f'holds other arrays than this experiment (missing '
          f'{missing}, unexpected {extra})')
  leaves = []
  for name, (_, like_leaf) in zip(expected, flat):
    value = stored[name]
    want = (np.asarray(jax.random.key_data(like_leaf)) if _is_key(like_leaf)
            else np.asarray(like_leaf))
    if value.shape != want.shape or value.dtype != want.dtype:
      _fail(path, f'array {name} is {value.dtype}{list(value.shape)}, '
            f'expected {want.dtype}{list(want.shape)}')
    leaves.append(jax.random.wrap_key_data(value) if _is_key(like_leaf)
                  else jax.numpy.asarray(value))
  return jax.tree_util.tree_unflatten(treedef, leaves), records
