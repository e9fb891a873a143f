"""DeepAL+'s MNIST setting (Zhan et al. 2022): ResNet-18 with a 7×7 stem.

Adam (lr 1e-3), batch 64, 20 epochs; pool and budget as DeepAL's protocol.
A GPU is advisable: ResNet-18 on 10000+ images is slow on a small CPU.
"""

from jal import config as config_lib


def get_config():
  config = config_lib.default()
  config.dataset = 'mnist'
  config.pool_size = 40000
  config.model = 'resnet18_imagenet_stem'
  config.dropout_rate = 0.3
  config.batch_size = 64
  config.num_epochs = 20
  config.initial_size = 10000
  config.query_size = 1000
  config.num_rounds = 10
  return config
