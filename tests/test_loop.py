"""The AL loop: records, determinism, compile-once rounds, crash and resume."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import errors
from jal import loop

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


def test_rounds_compile_once(tiny_config, blobs):
  tiny_config.strategy = 'var_ratio'  # exercises MC-dropout predictions too
  exp = loop.build(tiny_config, blobs)
  state = loop.init_state(exp)
  for _ in range(tiny_config.num_rounds + 1):
    state, _ = loop.round_step(exp, state)
  assert exp.trainer.step._cache_size() == 1
  assert exp.trainer.predict._cache_size() == 1
  assert exp.select._cache_size() == 1
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
  exp = loop.build(tiny_config, blobs)
  state = loop.init_state(exp)
  first, _ = loop.round_step(exp, state)
  second, _ = loop.round_step(exp, first)
  assert first.variables is not None
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
    ('strategy_kwargs', {'beta': 2.0},
     "has beta, which strategy 'entropy' does not take"),
])
def test_bad_config_fails_before_any_work(tiny_config, tmp_path, field, value,
                                          message):
  tiny_config[field] = value
  with pytest.raises(errors.JalError, match=message):
    loop.run(tiny_config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w' / loop.RESULTS)


def test_nan_in_data_is_refused(tiny_config, blobs):
  blobs.pool_images[3, 0, 0, 0] = np.nan
  with pytest.raises(errors.ConfigError, match='NaN'):
    loop.build(tiny_config, blobs)


def test_prepare_runs_at_the_first_query_and_its_state_is_kept(tiny_config,
                                                              blobs):
  def prepare(key, inputs, labeled_mask):
    del key, inputs
    return jnp.cumsum(labeled_mask, dtype=jnp.int32)

  def select(key, inputs, labeled_mask, query_size):
    del key
    return acquisition.top_k_unlabeled(
        inputs['pool_state'].astype(jnp.float32), labeled_mask, query_size)

  strategy = acquisition.Strategy('prepared', (), select, prepare)
  exp = loop.build(tiny_config, blobs)
  compiled_select, compiled_prepare = loop.jitted_select(strategy, {})
  exp = dataclasses.replace(exp, strategy=strategy, select=compiled_select,
                            prepare=compiled_prepare)
  state = loop.init_state(exp)
  expected = np.cumsum(np.asarray(state.labeled_mask))
  for _ in range(tiny_config.num_rounds + 1):
    state, record = loop.round_step(exp, state)
  np.testing.assert_array_equal(state.pool_state, expected)
  assert compiled_prepare._cache_size() == 1


def test_strategy_needing_an_unknown_prediction_is_refused(tiny_config, blobs,
                                                          monkeypatch):
  registry = dict(acquisition.REGISTRY)
  registry['entropy'] = registry['entropy']._replace(needs=('logprobs',))
  monkeypatch.setattr(acquisition, 'REGISTRY', registry)
  with pytest.raises(errors.ConfigError, match="needs \\['logprobs'\\]"):
    loop.build(tiny_config, blobs)
