"""BatchBALD on MNIST as in Kirsch et al. (2019).

20 initial labels (2 per class), acquisition size 10, MC dropout through
DeepAL's small CNN, BatchBALD with 10 passes and up to 100000 sampled label
configurations (exact joint entropy while C^(chosen) ≤ 100000). Pool: the
first 20000 MNIST training images (Kirsch et al. use all 60000 less a
validation set; set --config.pool_size to change). Needs the IDX files: set
JAL_DATA_DIR or --config.data_dir.
"""

from jal import config as config_lib


def get_config():
  config = config_lib.default()
  config.dataset = 'mnist'
  config.pool_size = 20000
  config.model = 'lenet'
  config.dropout_rate = 0.5
  config.optimizer = 'adam'
  config.learning_rate = 1e-3
  config.batch_size = 64
  config.num_epochs = 200
  config.strategy = 'batchbald'
  config.strategy_kwargs.num_samples = 100000
  config.uncertainty = 'mc_dropout'
  config.mc_passes = 10
  config.initial_size = 20
  config.initial_per_class = 2
  config.query_size = 10
  config.num_rounds = 30
  return config
