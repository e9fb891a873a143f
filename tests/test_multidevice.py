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

from jal import config as config_lib
from jal import models
from jal import posterior
from tests import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def predictions() -> dict[str, np.ndarray]:
  """Every posterior source's log-probs of a small model, and copies."""
  config = config_lib.default()
  config.posterior_samples = 10
  config.eval_chunk = 16
  config.ensemble_size = 3
  model = models.get('mlp', 3, 0.3)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  images = jax.random.normal(jax.random.key(1), (45, 4, 4, 1))
  include = jnp.arange(45) % 4 != 0
  out = dict(devices=np.array(jax.device_count()))
  for name in ('mc_dropout', 'ensemble', 'laplace'):
    source = posterior.get(name, model, (4, 4, 1), config)
    source_variables = (source.init(jax.random.key(3)) if name == 'ensemble'
                        else variables)
    out[name] = np.asarray(source.sample(jax.random.key(2), source_variables,
                                         images, ~include, include))
  copies = jnp.concatenate([images[:5]] * 9)
  out['copies'] = np.asarray(posterior.get(
      'mc_dropout', model, (4, 4, 1), config).sample(
          jax.random.key(4), variables, copies, None, None))
  bn_model = synthetic.batch_norm_model()
  out['bn_train'] = np.asarray(posterior.get(
      'bn_train', bn_model, (8, 8, 1), config).sample(
          jax.random.key(5), bn_model.init(jax.random.key(0), (8, 8, 1)),
          jax.random.normal(jax.random.key(1), (20, 8, 8, 1)), None, None))
  return out


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
  # Consistent MC dropout: copies of an image agree in every pass.
  copies = eight['copies'].reshape(10, 9, 5, 3)
  np.testing.assert_allclose(copies, np.broadcast_to(copies[:, :1],
                                                     copies.shape), atol=1e-5)
  for name in ('mc_dropout', 'ensemble', 'laplace', 'bn_train', 'copies'):
    assert eight[name].shape == one[name].shape
    assert np.all(np.isfinite(eight[name]))
    np.testing.assert_allclose(eight[name], one[name], atol=1e-5,
                               err_msg=name)
