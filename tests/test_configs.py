"""Every config file in configs/ loads and passes validation."""

import glob
import os

import pytest

from jal import config as config_lib
from jal import errors
from jal.cameratrap import pipeline
from jal.cameratrap import study as cameratrap_study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_file_is_valid(path):
  config = config_lib.from_file(path)
  experiment = config.base if 'base' in config else config
  if 'embedding_loss' in experiment:  # the camera-trap pipeline's study
    assert set(experiment) == set(pipeline.default())
    cameratrap_study.check(config)
    return
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


def _valid():
  return config_lib.default()


@pytest.mark.parametrize('field, value, match', [
    ('oracle_noise', 1.0, r'oracle_noise .* \[0, 1\)'),
    ('oracle_noise', -0.1, r'oracle_noise .* \[0, 1\)'),
    ('oracle_confusion', 'no/such/file.npy', 'is not a file'),
    ('label_costs', 3.5, 'None, a list or a path'),
    ('validation_size', -1, 'validation_size must be an integer >= 0'),
    ('stopping.plateau_delta', 0.0, 'plateau_delta must be a number > 0'),
    ('stopping.plateau_window', 0, 'plateau_window must be a positive'),
    ('stopping.kappa_window', 0, 'kappa_window must be a positive'),
    ('stopping.kappa', 1.0, r'kappa .* \(-1, 1\)'),
    ('stopping.stop_set_size', -5, 'stop_set_size must be an integer >= 0'),
    ('stopping.budget', -1, 'budget must be None or an integer >= 0'),
    ('stopping.max_rounds', -2, 'max_rounds must be None or an integer'),
    ('stopping.target_accuracy', 1.5, r'target_accuracy .* \(0, 1\]'),
])
def test_oracle_and_stopping_fields_are_checked(field, value, match):
  config = _valid()
  parent, name = (config.stopping, field.split('.')[1]) if '.' in field else (
      config, field)
  parent[name] = value
  with pytest.raises(errors.ConfigError, match=match):
    config_lib.validate(config)


def test_target_accuracy_needs_a_validation_set():
  config = _valid()
  config.stopping.target_accuracy = 0.9
  with pytest.raises(errors.ConfigError, match='set config.validation_size'):
    config_lib.validate(config)
  config.validation_size = 200
  config_lib.validate(config)


def test_noise_and_confusion_together_are_refused():
  config = _valid()
  config.oracle_noise = 0.1
  config.oracle_confusion = [[1.0, 0.0], [0.0, 1.0]]
  with pytest.raises(errors.ConfigError, match='set one of them'):
    config_lib.validate(config)
  config.oracle_noise = 0.0
  config_lib.validate(config)


def test_stopping_parameter_typo_is_refused():
  config = _valid()
  config.stopping.plateau_detla = 0.01
  with pytest.raises(errors.ConfigError, match="did you mean 'plateau_delta'"):
    config_lib.validate(config)
