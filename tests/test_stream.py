"""Tests of jal.stream: sources, shards, exact streamed top-k and selection."""

import concurrent.futures
import pickle
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import cluster
from jal import config as config_lib
from jal import data as data_lib
from jal import errors
from jal import loop
from jal import rounds
from jal import stream
from jal.acquisition.base import top_k_unlabeled_first
from jal.acquisition.kcenter import kcenter_select
from jal.acquisition.kmeans import kmeans_select

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
  kept = stream.NpySource(tmp_path / 'pool.npy', release_pages=False)
  np.testing.assert_array_equal(kept.read(0, 5), array)
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


class _RowsOnly:
  """A minimal source: the four members and nothing else."""

  def __init__(self, array, bad=False):
    self.array, self.bad = array, bad
    self.num_rows, self.row_shape = array.shape[0], array.shape[1:]
    self.dtype = array.dtype

  def read(self, start, stop):
    return self.array[start:stop + (1 if self.bad else 0)]


def test_any_object_with_the_four_members_is_a_source():
  scores = np.random.default_rng(0).normal(size=57).astype(np.float32)
  labeled = np.zeros(57, bool)
  _, got = stream.streamed_top_k(lambda x: x, _RowsOnly(scores), labeled, 9,
                                 chunk_size=10)
  np.testing.assert_array_equal(got, np.argsort(-scores, kind='stable')[:9])
  with pytest.raises(errors.ConfigError, match=r'returned shape \(11,\)'):
    stream.streamed_top_k(lambda x: x, _RowsOnly(scores, bad=True), labeled,
                          9, chunk_size=10)


def test_sequence_source_reads_dict_examples_as_tfds_gives_them():
  images = np.arange(7 * 4, dtype=np.uint8).reshape(7, 2, 2)
  examples = [{'image': im, 'label': i} for i, im in enumerate(images)]

  class Batched(list):  # a TFDS data_source batches reads like this
    def __getitems__(self, indices):
      return [self[i] for i in indices]

  for items in (examples, Batched(examples)):
    source = stream.SequenceSource(items, 'image')
    assert (source.num_rows, source.row_shape, source.dtype) == (
        7, (2, 2), np.uint8)
    np.testing.assert_array_equal(source.read(2, 6), images[2:6])
  with pytest.raises(errors.ConfigError, match="no feature 'img'"):
    stream.SequenceSource(examples, 'img')
  ragged = examples[:3] + [{'image': np.zeros((3, 3), np.uint8)}]
  with pytest.raises(errors.ConfigError, match='rows of one shape'):
    stream.SequenceSource(ragged, 'image').read(0, 4)


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
  """Digits with 200 duplicated pool rows, an MLP, round 0. The model is
  freshly initialised: streaming must give the in-memory selection for any
  variables, and training would only add compile time."""
  config = config_lib.default()
  config.num_epochs = 1
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
  trained = rounds.Trained(exp.posterior.init(jax.random.key(3)), ())
  return config, dataset, data, state, trained


def test_streamed_query_round_equals_query_round(trained_digits):
  """The pool streamed in chunks of 97: BALD (MC dropout) selects exactly
  what `query_round` selects in memory (the keys of the round included)."""
  config, dataset, data, state, trained = trained_digits
  source = stream.ArraySource(dataset.pool_images)
  for name in ('bald',):
    exp = rounds.make_experiment(config, dataset.pool_images.shape[1:],
                                 dataset.num_classes,
                                 strategy=acquisition.get(name))
    want, _ = rounds.query_round(exp, data, trained, state, 150)
    got, _ = stream.streamed_query_round(exp, trained, state, source, 150,
                                         chunk_size=97)
    np.testing.assert_array_equal(got, np.asarray(want), err_msg=name)
  # A query on a random part of the pool (Gal et al.'s subsample) too.
  subsampled = config.copy_and_resolve_references()
  subsampled.pool_subsample = 300
  exp = rounds.make_experiment(subsampled, dataset.pool_images.shape[1:],
                               dataset.num_classes,
                               strategy=acquisition.get('bald'))
  want, _ = rounds.query_round(exp, data, trained, state, 50)
  got, _ = stream.streamed_query_round(exp, trained, state, source, 50,
                                       chunk_size=97)
  np.testing.assert_array_equal(got, np.asarray(want))


