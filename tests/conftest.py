"""Shared fixtures: small configs and synthetic datasets.

Tests compile the same small programs again and again (every `loop.run` of
the tiny config builds its own jitted functions), so the session shares one
persistent XLA compilation cache: a fresh directory made by the controlling
process and handed to the xdist workers through the environment.
"""

import os
import shutil
import tempfile

import jax
import pytest

from jal import config as config_lib
from tests.synthetic import make_blobs_dataset

_CACHE_ENV = 'JAL_TEST_COMPILATION_CACHE'


def pytest_configure(config):
  if not hasattr(config, 'workerinput') and _CACHE_ENV not in os.environ:
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix='jal_xla_cache_')
  jax.config.update('jax_compilation_cache_dir', os.environ[_CACHE_ENV])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def pytest_unconfigure(config):
  if not hasattr(config, 'workerinput'):
    shutil.rmtree(os.environ.pop(_CACHE_ENV, ''), ignore_errors=True)


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
