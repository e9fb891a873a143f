"""Every config file in configs/ loads and passes validation."""

import glob
import os

import pytest

from jal import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_file_is_valid(path):
  config = config_lib.from_file(path)
  experiment = config.base if 'base' in config else config
  assert set(experiment) == set(config_lib.default())
  config_lib.validate(experiment)


def test_derived_configs_change_only_what_they_say():
  deepal = config_lib.from_file(os.path.join(REPO, 'configs',
                                             'mnist_deepal.py'))
  plus = config_lib.from_file(os.path.join(REPO, 'configs',
                                           'mnist_deepalplus.py'))
  changed = {k for k in deepal if deepal[k] != plus[k]}
  assert changed == {'model', 'dropout_rate', 'optimizer', 'learning_rate',
                     'num_epochs'}