def test_experiment_predict_chunk_gives_the_rows_of_rounds_predictions(
    trained_digits):
  """Row for row the predictions `rounds.predictions` makes in memory with
  the same key (same dropout masks, same members), to float32 rounding: XLA
  on CPU rounds some chunk shapes differently (~1 ulp). Every score
  strategy's streamed selection equals `acquisition.query` on the same
  inputs exactly (tested above)."""
  config, dataset, data, state, trained = trained_digits
  exp = rounds.make_experiment(config, dataset.pool_images.shape[1:],
                               dataset.num_classes,
                               strategy=acquisition.get('bald'))
  needs = ('log_probs', 'mc_log_probs')
  key = jax.random.key(5)
  want = rounds.predictions(exp, key, trained, data.pool_images,
                            state.labeled_mask, needs)
  predict_chunk = stream.experiment_predict_chunk(exp, trained.variables,
                                                  needs)
  unlabeled = ~np.asarray(state.labeled_mask)  # in memory: only these rows
  step = jax.jit(lambda p, x: p(key, x))
  for start in (0, 97 * 7):
    got = step(predict_chunk, dataset.pool_images[start:start + 97])
    rows = np.flatnonzero(unlabeled[start:start + 97])
    for name in needs:
      np.testing.assert_allclose(
          np.asarray(got[name])[:, rows],
          np.asarray(want[name])[:, start + rows], rtol=1e-6, atol=1e-6,
          err_msg=name)


@pytest.mark.parametrize('name', ['kcenter', 'kmeans'])
def test_streamed_query_round_over_an_embedding_cache(trained_digits,
                                                      tmp_path, name):
  """kcenter and kmeans on the round model's embeddings, cached on disk
  chunk by chunk: the picks of `query_round` in memory."""
  config, dataset, data, state, trained = trained_digits
  exp = rounds.make_experiment(config, dataset.pool_images.shape[1:],
                               dataset.num_classes,
                               strategy=acquisition.get(name))
  want, _ = rounds.query_round(exp, data, trained, state, 10)
  got, _ = stream.streamed_query_round(
      exp, trained, state, stream.ArraySource(dataset.pool_images), 10,
      chunk_size=97, embeddings_path=tmp_path / 'emb.npy')
  np.testing.assert_array_equal(got, np.asarray(want))
  with pytest.raises(errors.ConfigError, match='embeddings_path'):
    stream.streamed_query_round(exp, trained, state, dataset.pool_images, 10)


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


# ------------------------------------------------------ embedding cache


def _embed(x):
  return jnp.tanh(x.reshape(x.shape[0], -1) @ jnp.ones((6, 3)) / 6)


def test_embed_to_npy_writes_every_row_and_returns_its_source(tmp_path):
  pool = np.random.default_rng(0).normal(size=(103, 2, 3)).astype(np.float32)
  out = stream.embed_to_npy(_embed, pool, tmp_path / 'emb.npy', chunk_size=10)
  assert (out.num_rows, out.row_shape) == (103, (3,))
  np.testing.assert_allclose(out.read(0, 103), np.asarray(_embed(pool)),
                             rtol=1e-6)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['emb.npy']


def test_embed_to_npy_resumes_after_a_kill(tmp_path):
  pool = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
  path = tmp_path / 'emb.npy'
  seen, kills = [], [30]

  class Killed(Exception):
    pass

  class Dies(stream.ArraySource):
    def read_into(self, start, stop, out):
      seen.append(start)
      if kills and start == kills[0]:
        kills.pop()
        raise Killed
      super().read_into(start, stop, out)

  with pytest.raises(Killed):
    stream.embed_to_npy(_embed, Dies(pool), path, chunk_size=10, tag='r0')
  assert not path.exists()  # never a partial cache under the final name
  seen.clear()
  out = stream.embed_to_npy(_embed, Dies(pool), path, chunk_size=10,
                            tag='r0')
  assert seen[0] == 20  # chunks 0-1 were written before the kill was seen
  np.testing.assert_allclose(out.read(0, 50), np.asarray(_embed(pool)),
                             rtol=1e-6)
  # Another tag (another model) starts afresh.
  seen.clear()
  stream.embed_to_npy(_embed, Dies(pool), path, chunk_size=10, tag='r1')
  assert seen[0] == 0


def test_embed_to_npy_shard_writes_only_its_rows(tmp_path):
  pool = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
  rows = stream.shard_rows(40, 3, 1)
  out = stream.embed_to_npy(_embed, pool, tmp_path / 'e.npy', chunk_size=4,
                            rows=rows)
  got = out.read(0, 40)
  np.testing.assert_allclose(got[rows.start:rows.stop],
                             np.asarray(_embed(pool))[rows.start:rows.stop],
                             rtol=1e-6)
  assert not got[:rows.start].any() and not got[rows.stop:].any()
  with pytest.raises(errors.ConfigError, match=r'\[4, D\] floats'):
    stream.embed_to_npy(lambda x: x.sum(-1), pool, tmp_path / 'f.npy',
                        chunk_size=4)


# ----------------------------------------------- k-center and k-means


