"""Shared fixtures: small configs and synthetic datasets."""

import pytest

from jal import config as config_lib
from tests.synthetic import make_blobs_dataset


@pytest.fixture
def tiny_config():
  """Digits with a small MLP, 3 epochs, 20 + 3 × 10 labels: seconds per run."""
  config = config_lib.default()
  config.num_epochs = 3
  config.initial_size = 20
  config.query_size = 10
  config.num_rounds = 3
  return config


@pytest.fixture
def blobs():
  return make_blobs_dataset()
