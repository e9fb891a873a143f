"""Stochastic predictions on 8 forced host devices equal the 1-device ones.

A subprocess sets `XLA_FLAGS=--xla_force_host_platform_device_count=8`
before importing jax, so its mesh has 8 devices and the K (or M) axis is
split over them (10 passes are padded to 16); this process computes the same
predictions on its own single CPU device.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jal import laplace
from jal import models
from jal import uncertainty

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def predictions() -> dict[str, np.ndarray]:
  """MC dropout, ensemble and Laplace log-probs of a small MLP."""
  graphdef, variables = models.init(jax.random.key(0), 'mlp', (4, 4, 1), 3,
                                    0.3)
  stacked = jax.vmap(lambda k: models.init(k, 'mlp', (4, 4, 1), 3, 0.3)[1])(
      jax.random.split(jax.random.key(3), 3))
  images = jax.random.normal(jax.random.key(1), (45, 4, 4, 1))
  include = jnp.arange(45) % 4 != 0
  return dict(
      devices=np.array(jax.device_count()),
      mc_dropout=np.asarray(uncertainty.mc_dropout_log_probs(
          jax.random.key(2), graphdef, variables, images, num_passes=10,
          chunk_size=16, include_mask=include)),
      ensemble=np.asarray(uncertainty.ensemble_log_probs(
          graphdef, stacked, images, chunk_size=16)),
      laplace=np.asarray(laplace.laplace_log_probs(
          jax.random.key(4), graphdef, variables, images, ~include,
          num_samples=5, prior_precision=1.0)))


def test_eight_devices_give_the_single_device_results(tmp_path):
  path = tmp_path / 'eight.npz'
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=8')
  subprocess.run(
      [sys.executable, '-c',
       'import sys, numpy as np\n'
       'from tests.test_multidevice import predictions\n'
       'np.savez(sys.argv[1], **predictions())', str(path)],
      check=True, cwd=REPO, env=env, timeout=300)
  eight = np.load(path)
  one = predictions()
  assert int(eight['devices']) == 8
  for name in ('mc_dropout', 'ensemble', 'laplace'):
    assert eight[name].shape == one[name].shape
    assert np.all(np.isfinite(eight[name]))
    np.testing.assert_allclose(eight[name], one[name], atol=1e-5,
                               err_msg=name)
