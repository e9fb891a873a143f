"""Multi-process jal: `jal.distributed`, `jal.sharded`, `jal.distributed_loop`
and `experiments/launch.py`, with two processes on 127.0.0.1 (gloo).

The two-process runs go through the launcher with `tests/distributed_worker.py`;
their results are compared with the same work done in this (one) process.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import distributed
from jal import distributed_loop
from jal import errors
from jal import loop
from jal import rounds
from jal import sharded
from tests import distributed_worker as worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'experiments', 'launch.py')
WORKER = os.path.join(ROOT, 'tests', 'distributed_worker.py')


def launch(*args, num_processes=2, timeout=240):
  """Runs the launcher with `args` after `--`; returns the CompletedProcess."""
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
             os.environ.get('PYTHONPATH', ''))
  for name in distributed.ENV_VARS:
    env.pop(name, None)
  cache = os.environ.get('JAL_TEST_COMPILATION_CACHE')  # tests/conftest.py
  if cache:  # the workers share the session's compilation cache
    env.update(JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.run(
      [sys.executable, LAUNCH, f'--num_processes={num_processes}', '--',
       *args], env=env, capture_output=True, text=True, timeout=timeout,
      cwd=ROOT, check=False)


def run_worker(*args, **kwargs):
  return launch(sys.executable, WORKER, *args, **kwargs)


@pytest.fixture
def no_env(monkeypatch):
  for name in distributed.ENV_VARS:
    monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------ initialize


def test_one_process_without_settings(no_env):
  distributed.initialize()  # a no-op
  assert distributed.num_processes() == 1 and distributed.is_writer()
  tree = {'a': np.arange(3), 'b': np.float32(2)}
  gathered = distributed.gather(tree)
  assert gathered['a'].shape == (1, 3) and gathered['b'].shape == (1,)
  assert distributed.broadcast(tree) is tree
  distributed.check_replicated(tree, 'a tree')
  distributed.barrier('nothing')


@pytest.mark.parametrize('settings, message', [
    (dict(coordinator_address='localhost', num_processes=2, process_id=0),
     'not host:port'),
    (dict(coordinator_address='127.0.0.1:70000', num_processes=2,
          process_id=0), 'not host:port'),
    (dict(coordinator_address='127.0.0.1:1234', num_processes=2,
          process_id=2), r'outside \[0, 2\)'),
    (dict(coordinator_address='127.0.0.1:1234', num_processes='two',
          process_id=0), 'non-negative integer'),
    (dict(coordinator_address='127.0.0.1:1234', num_processes=0,
          process_id=0), 'at least one process'),
    (dict(coordinator_address='127.0.0.1:1234'),
     'JAL_NUM_PROCESSES, JAL_PROCESS_ID are not set'),
])
def test_initialize_refuses_bad_settings(no_env, settings, message):
  with pytest.raises(errors.ConfigError, match=message):
    distributed.initialize(**settings)


def test_initialize_reads_the_environment(no_env, monkeypatch):
  monkeypatch.setenv(distributed.COORDINATOR_ENV, '127.0.0.1:1234')
  monkeypatch.setenv(distributed.NUM_PROCESSES_ENV, '2')
  monkeypatch.setenv(distributed.PROCESS_ID_ENV, '5')
  assert distributed.requested()
  with pytest.raises(errors.ConfigError, match='JAL_PROCESS_ID = 5'):
    distributed.initialize()


def test_initialize_without_a_coordinator(no_env):
  address = f'127.0.0.1:{distributed.free_port()}'
  with pytest.raises(errors.ConfigError, match='could not reach the '
                     'coordinator at ' + address + ' within 1 s'):
    distributed.initialize(address, 2, 1, timeout_seconds=1)


def test_initialize_on_a_busy_port(no_env):
  with socket.socket() as busy:
    busy.bind(('127.0.0.1', 0))
    busy.listen()
    port = busy.getsockname()[1]
    with pytest.raises(errors.ConfigError, match=f'cannot listen on port '
                       f'{port}'):
      distributed.initialize(f'127.0.0.1:{port}', 2, 0)


def test_initialize_after_jax_work_is_refused(no_env):
  jax.numpy.zeros(1).block_until_ready()  # JAX has started in this process
  collectives = jax.config.jax_cpu_collectives_implementation
  try:
    with pytest.raises(errors.ConfigError, match='first, before any other'):
      distributed.initialize(f'127.0.0.1:{distributed.free_port()}', 2, 0)
  finally:
    jax.config.update('jax_cpu_collectives_implementation', collectives)


def test_processes_that_disagree_on_their_number_stop(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, JAL_COORDINATOR_ADDRESS=(
      f'127.0.0.1:{distributed.free_port()}'))
  procs = [subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'experiments', 'run.py'),
       f'--workdir={tmp_path / "run"}'],
      env=dict(env, JAL_NUM_PROCESSES=count, JAL_PROCESS_ID=index),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
           for count, index in (('2', '0'), ('3', '1'))]
  for proc in procs:
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith(
        'error: The processes disagree on the run'), stderr
  assert not (tmp_path / 'run').exists()


def test_unsupported_strategies_are_refused():
  from jal import acquisition  # pylint: disable=g-import-not-at-top
  for name in ('entropy', 'bald', 'margin', 'kcenter', 'badge'):
    sharded.check_supported(acquisition.get(name))
  with pytest.raises(errors.ConfigError, match='batchbald'):
    sharded.check_supported(acquisition.get('batchbald'))


@pytest.mark.parametrize('field, value, message', [
    ('strategy', 'batchbald', 'no per-point score'),
    ('posterior', 'laplace', 'cannot be streamed'),
    ('hparams.kcenter.pca_dim', 2, 'pca_dim'),
])
def test_distributed_loop_refuses_before_any_work(tmp_path, field, value,
                                                  message):
  config = worker.make_config('kcenter' if 'kcenter' in field else 'bald')
  if field == 'hparams.kcenter.pca_dim':
    config.hparams.kcenter.pca_dim = value
  else:
    setattr(config, field, value)
  with pytest.raises(errors.ConfigError, match=message):
    distributed_loop.run(config, str(tmp_path / 'run'),
                         worker.make_dataset())
  assert not (tmp_path / 'run').exists()


def test_badge_one_shard_matches_in_memory():
  """The sharded BADGE loop on one process's full pool is `badge_select`."""
  from jal import stream  # pylint: disable=g-import-not-at-top
  from jal.acquisition import badge  # pylint: disable=g-import-not-at-top
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


