"""Checkpoints keyed by pytree path: exact round trips and clear refusals."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import checkpoint
from jal import errors
from jal import loop
from jal import rounds


def _state():
  return rounds.ALState(
      round=jnp.asarray(3, jnp.int32),
      labeled_mask=jnp.arange(6) < 2,
      labels=jnp.asarray([4, 1, -1, -1, -1, -1], jnp.int32),
      key=jax.random.key(7),
      strategy_state={'ids': jnp.arange(6, dtype=jnp.int32),
                      'scale': jnp.ones(())},
      variables=())


def test_round_trip_is_exact_and_keyed_by_path(tmp_path):
  path = str(tmp_path / 'c.npz')
  state = _state()
  checkpoint.save(path, state, [{'round': 0}], 'abc')
  with np.load(path) as stored:
    assert {'.labels', '.labeled_mask', ".strategy_state['ids']"} <= set(
        stored.files)
  restored, records = checkpoint.restore(path, state, 'abc')
  assert records == [{'round': 0}]
  for a, b in zip(jax.tree.leaves(checkpoint.flatten(state)),
                  jax.tree.leaves(checkpoint.flatten(restored))):
    np.testing.assert_array_equal(a, b)
  assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)


def test_fields_of_equal_shape_cannot_be_swapped(tmp_path):
  """A template whose same-shaped fields are renamed is refused by name."""
  path = str(tmp_path / 'c.npz')
  state = _state()
  checkpoint.save(path, state, [])
  renamed = state._replace(strategy_state={'other': jnp.zeros(6, jnp.int32),
                                           'scale': jnp.ones(())})
  with pytest.raises(errors.CheckpointError,
                     match=r"missing \[\".strategy_state\['other'\]\"\]"):
    checkpoint.restore(path, renamed)


def test_another_experiment_or_damage_is_a_clear_error(tmp_path):
  path = str(tmp_path / 'c.npz')
  state = _state()
  checkpoint.save(path, state, [], 'abc')
  with pytest.raises(errors.CheckpointError, match='another experiment'):
    checkpoint.restore(path, state, 'xyz')
  with pytest.raises(errors.CheckpointError, match='labels is int32\\[6\\]'):
    checkpoint.restore(path, state._replace(labels=jnp.zeros(7, jnp.int32)),
                       'abc')
  for damage in (b'', b'garbage' * 10, open(path, 'rb').read()[:100]):
    with open(path, 'wb') as f:
      f.write(damage)
    with pytest.raises(errors.CheckpointError, match='damaged'):
      checkpoint.restore(path, state, 'abc')
  os.remove(path)
  os.mkdir(path)
  with pytest.raises(errors.CheckpointError, match='not a regular file'):
    checkpoint.restore(path, state, 'abc')


def test_checkpoint_of_another_experiment_is_not_resumed(tiny_config,
                                                         tmp_path):
  """Same shapes, other config: its checkpoint is refused, not mixed in."""
  loop.run(tiny_config, str(tmp_path / 'a'))
  tiny_config.seed = 1
  os.makedirs(tmp_path / 'b')
  os.replace(tmp_path / 'a' / loop.CHECKPOINT, tmp_path / 'b' /
             loop.CHECKPOINT)
  with pytest.raises(errors.CheckpointError, match='another experiment'):
    loop.run(tiny_config, str(tmp_path / 'b'))


def test_resume_rewrites_records_lost_after_the_last_checkpoint(tiny_config,
                                                               tmp_path):
  """A kill between the checkpoint and results.jsonl loses nothing."""
  whole = loop.run(tiny_config, str(tmp_path))
  results = tmp_path / loop.RESULTS
  lines = results.read_text().splitlines()
  results.write_text('\n'.join(lines[:-1]) + '\n')
  again = loop.run(tiny_config, str(tmp_path))
  assert results.read_text().splitlines() == lines
  assert again['aubc'] == whole['aubc']
