"""DeepAL+'s MNIST study (§3) scaled to a 2-core CPU overnight.

mnist and mnist-imb (class ratios 1:2:…:10), every registered strategy, 3
seeds. DeepAL+ trains ResNet-18 (7×7 stem) with Adam 1e-3 for 20 epochs; on a
small CPU this keeps Adam 1e-3 and DeepAL's small CNN (`lenet`) for 10 epochs,
and a pool of the first 20000 training images, 500 initial labels and 10
rounds of 500. For DeepAL+'s own network and epochs set
`--config.base.model=resnet18_imagenet_stem --config.base.num_epochs=20`
(a GPU is advisable).

Needs the MNIST IDX files: set JAL_DATA_DIR (a folder holding `mnist/`) or
`--config.base.data_dir`.

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \
      --config=configs/benchmark_mnist.py --workdir=/tmp/bench_mnist
"""

import ml_collections

from jal import config as config_lib


def get_config():
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.dataset = 'mnist'
  base.pool_size = 20000
  base.model = 'lenet'
  base.dropout_rate = 0.3
  base.optimizer = 'adam'
  base.learning_rate = 1e-3
  base.batch_size = 64
  base.num_epochs = 10
  base.initial_size = 500
  base.query_size = 500
  base.num_rounds = 10
  bench.base = base
  bench.datasets = ('mnist', 'mnist-imb')
  bench.strategies = 'all'
  bench.seeds = (0, 1, 2)
  bench.query_sizes = ()
  bench.epochs = ()
  bench.budget = 0
  bench.vmap_trials = True
  # On a CPU, MC-dropout passes vmapped over seeds ran slower than seed by
  # seed (experiments/bench_trials.py); deterministic ones ran faster.
  bench.vmap_trials_except_needs = ('mc_log_probs',)
  return bench