# ------------------------------------------------------------ two processes


def test_launcher_two_processes_collectives(tmp_path):
  out = tmp_path / 'smoke.json'
  result = run_worker('smoke', str(out))
  assert result.returncode == 0, result.stdout + result.stderr
  assert '[0] ' in result.stdout and '[1] ' in result.stdout
  got = json.loads(out.read_text())
  assert got['count'] == 2 and got['ids'] == [0, 1]
  assert got['flags'] == [[True, False], [True, True]]
  # process 0's values, bit for bit (-0.0 stays -0.0)
  assert got['x_bits'] == np.asarray([-0.0, 1.5], np.float32).view(
      np.uint32).tolist()
  assert got['key'] == [0, 7]
  assert got['records'] == [{'round': 0, 'from': 0}]
  assert 'differs between processes' in got['refused']
  assert got['rows'] == [[0, 151], [151, 301]]
  unlabeled = [i for i in range(301) if i not in (0, 5, 150, 151)]
  assert got['tied'] == unlabeled[:160]


def test_launcher_stops_the_others_when_one_fails():
  code = ('import os, sys, time\n'
          'if os.environ["JAL_PROCESS_ID"] == "1": sys.exit(3)\n'
          'time.sleep(120)\n')
  result = launch(sys.executable, '-c', code, timeout=60)
  assert result.returncode == 3
  assert 'process 1 exited with status 3' in result.stderr


def test_launcher_without_command():
  result = launch(timeout=60)
  assert result.returncode == 1 and 'no command' in result.stderr


def test_two_processes_select_what_one_selects(tmp_path):
  """entropy, bald, kcenter and badge on a pool whose rows 280–300 copy rows
  0–20 (ties across the shards [0, 151) and [151, 301)); entropy and bald
  also scoring a random subsample (config.pool_subsample)."""
  out = tmp_path / 'selected.json'
  names = worker.STRATEGIES + worker.SUBSAMPLED
  result = run_worker('select', str(out), *names)
  assert result.returncode == 0, result.stdout + result.stderr
  got = json.loads(out.read_text())
  experiments, data, state, trained = worker.first_round(
      names, worker.make_dataset())
  for strategy, exp in experiments.items():
    expected, _ = rounds.query_round(exp, data, trained, state)
    assert got[strategy] == np.asarray(expected).tolist(), strategy


def _without_timings(records):
  return [{k: v for k, v in r.items() if not k.endswith('_seconds')}
          for r in records]


def test_killed_two_process_run_resumes(tmp_path):
  """Process 1 dies after round 1; the launcher stops process 0; the run
  started again (by experiments/run.py) ends as the one-process run does."""
  workdir = str(tmp_path / 'two')
  killed = run_worker('run', workdir, 'entropy', '1')
  assert killed.returncode != 0
  assert 'process 1 was killed by signal 9' in killed.stderr, (
      killed.stdout + killed.stderr)
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    assert len(f.readlines()) == 2  # rounds 0 and 1 were saved
  resumed = launch(sys.executable, os.path.join(ROOT, 'experiments', 'run.py'),
                   *worker.run_flags('entropy'), f'--workdir={workdir}')
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  assert '[0] round   3' in resumed.stdout and '[1] round' not in (
      resumed.stdout)
  reference = str(tmp_path / 'one')
  one_summary = loop.run(worker.make_config('entropy'), reference)
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    two = [json.loads(line) for line in f]
  with open(os.path.join(reference, 'results.jsonl')) as f:
    one = [json.loads(line) for line in f]
  assert _without_timings(two) == _without_timings(one)
  with open(os.path.join(workdir, 'summary.json')) as f:
    two_summary = json.load(f)
  assert two_summary['aubc'] == one_summary['aubc']
  assert sorted(os.listdir(workdir)) == sorted(os.listdir(reference))


def test_distributed_loop_in_one_process(tmp_path):
  """Without JAL_* settings the distributed loop is `loop.run`'s experiment."""
  config = worker.make_config('entropy')
  config.num_rounds = 1
  dataset = worker.make_dataset()
  summary = distributed_loop.run(config, str(tmp_path / 'a'), dataset)
  reference = loop.run(config, str(tmp_path / 'b'), dataset)
  assert summary['test_accuracy'] == reference['test_accuracy']
  with open(tmp_path / 'a' / 'results.jsonl') as f:
    a = [json.loads(line)['selected'] for line in f]
  with open(tmp_path / 'b' / 'results.jsonl') as f:
    b = [json.loads(line)['selected'] for line in f]
  assert a == b
