"""DeepAL+'s CIFAR10 setting (§3.1), for GPU users.

cifar10 and cifar10-imb (class ratios 1:2:…:10), every registered strategy,
3 seeds. ResNet-18 with the 3×3 CIFAR stem, Adam 1e-3, 30 epochs, random
crop (padding 4) and horizontal flip, batch 64, MC dropout with 10 passes;
1000 initial labels and 10 rounds of 1000.

Needs CIFAR10 through tensorflow-datasets (`pip install -e '.[tfds]'`,
prepared) or its files under JAL_DATA_DIR.

  python experiments/benchmark.py --config=configs/benchmark_cifar10.py \
      --workdir=/tmp/bench_cifar10
"""

import ml_collections

from jal import config as config_lib


def get_config():
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.dataset = 'cifar10'
  base.model = 'resnet18'
  base.dropout_rate = 0.3
  base.optimizer = 'adam'
  base.learning_rate = 1e-3
  base.batch_size = 64
  base.num_epochs = 30
  base.augment = True
  base.posterior_samples = 10
  base.initial_size = 1000
  base.query_size = 1000
  base.num_rounds = 10
  bench.base = base
  bench.datasets = ('cifar10', 'cifar10-imb')
  bench.strategies = 'all'
  bench.seeds = (0, 1, 2)
  bench.query_sizes = ()
  bench.epochs = ()
  bench.budget = 0
  bench.vmap_trials = True
  return bench
