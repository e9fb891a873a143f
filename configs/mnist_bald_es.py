"""BALD on MNIST with early stopping on a validation set (BatchBALD's recipe).

`mnist_bald.py` (Gal et al. 2017's protocol) with the training recipe of the
BatchBALD authors' code (Kirsch, van Amersfoort & Gal 2019,
github.com/BlackHC/BatchBALD, its MNIST runs): 1024 labeled validation
examples; epochs of 5056 samples drawn from the labeled set whatever its
size (79 steps of 64); after every epoch the model, dropout off, is scored
by its validation accuracy, the best epoch's model is kept (ties: the
earlier) and training stops after 3 epochs without improvement, at most 30.
With 20 to 320 labels one round trains about 4 to 11 such epochs instead of
`mnist_bald.py`'s fixed 200 steps.

Where it departs from that code: the validation examples are a fixed draw
out of the MNIST test set (jal's `config.validation_size`; the test
accuracy is then read on the other 8976), not taken from the training
images; an epoch cycles one shuffled order of the labeled rows rather than
drawing them at random; the pool is `mnist_bald.py`'s first 20000 training
images, and the model is jal's LeNet with DeepAL's dropout, not their
BayesianNet.
"""

import os

from jal import config as config_lib


def get_config():
  config = config_lib.from_file(os.path.join(os.path.dirname(__file__),
                                             'mnist_bald.py'))
  config.validation_size = 1024
  config.early_stopping_patience = 3
  config.epoch_samples = 5056
  config.num_epochs = 30
  return config
