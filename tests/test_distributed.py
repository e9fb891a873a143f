"""`jal.distributed` and `experiments/launch.py`: settings and their errors,
and the collectives of two processes on 127.0.0.1 (gloo) started by the
launcher with `tests/distributed_worker.py`.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jal import distributed
from jal import errors
from tests import distributed_worker as worker

ROOT = worker.ROOT
launch = worker.launch
run_worker = worker.run_worker


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
