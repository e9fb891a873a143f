"""Times S seeds of one digits experiment: vmapped (one program) vs one by one.

  python experiments/bench_trials.py --strategies=entropy,random --seeds=3,5

For each strategy and seed count, runs the seeds (a) one by one with
`loop.run` and `train_loop='jit'` (the runs the vmapped ones equal), (b) one by
one with `train_loop='python'` (the CPU default), and (c) as one vmapped
program with `jal.trials.run`; prints wall time end to end (compilation
included) and the summed per-round times of rounds 1… (compiled, steady
state), and checks that (a) and (c) selected the same points every round
(as sets: the order within a round follows scores that batched matmuls may
round differently in the last bit). The persistent compilation cache is off,
so every run pays its own compilation, as a fresh process would.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags

from jal import config as config_lib
from jal import loop
from jal import trials

_STRATEGIES = flags.DEFINE_list('strategies', ['entropy', 'random'],
                                'Strategies to time.')
_SEEDS = flags.DEFINE_list('seeds', ['3', '5'], 'Seed counts S.')
_EPOCHS = flags.DEFINE_integer('num_epochs', 10, 'Training epochs per round.')
_ROUNDS = flags.DEFINE_integer('num_rounds', 8, 'Query rounds.')


def _records(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return [json.loads(line) for line in f]


def _steady(workdirs):
  return sum(r['train_seconds'] + r['test_seconds'] + r['query_seconds']
             for w in workdirs for r in _records(w)[1:])


def main(argv):
  del argv
  print(f'{"strategy":>12} {"S":>2} {"mode":>16} {"wall s":>8} '
        f'{"rounds 1.. s":>12} {"same selections":>15}', flush=True)
  for strategy in _STRATEGIES.value:
    for num_seeds in map(int, _SEEDS.value):
      config = config_lib.default()
      config.strategy = strategy
      config.num_epochs = _EPOCHS.value
      config.initial_size = 20
      config.query_size = 20
      config.num_rounds = _ROUNDS.value
      seeds = list(range(num_seeds))
      with tempfile.TemporaryDirectory() as root:
        results = {}
        for mode in ('sequential jit', 'sequential python', 'vmapped'):
          dirs = [os.path.join(root, mode.replace(' ', '_'), str(s))
                  for s in seeds]
          config.train_loop = 'python' if mode.endswith('python') else 'jit'
          start = time.perf_counter()
          if mode == 'vmapped':
            trials.run(config, seeds, dirs)
          else:
            for seed, workdir in zip(seeds, dirs):
              config.seed = seed
              loop.run(config, workdir)
            config.seed = 0
          wall = time.perf_counter() - start
          results[mode] = dirs
          same = ''
          if mode == 'vmapped':
            same = str(all(
                [sorted(r['selected']) for r in _records(a)] ==
                [sorted(r['selected']) for r in _records(b)]
                for a, b in zip(dirs, results['sequential jit'])))
          print(f'{strategy:>12} {num_seeds:>2} {mode:>16} {wall:8.1f} '
                f'{_steady(dirs):12.1f} {same:>15}', flush=True)


if __name__ == '__main__':
  app.run(main)
