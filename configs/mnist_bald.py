"""BALD with MC dropout on MNIST, the protocol of Gal et al. (2017).

20 initial labels (2 per class), 10 acquired per round, MC dropout with 10
passes through DeepAL's small CNN (dropout 0.5), trained afresh each round
with Adam (lr 1e-3, batch 64, 200 epochs: with 20 labels one step an
epoch, so 200 steps). 30 rounds reach 320 labels. The pool
is the first 20000 MNIST training images (to keep a round to seconds on a
small CPU; Gal et al. score a random subset of the pool for the same
reason), tested on the 10000 test images. Compare with
`--config.strategy=random`. Needs the IDX files: set JAL_DATA_DIR or
--config.data_dir.
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
  config.strategy = 'bald'
  config.posterior = 'mc_dropout'
  config.posterior_samples = 10
  config.initial_size = 20
  config.initial_per_class = 2
  config.query_size = 10
  config.num_rounds = 30
  return config
