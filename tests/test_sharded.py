"""`jal.sharded`: the query with the pool sharded over two processes on
127.0.0.1 equals the one-process query."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import errors
from jal import rounds
from jal import sharded
from jal import stream
from jal.acquisition import badge
from tests import distributed_worker as worker


def test_unsupported_strategies_are_refused():
  for name in ('entropy', 'bald', 'margin', 'kcenter', 'badge'):
    sharded.check_supported(acquisition.get(name))
  with pytest.raises(errors.ConfigError, match='batchbald'):
    sharded.check_supported(acquisition.get('batchbald'))


def test_badge_one_shard_matches_in_memory():
  """The sharded BADGE loop on one process's full pool is `badge_select`."""
  rng = np.random.default_rng(0)
  n = 97
  logits = rng.normal(size=(n, 4)).astype(np.float32)
  log_probs = np.array(jax.nn.log_softmax(logits))
  h = rng.normal(size=(n, 6)).astype(np.float32)
  h[50:60] = h[:10]  # duplicates
  log_probs[50:60] = log_probs[:10]
  candidates = rng.random(n) > 0.2
  key = jax.random.key(3)
  expected = badge.badge_select(key, jnp.asarray(log_probs), jnp.asarray(h),
                                jnp.asarray(candidates), 12)
  got = sharded.badge_select(key, log_probs, h, candidates,
                             stream.Rows(0, n), n, 12)
  np.testing.assert_array_equal(got, expected)


def test_two_processes_select_what_one_selects(tmp_path):
  """entropy, bald, kcenter and badge on a pool whose rows 280–300 copy rows
  0–20 (ties across the shards [0, 151) and [151, 301)); entropy and bald
  also scoring a random subsample (config.pool_subsample)."""
  out = tmp_path / 'selected.json'
  names = worker.STRATEGIES + worker.SUBSAMPLED
  result = worker.run_worker('select', str(out), *names)
  assert result.returncode == 0, result.stdout + result.stderr
  got = json.loads(out.read_text())
  experiments, data, state, trained = worker.first_round(
      names, worker.make_dataset())
  for strategy, exp in experiments.items():
    expected, _ = rounds.query_round(exp, data, trained, state)
    assert got[strategy] == np.asarray(expected).tolist(), strategy
