"""The DeepAL+ MNIST grid with DeepAL+'s own network, for accelerators.

`benchmark_deepalplus_mnist.py` with ResNet-18 (7×7 stem), no dropout
layer of DeepAL+'s, so the "D" strategies draw their K passes from batch
norm in train mode (`posterior='bn_train'`, as DeepAL+'s code does), and the
full 60000-image training set as the pool.

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \
      --config=configs/benchmark_deepalplus_mnist_resnet.py --workdir=/tmp/dalp_r
"""

import os

from jal import config as config_lib


def get_config():
  bench = config_lib.from_file(os.path.join(
      os.path.dirname(__file__), 'benchmark_deepalplus_mnist.py'))
  bench.base.model = 'resnet18_imagenet_stem'
  bench.base.pool_size = 60000
  bench.base.dropout_rate = 0.0
  bench.base.posterior = 'bn_train'
  return bench