class ThreadProcesses:
  """P simulated processes as threads; `gather` exchanges through a barrier
  exactly as the multi-process one does (leading axis in process order)."""

  def __init__(self, num_processes):
    self.num = num_processes
    self.barrier = threading.Barrier(num_processes)
    self.slots = [None] * num_processes

  def gather(self, p):
    def gather(tree):
      self.slots[p] = jax.tree.map(np.asarray, tree)
      self.barrier.wait()
      out = jax.tree.map(lambda *xs: np.stack(xs), *self.slots)
      self.barrier.wait()
      return out
    return gather

  def run(self, fn, n):
    """fn(rows, gather) in every process; returns their results."""
    with concurrent.futures.ThreadPoolExecutor(self.num) as pool:
      futures = [pool.submit(fn, stream.shard_rows(n, self.num, p),
                             self.gather(p)) for p in range(self.num)]
      return [f.result(timeout=120) for f in futures]


def _features_with_duplicates(n, d, num_labeled, seed=0, spread=0.0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(8, d)) * spread
  x = (centres[rng.integers(0, 8, n)] + rng.normal(size=(n, d))).astype(
      np.float32)
  dup = min(40, n // 2)
  x[n // 2:n // 2 + dup] = x[:dup]  # exact duplicates: tied distances
  labeled = np.zeros(n, bool)
  labeled[rng.permutation(n)[:num_labeled]] = True
  return x, labeled


@pytest.mark.parametrize('n,d,num_labeled,chunk', [(1000, 16, 30, 97),
                                                   (600, 130, 0, 64),
                                                   (900, 32, 500, 1000)])
def test_streamed_kcenter_equals_kcenter_select(tmp_path, n, d, num_labeled,
                                                chunk):
  x, labeled = _features_with_duplicates(n, d, num_labeled)
  want = np.asarray(kcenter_select(jnp.asarray(x), jnp.asarray(labeled), 30))
  np.save(tmp_path / 'f.npy', x)
  source = stream.NpySource(tmp_path / 'f.npy')
  got = stream.streamed_kcenter(source, labeled, 30, chunk_size=chunk,
                                subset_chunk=128)
  np.testing.assert_array_equal(got, want)
  # Three processes, each holding only its shard's rows.
  results = ThreadProcesses(3).run(
      lambda rows, gather: stream.streamed_kcenter(
          source, labeled, 30, chunk_size=chunk, rows=rows, gather=gather,
          subset_chunk=128), n)
  for got in results:
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('spread', [0.0, 10.0])
def test_streamed_kmeans_select_matches_kmeans_select(spread):
  """One process: the seeds, centres and picks equal the in-memory ones
  (the chunk sums even round alike). Two processes add their sums in
  another order: centres within 1e-5, picks equal on separated data."""
  n, d, k = 300, 8, 8
  x, labeled = _features_with_duplicates(n, d, 40, seed=1, spread=spread)
  key = jax.random.key(7)
  weights = (~labeled).astype(np.float32)
  want_centres = np.asarray(cluster.kmeans(key, jnp.asarray(x),
                                           jnp.asarray(weights), k, 5))
  want = np.asarray(kmeans_select(key, jnp.asarray(x), jnp.asarray(weights),
                                  k, 5))
  got_centres = stream.streamed_kmeans(key, x, weights, k, num_iters=5,
                                       chunk_size=97)
  np.testing.assert_array_equal(got_centres, want_centres)
  got = stream.streamed_kmeans_select(key, x, labeled, k, num_iters=5,
                                      chunk_size=97)
  np.testing.assert_array_equal(got, want)
  results = ThreadProcesses(2).run(
      lambda rows, gather: (
          stream.streamed_kmeans(key, x, weights, k, num_iters=5,
                                 chunk_size=97, rows=rows, gather=gather),
          stream.streamed_kmeans_select(key, x, labeled, k, num_iters=5,
                                        chunk_size=97, rows=rows,
                                        gather=gather)), n)
  for centres, picks in results:
    np.testing.assert_array_equal(centres, results[0][0])
    np.testing.assert_allclose(centres, want_centres, rtol=1e-5, atol=1e-5)
    if spread:
      np.testing.assert_array_equal(picks, want)


def test_streamed_clustering_errors():
  x, labeled = _features_with_duplicates(50, 4, 45)
  with pytest.raises(errors.ConfigError, match='only 5'):
    stream.streamed_kcenter(x, labeled, 6)
  with pytest.raises(errors.ConfigError, match=r'\[N, D\] floats'):
    stream.streamed_kcenter(x.astype(np.int32), labeled, 2)
  with pytest.raises(errors.ConfigError, match='only 5'):
    stream.streamed_kmeans_select(jax.random.key(0), x, labeled, 6)
  x[3, 1] = np.nan
  with pytest.raises(errors.ConfigError, match='1 rows with NaN'):
    stream.streamed_kcenter(x, labeled, 2)
  with pytest.raises(errors.ConfigError, match='1 rows with NaN'):
    stream.streamed_kmeans_select(jax.random.key(0), x, labeled, 2)
