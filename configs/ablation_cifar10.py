"""DeepAL+'s ablation (§3.3, Figures 3 and 4): AL batch size × training epochs.

CIFAR10 with the setting of `benchmark_cifar10.py` (ResNet-18 with the CIFAR
stem, Adam 1e-3, crop and flip, batch 64), query sizes 1000, 2000, 4000 and
10000 × epochs 5, 10, 15, 20, 25, 30, `random` against `entropy`, 3 seeds.
Every cell labels up to the same budget of 41000 (1000 initial, then
(41000 − 1000) / b rounds of b), so all curves cover one range. Add the
strategies DeepAL+ also ablates where registered, e.g.
`--config.strategies=random,entropy,badge`. For GPU users.

  python experiments/benchmark.py --config=configs/ablation_cifar10.py \
      --workdir=/tmp/ablation_cifar10
"""

import os

from jal import config as config_lib


def get_config():
  bench = config_lib.from_file(
      os.path.join(os.path.dirname(__file__), 'benchmark_cifar10.py'))
  bench.base.num_rounds = 40
  bench.datasets = ('cifar10',)
  bench.strategies = 'random,entropy'
  bench.query_sizes = (1000, 2000, 4000, 10000)
  bench.epochs = (5, 10, 15, 20, 25, 30)
  bench.budget = 41000
  return bench
