"""DeepAL's MNIST protocol (Huang 2021).

The first 40000 MNIST training images as the pool, the 10000 test images,
DeepAL's small CNN, SGD (lr 0.01, momentum 0.5), batch 64, 10 epochs; 10000
initial labels and 1000 per round. Needs the IDX files: set JAL_DATA_DIR or
--config.data_dir.
"""

from jal import config as config_lib


def get_config():
  config = config_lib.default()
  config.dataset = 'mnist'
  config.pool_size = 40000
  config.model = 'lenet'
  config.dropout_rate = 0.5
  config.optimizer = 'sgd'
  config.learning_rate = 0.01
  config.momentum = 0.5
  config.batch_size = 64
  config.num_epochs = 10
  config.initial_size = 10000
  config.query_size = 1000
  config.num_rounds = 10
  return config
