"""`jal.sharded`: the query with the pool sharded over two processes on
127.0.0.1 equals the one-process query."""

import json
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import config as config_lib
from jal import errors
from jal import loop
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
  also scoring a random subsample (config.pool_subsample), badge with
  prediction chunks wider than a shard (config.eval_chunk = 256)."""
  out = tmp_path / 'selected.json'
  names = worker.STRATEGIES + worker.VARIANTS
  result = worker.run_worker('select', str(out), *names)
  assert result.returncode == 0, result.stdout + result.stderr
  got = json.loads(out.read_text())
  experiments, data, state, trained = worker.first_round(
      names, worker.make_dataset())
  for strategy, exp in experiments.items():
    expected, _ = rounds.query_round(exp, data, trained, state)
    assert got[strategy] == np.asarray(expected).tolist(), strategy


def thread_gather(num_processes: int):
  """`make(i) -> gather` for `num_processes` threads standing for processes:
  each thread's `gather(tree)` returns every thread's tree stacked."""
  barrier = threading.Barrier(num_processes)
  slots = [None] * num_processes

  def make(index):
    def gather(tree):
      slots[index] = tree
      barrier.wait()
      out = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                         *slots)
      barrier.wait()
      return out
    return gather

  return make


def test_score_select_on_shards_narrower_than_a_chunk():
  """Three shards of 334, 333 and 333 rows, predictions in chunks of 1000 in
  memory: the shards are padded to the chunk's shape, or some scores round
  differently (here, bald's 33rd and 34th picks swap places)."""
  config = config_lib.default()
  config.strategy = 'bald'
  config.pool_size = 1000
  config.num_epochs = 5
  dataset = loop.load_dataset(config)
  exp, data = loop.setup(config, dataset)
  oracle = loop.simulated_oracle(config, dataset.pool_labels,
                                 dataset.num_classes)
  state = loop.reveal_initial(loop.init_state(exp, data, None), oracle)
  fns = loop.RoundFns(exp)
  state, _ = loop.step(fns, data, state, oracle)  # round 1's labeled set
  trained = fns.train(data, state)
  expected, _ = rounds.query_round(exp, data, trained, state)
  _, _, query_key = rounds.round_keys(state)
  predict_key, _, _ = jax.random.split(query_key, 3)
  make = thread_gather(3)
  got = [None] * 3

  def process(i):
    got[i] = sharded.score_select(
        exp, predict_key, trained, data.pool_images,
        np.asarray(state.labeled_mask), stream.shard_rows(1000, 3, i),
        config.query_size, gather=make(i))

  threads = [threading.Thread(target=process, args=(i,)) for i in range(3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  for selected in got:
    np.testing.assert_array_equal(selected, expected)
