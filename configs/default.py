"""The default experiment: entropy sampling with an MLP on scikit-learn's digits.

`jal.config.default()` lists and documents every field of an experiment.
"""

from jal import config as config_lib


def get_config():
  return config_lib.default()
