"""A labeling campaign on your own images (experiments/label.py).

An MLP, which takes images of any size; margin sampling; batches of 20 after
20 initial labels (ignored when the image folder arrives with labeled
class folders), and a budget of 20 + 50 × 20 labels. For 28×28 or larger
images `--config.model=lenet` trains a small CNN instead.
"""

from jal import config as config_lib


def get_config():
  config = config_lib.default()
  config.dataset = 'local'
  config.model = 'mlp'
  config.strategy = 'margin'
  config.num_epochs = 30
  config.initial_size = 20
  config.query_size = 20
  config.num_rounds = 50
  return config
