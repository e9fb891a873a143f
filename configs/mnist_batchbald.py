"""BatchBALD on MNIST as in Kirsch et al. (2019).

20 initial labels (2 per class), acquisition size 10, MC dropout through
DeepAL's small CNN, BatchBALD with 10 passes and up to 100000 sampled label
configurations (exact joint entropy while C^(chosen) ≤ 100000). Pool: the
first 20000 MNIST training images (Kirsch et al. use all 60000 less a
validation set; set --config.pool_size to change). Needs the IDX files: set
JAL_DATA_DIR or --config.data_dir.
"""

import os

from jal import config as config_lib


def get_config():
  config = config_lib.from_file(
      os.path.join(os.path.dirname(__file__), 'mnist_bald.py'))
  config.strategy = 'batchbald'
  config.hparams.batchbald.num_samples = 100000
  return config
