"""Tests of jal.stream: sources, shards, exact streamed top-k and selection."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import config as config_lib
from jal import data as data_lib
from jal import errors
from jal import loop
from jal import rounds
from jal import stream
from jal.acquisition.base import top_k_unlabeled_first

SCORE_STRATEGIES = [name for name in acquisition.names()
                    if acquisition.get(name).score is not None]


# ---------------------------------------------------------------- sources


@pytest.mark.parametrize('num_rows,num_shards', [(10, 3), (3, 5), (0, 2),
                                                 (1000, 7), (8, 8)])
def test_shard_rows_cover_the_pool_in_order(num_rows, num_shards):
  shards = [stream.shard_rows(num_rows, num_shards, i)
            for i in range(num_shards)]
  assert shards[0].start == 0 and shards[-1].stop == num_rows
  for a, b in zip(shards, shards[1:]):
    assert a.stop == b.start
  sizes = [s.size for s in shards]
  assert max(sizes) - min(sizes) <= 1
  assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize('args', [(10, 0, 0), (10, 2, 2), (10, 2, -1),
                                  (-1, 2, 0), (10.0, 2, 0)])
def test_shard_rows_rejects_bad_arguments(args):
  with pytest.raises(errors.ConfigError):
    stream.shard_rows(*args)


def test_npy_source_reads_rows_of_a_memory_map(tmp_path):
  array = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)
  np.save(tmp_path / 'pool.npy', array)
  source = stream.NpySource(tmp_path / 'pool.npy')
  assert (source.num_rows, source.row_shape, source.dtype) == (
      5, (3, 2), np.float32)
  assert isinstance(source.array, np.memmap)
  np.testing.assert_array_equal(source.read(1, 4), array[1:4])
  memory = stream.ArraySource(array)
  assert (memory.num_rows, memory.row_shape) == (5, (3, 2))
  np.testing.assert_array_equal(memory.read(3, 5), array[3:])


def test_npy_source_errors_say_what_is_wrong(tmp_path):
  with pytest.raises(errors.DatasetNotFoundError, match='no .npy pool file'):
    stream.NpySource(tmp_path / 'missing.npy')
  np.savez(tmp_path / 'pool.npz', x=np.zeros(3))
  with pytest.raises(errors.ConfigError, match='not an .npy file'):
    stream.NpySource(tmp_path / 'pool.npz')
  (tmp_path / 'pool.pkl').write_bytes(pickle.dumps(np.zeros(3)))
  with pytest.raises(errors.ConfigError, match='not an .npy file'):
    stream.NpySource(tmp_path / 'pool.pkl')
  np.save(tmp_path / 'objects.npy', np.array([{}, None], dtype=object))
  with pytest.raises(errors.ConfigError, match='Python objects'):
    stream.NpySource(tmp_path / 'objects.npy')
  np.save(tmp_path / 'scalar.npy', np.float32(1))
  with pytest.raises(errors.ConfigError, match='row axis'):
    stream.NpySource(tmp_path / 'scalar.npy')


# ------------------------------------------------------------------ top-k


def _hostile_scores(rng, n):
  """Scores with NaN, ±inf, −0/+0 and many ties."""
  scores = rng.integers(0, 6, n).astype(np.float32) / 2
  scores[rng.random(n) < 0.1] = np.nan
  scores[rng.random(n) < 0.1] = -np.inf
  scores[rng.random(n) < 0.05] = np.inf
  scores[rng.random(n) < 0.05] = -0.0
  return scores


def _brute_force_top_k(scores, indices, k):
  scores = np.where(np.isnan(scores), -np.inf, scores)
  # −0 ranks below +0, as in jax.lax.top_k.
  order = np.lexsort((indices, np.signbit(scores), -scores))[:k]
  return scores[order], indices[order]


def test_merge_top_k_is_exact():
  rng = np.random.default_rng(1)
  for _ in range(20):
    scores = _hostile_scores(rng, 40)
    indices = rng.permutation(1000)[:40].astype(np.int32)
    k = int(rng.integers(1, 41))
    got_s, got_i = stream.merge_top_k(scores[:17], indices[:17], scores[17:],
                                      indices[17:], k)
    want_s, want_i = _brute_force_top_k(scores, indices, k)
    np.testing.assert_array_equal(np.asarray(got_i), want_i)
    np.testing.assert_array_equal(np.asarray(got_s), want_s)
  with pytest.raises(errors.ConfigError, match='exceeds'):
    stream.merge_top_k(scores[:2], indices[:2], scores[2:4], indices[2:4], 5)


@pytest.mark.parametrize('chunk_size', [1, 7, 64, 1000])
def test_streamed_top_k_equals_top_k_unlabeled_first(chunk_size):
  rng = np.random.default_rng(chunk_size)
  n = 203
  scores = _hostile_scores(rng, n)
  labeled = rng.random(n) < 0.5
  for k in (1, 10, int((~labeled).sum()) + 5):  # the last takes labeled ones
    want = np.asarray(top_k_unlabeled_first(jnp.asarray(scores),
                                            jnp.asarray(labeled), k))
    _, got = stream.streamed_top_k(lambda x: x, scores, labeled, k,
                                   chunk_size=chunk_size)
    np.testing.assert_array_equal(got, want)


def test_streamed_top_k_over_shards_equals_one_process():
  """Three simulated processes, each scoring its shard: every one returns
  the single-process top-k once the candidates are gathered."""
  rng = np.random.default_rng(3)
  n, k, processes = 250, 30, 3
  scores = _hostile_scores(rng, n)
  labeled = rng.random(n) < 0.3
  _, want = stream.streamed_top_k(lambda x: x, scores, labeled, k,
                                  chunk_size=16)
  shards = [stream.shard_rows(n, processes, p) for p in range(processes)]
  local = [stream.streamed_top_k(lambda x: x, scores, labeled, k,
                                 chunk_size=16, rows=rows)
           for rows in shards]
  for p, rows in enumerate(shards):
    def gather(tree, p=p):
      # What the real gather returns: every process's tree, in process order.
      assert jax.tree.map(np.shape, tree) == ((k,), (k,))
      for mine, theirs in zip(tree, local[p]):
        np.testing.assert_array_equal(mine, theirs)
      return tuple(np.stack(leaves) for leaves in zip(*local))

    _, got = stream.streamed_top_k(lambda x: x, scores, labeled, k,
                                   chunk_size=16, rows=rows, gather=gather)
    np.testing.assert_array_equal(got, want)


def test_streamed_top_k_compiles_once_per_call_and_reads_a_memmap(tmp_path):
  n = 1000
  scores = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
  np.save(tmp_path / 'pool.npy', scores)
  calls = []

  def chunk_scores(x):
    calls.append(x.shape)  # runs only when traced
    return x[:, 0] - x[:, 1]

  labeled = np.zeros(n, bool)
  _, got = stream.streamed_top_k(chunk_scores,
                                 stream.NpySource(tmp_path / 'pool.npy'),
                                 labeled, 5, chunk_size=300)
  assert calls == [(300, 2)]
  np.testing.assert_array_equal(
      got, np.argsort(-(scores[:, 0] - scores[:, 1]), kind='stable')[:5])


def test_streamed_top_k_errors():
  scores = np.zeros(10, np.float32)
  with pytest.raises(errors.ConfigError, match='labeled_mask'):
    stream.streamed_top_k(lambda x: x, scores, np.zeros(9, bool), 2)
  with pytest.raises(errors.ConfigError, match='k must be'):
    stream.streamed_top_k(lambda x: x, scores, np.zeros(10, bool), 11)
  with pytest.raises(errors.ConfigError, match='rows must be'):
    stream.streamed_top_k(lambda x: x, scores, np.zeros(10, bool), 2,
                          rows=stream.Rows(5, 11))
  with pytest.raises(errors.ConfigError, match=r'must return \[4\] scores'):
    stream.streamed_top_k(lambda x: x[:2], scores, np.zeros(10, bool), 2,
                          chunk_size=4)


# ------------------------------------------------------ strategy selection


def _log_probs_with_ties(n=301, k=5, c=4, seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(k, n, c)).astype(np.float32)
  logits[:, 200:260] = logits[:, 20:80]  # duplicated rows: tied scores
  return np.asarray(jax.nn.log_softmax(logits)), rng.random(n) < 0.3


@pytest.mark.parametrize('name', SCORE_STRATEGIES)
def test_streamed_select_equals_query_in_memory(name):
  strategy = acquisition.get(name)
  (need,) = strategy.needs
  log_probs, labeled = _log_probs_with_ties()
  if need == 'log_probs':
    log_probs = log_probs[:1]
  inputs = {need: log_probs}
  key = jax.random.key(0)
  want = np.asarray(acquisition.query(strategy, key, inputs, labeled, 90))
  # The source holds each row's [K, C] predictions; a chunk of 37 rows
  # does not divide N = 301.
  rows_first = stream.ArraySource(log_probs.transpose(1, 0, 2))
  predict_chunk = lambda key, x: {need: jnp.swapaxes(x, 0, 1)}
  got = stream.streamed_select(strategy, key, predict_chunk, rows_first,
                               labeled, 90, chunk_size=37)
  np.testing.assert_array_equal(got, want)


@pytest.fixture(scope='module')
def trained_digits():
  """Digits with 200 duplicated pool rows, a 2-epoch MLP, round 0."""
  config = config_lib.default()
  config.num_epochs = 2
  config.initial_size = 20
  config.query_size = 10
  config.posterior_samples = 4
  dataset = data_lib.load('digits')
  dataset = dataset._replace(
      pool_images=np.concatenate([dataset.pool_images,
                                  dataset.pool_images[:200]]),
      pool_labels=np.concatenate([dataset.pool_labels,
                                  dataset.pool_labels[:200]]))
  exp, data = loop.setup(config, dataset)
  state = loop.init_state(exp, data, loop.simulated_oracle(
      config, dataset.pool_labels, dataset.num_classes))
  return config, dataset, data, state, rounds.train_round(exp, data, state)


def test_streamed_query_round_equals_query_round(trained_digits):
  """Every score strategy on a trained MLP, MC dropout included: the pool
  streamed in chunks of 97 selects exactly what `query_round` selects."""
  config, dataset, data, state, trained = trained_digits
  source = stream.ArraySource(dataset.pool_images)
  query = jax.jit(rounds.query_round, static_argnums=(0, 4))
  for name in SCORE_STRATEGIES:
    exp = rounds.make_experiment(config, dataset.pool_images.shape[1:],
                                 dataset.num_classes,
                                 strategy=acquisition.get(name))
    want, _ = query(exp, data, trained, state, 150)
    got, _ = stream.streamed_query_round(exp, trained, state, source, 150,
                                         chunk_size=97)
    np.testing.assert_array_equal(got, np.asarray(want), err_msg=name)


def test_streaming_refuses_what_it_cannot_stream(trained_digits):
  config, dataset, _, state, trained = trained_digits
  labeled = np.asarray(state.labeled_mask)
  with pytest.raises(errors.ConfigError, match='no per-point score'):
    stream.streamed_select(acquisition.get('kcenter'), jax.random.key(0),
                           lambda k, x: {}, dataset.pool_images, labeled, 5)
  with pytest.raises(errors.ConfigError, match='only 1477'):
    stream.streamed_select(acquisition.get('entropy'), jax.random.key(0),
                           lambda k, x: {}, dataset.pool_images, labeled,
                           1478)
  laplace = config.copy_and_resolve_references()
  laplace.posterior = 'laplace'
  exp = rounds.make_experiment(laplace, dataset.pool_images.shape[1:],
                               dataset.num_classes,
                               strategy=acquisition.get('bald'))
  with pytest.raises(errors.ConfigError, match='cannot be streamed'):
    stream.experiment_predict_chunk(exp, trained.variables)
  per_chunk = config.copy_and_resolve_references()
  per_chunk.consistent_dropout = False
  exp = rounds.make_experiment(per_chunk, dataset.pool_images.shape[1:],
                               dataset.num_classes,
                               strategy=acquisition.get('bald'))
  with pytest.raises(errors.ConfigError, match='consistent_dropout'):
    stream.experiment_predict_chunk(exp, trained.variables)
