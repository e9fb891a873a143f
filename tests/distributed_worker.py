"""One process of the multi-process tests (started by experiments/launch.py).

  python tests/distributed_worker.py smoke OUT.json
  python tests/distributed_worker.py select OUT.json [STRATEGY ...]
  python tests/distributed_worker.py run WORKDIR STRATEGY [KILL_AFTER_ROUND]

`smoke` exercises the collectives; `select` writes the sharded selection of
every tested strategy with an untrained model (`first_round`); `run` runs an
experiment (`make_config`: the first 301 digits) with `jal.distributed_loop`,
and with KILL_AFTER_ROUND process 1 kills itself (SIGKILL) once that round is
saved. Process 0 writes OUT.json.
The config and dataset builders, and `launch` / `run_worker` (the launcher
run from a test), are shared by tests/test_distributed.py,
tests/test_sharded.py and tests/test_distributed_loop.py.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np

from jal import config as config_lib
from jal import data as data_lib
from jal import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LAUNCH = os.path.join(ROOT, 'experiments', 'launch.py')
_WORKER = os.path.abspath(__file__)

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
      [sys.executable, _LAUNCH, f'--num_processes={num_processes}', '--',
       *args], env=env, capture_output=True, text=True, timeout=timeout,
      cwd=ROOT, check=False)


def run_worker(*args, **kwargs):
  return launch(sys.executable, _WORKER, *args, **kwargs)


STRATEGIES = ('entropy', 'bald', 'kcenter', 'badge')
# and with config.pool_subsample, or eval_chunk above a shard's rows
# (`first_round`)
VARIANTS = ('entropy+subsample', 'bald+subsample', 'badge+wide')


def make_dataset() -> data_lib.Dataset:
  """Blobs with 301 pool rows (shards of 151 and 150), rows 280–300
  copying rows 0–20 so that scores tie across the two shards."""
  from tests import synthetic  # pylint: disable=g-import-not-at-top
  base = synthetic.make_blobs_dataset(num_pool=280, num_test=60, seed=3)
  images = np.concatenate([base.pool_images, base.pool_images[:21]])
  labels = np.concatenate([base.pool_labels, base.pool_labels[:21]])
  return data_lib.Dataset(images, labels, base.test_images, base.test_labels,
                          base.num_classes, 'blobs_dup')


# The experiment of the tests, as fields of the default config; the `run`
# mode loads its data from the config: the first 301 digits.
SETTINGS = dict(num_epochs=3, initial_size=20, query_size=10, num_rounds=3,
                eval_chunk=64, posterior_samples=4, pool_size=301)


def make_config(strategy: str = 'entropy'):
  config = config_lib.default()
  config.strategy = strategy
  for name, value in SETTINGS.items():
    setattr(config, name, value)
  config.stopping.stop_set_size = 50
  return config


def run_flags(strategy: str) -> list[str]:
  """`experiments/run.py` flags giving `make_config(strategy)`."""
  return ([f'--config.strategy={strategy}'] +
          [f'--config.{name}={value}' for name, value in SETTINGS.items()] +
          ['--config.stopping.stop_set_size=50'])


def _write(path: str, value) -> None:
  if distributed.is_writer():
    with open(path, 'w') as f:
      json.dump(value, f)


def smoke(out: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  index = jax.process_index()
  gathered = distributed.gather({'id': np.int32(index),
                                 'flags': np.asarray([True, index == 1])})
  sent = distributed.broadcast({'x': np.asarray([-0.0, 1.5 + index],
                                                np.float32),
                                'key': jax.random.key(7 + index)})
  records = distributed.broadcast_json([{'round': 0, 'from': index}])
  refused = None
  try:
    distributed.check_replicated(np.arange(3) + index, 'a shifted range')
  except distributed.ReplicationError as e:
    refused = str(e)
  distributed.check_replicated(np.arange(3), 'a range')
  rows = distributed.process_rows(301)
  all_rows = distributed.gather(np.asarray(rows, np.int32))
  # Every score ties: the lowest unlabeled indices win, across the shards.
  from jal import stream  # pylint: disable=g-import-not-at-top
  labeled = np.zeros(301, bool)
  labeled[[0, 5, 150, 151]] = True
  _, tied = stream.streamed_top_k(
      lambda x: x[:, 0] * 0.0, np.zeros((301, 2), np.float32), labeled, 160,
      chunk_size=64, rows=rows, gather=distributed.gather)
  _write(out, dict(
      count=distributed.num_processes(), ids=gathered['id'].tolist(),
      flags=gathered['flags'].tolist(),
      x_bits=np.asarray(sent['x']).view(np.uint32).tolist(),
      key=np.asarray(jax.random.key_data(sent['key'])).tolist(),
      records=records, refused=refused, rows=all_rows.tolist(),
      tied=np.asarray(tied).tolist()))


def first_round(strategies, dataset):
  """Round 0 of `make_config`'s experiment on `dataset` with a freshly
  initialised model (the same in every process and for every strategy):
  each strategy's experiment, the data, the state and the model."""
  import jax  # pylint: disable=g-import-not-at-top
  from jal import loop  # pylint: disable=g-import-not-at-top
  from jal import rounds  # pylint: disable=g-import-not-at-top
  exp, data = loop.setup(make_config(), dataset)
  state = loop.reveal_initial(loop.init_state(exp, data, None),
                              loop.simulated_oracle(
                                  exp.config, dataset.pool_labels,
                                  dataset.num_classes))
  model = rounds.untrained(exp, data, jax.random.key(1))
  experiments = {}
  for name in strategies:
    config = make_config(name.split('+')[0])
    if name.endswith('+subsample'):
      config.pool_subsample = 100  # scores a random 100 unlabeled points
    if name.endswith('+wide'):
      config.eval_chunk = 256  # chunks wider than a shard (151 rows)
    experiments[name] = loop.setup(config, dataset)[0]
  return experiments, data, state, model


def select(out: str, *strategies: str) -> None:
  from jal import sharded  # pylint: disable=g-import-not-at-top
  experiments, data, state, trained = first_round(
      strategies or STRATEGIES + VARIANTS, make_dataset())
  distributed.check_replicated(trained.variables, 'the model')
  _write(out, {s: np.asarray(sharded.query_round(
      exp, data, trained, state)[0]).tolist()
               for s, exp in experiments.items()})


def run(workdir: str, strategy: str, kill_after: int | None) -> None:
  from jal import distributed_loop  # pylint: disable=g-import-not-at-top

  def on_round(record):
    if (kill_after is not None and record['round'] == kill_after and
        distributed.process_index() == 1):
      os.kill(os.getpid(), signal.SIGKILL)

  distributed_loop.run(make_config(strategy), workdir, on_round=on_round)


def main(argv):
  distributed.initialize()
  mode, *args = argv[1:]
  if mode == 'smoke':
    smoke(*args)
  elif mode == 'select':
    select(*args)
  elif mode == 'run':
    run(args[0], args[1], int(args[2]) if len(args) > 2 else None)
  else:
    sys.exit(f'unknown mode {mode!r}')


if __name__ == '__main__':
  main(sys.argv)
