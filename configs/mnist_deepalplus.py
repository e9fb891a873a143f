"""DeepAL+'s MNIST setting (Zhan et al. 2022): ResNet-18 with a 7×7 stem.

Adam (lr 1e-3), dropout 0.3, 20 epochs; pool, batch and budget as DeepAL's
protocol (`mnist_deepal.py`). A GPU is advisable: ResNet-18 on 10000+ images
is slow on a small CPU.
"""

import os

from jal import config as config_lib


def get_config():
  config = config_lib.from_file(
      os.path.join(os.path.dirname(__file__), 'mnist_deepal.py'))
  config.model = 'resnet18_imagenet_stem'
  config.dropout_rate = 0.3
  config.optimizer = 'adam'
  config.learning_rate = 1e-3
  config.num_epochs = 20
  return config
