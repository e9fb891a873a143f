"""Times one AL round's pieces under DeepAL's MNIST protocol.

Prints the seconds for one training run (10000 labeled, 10 epochs of the
DeepAL CNN, batch 64) and, per strategy, for one query of 1000 from the 30000
unlabeled images of the 40000-image pool (predictions plus selection). Query
figures are the median and best of --repeats runs after one that compiles.

  JAL_DATA_DIR=../shared/datasets python experiments/bench_round.py
"""

import statistics
import time

import jax
import ml_collections
from absl import app
from absl import flags
from ml_collections import config_flags

from jal import acquisition
from jal import loop
from jal import oracle as oracles
from jal import rounds

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/mnist_deepal.py', 'Experiment config.')
_STRATEGIES = flags.DEFINE_list(
    'strategies', None, 'Strategies to time (default: all registered but '
    'those in --skip).')
# BatchBALD's greedy steps scale with the query size: 1000 sampled steps over
# 30000 candidates take hours; experiments/bench_acquisition.py times it.
_SKIP = flags.DEFINE_list('skip', ['batchbald'],
                          'Registered strategies left out by default.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed repetitions per query.')


def _timed(fn):
  start = time.perf_counter()
  result = jax.block_until_ready(fn())
  return time.perf_counter() - start, result


def main(argv):
  del argv
  config = _CONFIG.value
  print(f'backend {jax.default_backend()}, {jax.device_count()} device(s), '
        f'jax {jax.__version__}')
  dataset = loop.load_dataset(config)
  exp, data = loop.setup(config, dataset)
  state = loop.init_state(exp, data, oracles.simulated(dataset.pool_labels))
  fns = loop.RoundFns(exp)

  compile_seconds, _ = _timed(lambda: fns.train(data, state))
  seconds, trained = _timed(lambda: fns.train(data, state))
  accuracy = float(fns.test(data, trained))
  loop_mode = 'in-jit' if exp.trainer.in_jit_loop else 'python'
  print(f'train: {int(state.labeled_mask.sum())} labeled, '
        f'{config.num_epochs} epochs, batch {config.batch_size}, {loop_mode} '
        f'loop: {seconds:.2f} s (first run with compilation '
        f'{compile_seconds:.2f} s; test accuracy {accuracy:.4f})')

  unlabeled = int((~state.labeled_mask).sum())
  print(f'query {config.query_size} of {unlabeled} unlabeled, seconds '
        f'(median, best of {_REPEATS.value}):')
  for name in _STRATEGIES.value or [n for n in acquisition.names()
                                    if n not in _SKIP.value]:
    strategy_config = ml_collections.ConfigDict(config.to_dict())
    strategy_config.strategy = name
    strategy_exp, _ = loop.setup(strategy_config, dataset)
    strategy_state = state._replace(strategy_state=rounds.initial_strategy_state(
        strategy_exp, data, state))
    query = loop.RoundFns(strategy_exp).query
    first, _ = _timed(lambda: query(data, trained, strategy_state))
    times = [_timed(lambda: query(data, trained, strategy_state))[0]
             for _ in range(_REPEATS.value)]
    print(f'  {name:26s} {statistics.median(times):7.3f}  {min(times):7.3f}'
          f'   (first call {first:.2f})', flush=True)


if __name__ == '__main__':
  app.run(main)
