"""The AL loop: records, determinism, compile-once rounds, crash and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import pytest

from jal import acquisition
from jal import errors
from jal import loop
from jal import rounds
from jal import stopping
from tests import resume

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _records(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return [json.loads(line) for line in f]


def _without_timings(records):
  return [{k: v for k, v in r.items() if not k.endswith('_seconds')}
          for r in records]


def test_run_writes_records_and_summary(tiny_config, tmp_path):
  summary = loop.run(tiny_config, str(tmp_path))
  records = _records(tmp_path)
  assert [r['round'] for r in records] == [0, 1, 2, 3]
  assert [r['num_labeled'] for r in records] == [20, 30, 40, 50]
  assert [len(r['selected']) for r in records] == [10, 10, 10, 0]
  chosen = sum((r['selected'] for r in records), [])
  assert len(set(chosen)) == 30
  with open(tmp_path / loop.SUMMARY) as f:
    saved = json.load(f)
  assert saved['aubc'] == pytest.approx(summary['aubc'])
  assert saved['final_accuracy'] == records[-1]['test_accuracy']
  assert saved['config']['strategy'] == 'entropy'
  assert 0.3 < summary['final_accuracy'] <= 1.0


def test_same_seed_same_selections_other_seed_differs(tiny_config, tmp_path):
  loop.run(tiny_config, str(tmp_path / 'a'))
  loop.run(tiny_config, str(tmp_path / 'b'))
  tiny_config.seed = 1
  loop.run(tiny_config, str(tmp_path / 'c'))
  a, b, c = (_without_timings(_records(tmp_path / d)) for d in 'abc')
  assert a == b
  assert a[0]['selected'] != c[0]['selected']


def _setup(config, dataset):
  exp, data = loop.setup(config, dataset)
  oracle = lambda idx: dataset.pool_labels[idx]
  return exp, data, loop.init_state(exp, data, oracle), oracle


@pytest.mark.parametrize('train_loop', ['python', 'jit'])
def test_rounds_compile_once(tiny_config, blobs, train_loop):
  tiny_config.strategy = 'var_ratio'  # exercises MC-dropout predictions too
  tiny_config.train_loop = train_loop
  exp, data, state, oracle = _setup(tiny_config, blobs)
  fns = loop.RoundFns(exp)
  for _ in range(tiny_config.num_rounds + 1):
    state, _ = loop.step(fns, data, state, oracle)
  jitted = [fns.test_metrics, fns.diagnostics, fns.query, fns.reveal]
  jitted.append(fns.train if train_loop == 'jit' else
                exp.trainer._jit_step)  # pylint: disable=protected-access
  assert [fn._cache_size() for fn in jitted] == [1, 1, 1, 1, 1]  # pylint: disable=protected-access
  assert int(state.labeled_mask.sum()) == 50


def test_resume_after_crash_equals_uninterrupted_run(tiny_config, tmp_path):
  loop.run(tiny_config, str(tmp_path / 'whole'))

  def crash_after_round_1(record):
    if record['round'] == 1:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    loop.run(tiny_config, str(tmp_path / 'resumed'),
             on_round=crash_after_round_1)
  assert len(_records(tmp_path / 'resumed')) == 2
  seen = []
  loop.run(tiny_config, str(tmp_path / 'resumed'), on_round=seen.append)
  assert [r['round'] for r in seen] == [2, 3]
  assert (_without_timings(_records(tmp_path / 'resumed')) ==
          _without_timings(_records(tmp_path / 'whole')))


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
  flags = ['--config.num_epochs=3', '--config.initial_size=20',
           '--config.query_size=10', '--config.num_rounds=6']
  command = [sys.executable, os.path.join(REPO, 'experiments', 'run.py'),
             f'--config={os.path.join(REPO, "configs", "default.py")}', *flags]
  subprocess.run([*command, f'--workdir={tmp_path / "whole"}'], check=True,
                 capture_output=True)
  killed = tmp_path / 'killed'
  process = subprocess.Popen([*command, f'--workdir={killed}'],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while time.time() < deadline:
    if (killed / loop.RESULTS).exists() and len(_records(killed)) >= 2:
      break
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert 2 <= len(_records(killed)) < 7, 'the kill came too late to test'
  subprocess.run([*command, f'--workdir={killed}'], check=True,
                 capture_output=True)
  assert (_without_timings(_records(killed)) ==
          _without_timings(_records(tmp_path / 'whole')))


def test_workdir_of_another_config_is_refused(tiny_config, tmp_path):
  loop.run(tiny_config, str(tmp_path))
  tiny_config.strategy = 'margin'
  with pytest.raises(errors.CheckpointError, match='different config'):
    loop.run(tiny_config, str(tmp_path))


def test_warm_start_carries_the_model(tiny_config, blobs):
  tiny_config.warm_start = True
  exp, data, state, oracle = _setup(tiny_config, blobs)
  fns = loop.RoundFns(exp)
  first, _ = loop.step(fns, data, state, oracle)
  second, _ = loop.step(fns, data, first, oracle)
  assert jax.tree.leaves(first.variables)
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(first.variables)])
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(second.variables)])
  assert not np.array_equal(a, b)


@pytest.mark.parametrize('field, value, message', [
    ('initial_size', 0, 'config.initial_size must be a positive integer'),
    ('query_size', -5, 'config.query_size must be a positive integer'),
    ('num_epochs', 0, 'config.num_epochs'),
    ('batch_size', 0, 'config.batch_size'),
    ('num_rounds', -1, 'config.num_rounds must be an integer >= 0'),
    ('num_rounds', 1000, 'exceeds the pool of 1297'),
    ('dropout_rate', 1.0, 'config.dropout_rate must lie in'),
    ('learning_rate', 0.0, 'config.learning_rate'),
    ('train_loop', 'fast', 'config.train_loop'),
    ('model', 'vgg', 'unknown model .vgg.. Valid names: mlp'),
    ('strategy', 'oracle', 'Unknown strategy .oracle.. Valid names:'),
    ('dataset', 'imagenet21k', 'imagenet21k'),
    ('posterior', 'swag', 'config.posterior must be one of bn_train'),
])
def test_bad_config_fails_before_any_work(tiny_config, tmp_path, field, value,
                                          message):
  tiny_config[field] = value
  with pytest.raises(errors.JalError, match=message):
    loop.run(tiny_config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w' / loop.RESULTS)


@pytest.mark.parametrize('strategy, name, value, message', [
    ('entropy', 'beta', 2.0, "has beta, which strategy 'entropy' does not"),
    ('power_bald', 'beta', 'two', 'power_bald.beta must be of the type'),
    ('batchbald', 'num_samples', 1.5, 'batchbald.num_samples must be'),
])
def test_bad_hyperparameter_fails_before_any_work(tiny_config, tmp_path,
                                                  strategy, name, value,
                                                  message):
  tiny_config.strategy = strategy
  # A whole sub-dict, as a config file or JSON may give it (assigning one
  # field of a mistyped value is refused by ml_collections itself).
  tiny_config.hparams[strategy] = ml_collections.ConfigDict({name: value})
  with pytest.raises(errors.ConfigError, match=message):
    loop.run(tiny_config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')


def test_hyperparameter_is_settable_from_the_command_line(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'experiments', 'run.py'),
       f'--config={os.path.join(REPO, "configs", "default.py")}',
       '--config.strategy=power_entropy', '--config.hparams.power_entropy.beta=3',
       '--config.num_epochs=1', '--config.num_rounds=1',
       f'--workdir={tmp_path}'], capture_output=True, text=True, check=True)
  with open(tmp_path / loop.CONFIG) as f:
    assert json.load(f)['hparams']['power_entropy']['beta'] == 3.0
  assert 'AUBC' in result.stdout


def test_nan_in_data_is_refused(tiny_config, blobs):
  blobs.pool_images[3, 0, 0, 0] = np.nan
  with pytest.raises(errors.ConfigError, match='NaN'):
    loop.setup(tiny_config, blobs)


def _counting_strategy():
  """State = how often each point was a candidate; picks the least counted."""

  def init(key, inputs, labeled_mask):
    del key, inputs
    return jnp.cumsum(labeled_mask, dtype=jnp.int32)

  def select(key, inputs, labeled_mask, counts, query_size):
    del key, inputs
    picked = acquisition.top_k_unlabeled(-counts.astype(jnp.float32),
                                         labeled_mask, query_size)
    return picked, counts + (~labeled_mask).astype(jnp.int32)

  return acquisition.Strategy('counting', (), select, init=init)


def test_strategy_state_starts_at_the_first_query_and_is_carried(tiny_config,
                                                                 blobs):
  exp, data = loop.setup(tiny_config, blobs, strategy=_counting_strategy())
  oracle = lambda idx: blobs.pool_labels[idx]
  state = loop.init_state(exp, data, oracle)
  initial = np.asarray(state.labeled_mask)
  expected = np.cumsum(initial)
  fns = loop.RoundFns(exp)
  for _ in range(tiny_config.num_rounds + 1):
    mask = np.asarray(state.labeled_mask)
    state, _ = loop.step(fns, data, state, oracle)
    if int(state.round) <= tiny_config.num_rounds:
      expected = expected + ~mask
  np.testing.assert_array_equal(state.strategy_state, expected)


@pytest.mark.parametrize('strategy', ['counting', 'cluster_margin'])
def test_stateful_strategy_resumes_exactly(tiny_config, tmp_path, strategy):
  kwargs = {}
  if strategy == 'counting':
    kwargs['strategy'] = _counting_strategy()
  else:
    tiny_config.strategy = strategy
    tiny_config.hparams.cluster_margin.num_clusters = 5
    tiny_config.hparams.cluster_margin.hac_sample = 100
  loop.run(tiny_config, str(tmp_path / 'whole'), **kwargs)

  resume.run_interrupted(tiny_config, str(tmp_path / 'resumed'), **kwargs)
  assert (_without_timings(_records(tmp_path / 'resumed')) ==
          _without_timings(_records(tmp_path / 'whole')))


def test_strategy_needing_an_unknown_prediction_is_refused(tiny_config, blobs,
                                                          monkeypatch):
  registry = dict(acquisition.REGISTRY)
  registry['entropy'] = registry['entropy']._replace(needs=('logprobs',))
  monkeypatch.setattr(acquisition, 'REGISTRY', registry)
  with pytest.raises(errors.ConfigError, match="needs \\['logprobs'\\]"):
    loop.setup(tiny_config, blobs)


def test_records_carry_diagnostics_costs_and_stopping_and_resume_exactly(
    tiny_config, tmp_path):
  tiny_config.oracle_noise = 0.3
  tiny_config.validation_size = 100
  costs = np.arange(10, dtype=np.float64) + 1  # class c costs c + 1
  tiny_config.label_costs = costs.tolist()
  tiny_config.stopping.stop_set_size = 500
  tiny_config.stopping.kappa = 0.0  # fires as soon as a window has kappas
  tiny_config.stopping.kappa_window = 2
  summary = loop.run(tiny_config, str(tmp_path / 'whole'))
  records = _records(tmp_path / 'whole')
  dataset = loop.load_dataset(tiny_config)
  truth = dataset.pool_labels
  oracle = loop.simulated_oracle(tiny_config, truth, 10)
  labels_so_far = 0.0
  for record in records:
    selected = np.asarray(record['selected'], np.int64)
    answers = oracle(selected)
    assert record['queried_class_counts'] == np.bincount(
        answers, minlength=10).tolist()
    assert record['num_label_errors'] == np.sum(answers != truth[selected])
    # Per-class costs are charged for the class answered.
    assert record['label_cost'] == pytest.approx(costs[answers].sum())
    if record['round']:
      assert record['cumulative_label_cost'] == pytest.approx(labels_so_far)
    labels_so_far = record['cumulative_label_cost'] + record['label_cost']
    assert 0.0 <= record['test_ece'] <= 1.0
    assert 0.0 <= record['validation_accuracy'] <= 1.0
    assert len(record['stop_set_predictions']) == 500
    assert (record['stop_set_kappa'] is None) == (record['round'] == 0)
  assert sum(r['num_label_errors'] for r in records) > 0  # ε = 0.3, 30 asked
  assert [r['stopped_by'] for r in records] == [
      [], [], ['stabilizing_predictions'],
      ['budget', 'max_rounds', 'stabilizing_predictions']]
  assert summary['stopping'] == dict(
      budget=3, max_rounds=3, target_accuracy=None,
      plateau=stopping.plateau(records, 0.005, 3),
      stabilizing_predictions=2)
  kappa = stopping.cohen_kappa(records[0]['stop_set_predictions'],
                               records[1]['stop_set_predictions'], 10)
  assert records[1]['stop_set_kappa'] == pytest.approx(kappa)

  resume.run_interrupted(tiny_config, str(tmp_path / 'resumed'))
  assert (_without_timings(_records(tmp_path / 'resumed')) ==
          _without_timings(records))


def test_validation_examples_are_held_out_of_the_test_set(tiny_config):
  dataset = loop.load_dataset(tiny_config)
  tiny_config.validation_size = 50
  _, data = loop.setup(tiny_config, dataset)
  num_test = dataset.test_labels.shape[0]
  assert data.test_labels.shape == (num_test - 50,)
  assert data.validation_labels.shape == (50,)
  held = np.asarray(rounds.validation_indices(num_test, 50))
  np.testing.assert_array_equal(data.validation_labels,
                                dataset.test_labels[held])
  tiny_config.validation_size = num_test
  with pytest.raises(errors.ConfigError, match='leaves no test example'):
    loop.setup(tiny_config, dataset)


def test_own_oracle_with_simulated_noise_is_refused(tiny_config, tmp_path):
  tiny_config.oracle_noise = 0.1
  with pytest.raises(errors.ConfigError, match='with your own oracle'):
    loop.run(tiny_config, str(tmp_path), oracle=lambda idx: idx * 0)
