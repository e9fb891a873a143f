"""VAAL, SRAAL and the OUI: numpy references, a shifted-Gaussian pool, and
one tiny loop run of each."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import config as config_lib
from jal import errors
from jal import loop
from jal.acquisition import sraal
from jal.acquisition import vaal
from jal.acquisition import vae as vae_lib


def _numpy_oui(probs, ddof=0):
  """Eq. 3 row by row, written plainly (float64)."""
  out = []
  for v in np.asarray(probs, np.float64):
    c, top = len(v), v.max()
    flat = np.full(c, (1 - top) / (c - 1))
    flat[np.argmax(v)] = top
    min_var = ((1 / c - top)**2 + (c - 1) * (1 / c - (1 - top) / (c - 1))**2
               ) / c
    np.testing.assert_allclose(min_var, np.var(flat), atol=1e-12)
    var = np.var(v, ddof=ddof)
    out.append(1.0 if var == 0 else 1 - min_var / var * top)
  return np.array(out)


def _log(p):
  return jnp.log(jnp.asarray(p, jnp.float32))[None]


@pytest.mark.parametrize('unbiased', [False, True])
def test_oui_matches_numpy_and_lies_in_unit_interval(unbiased):
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.full(5, 0.5), 200)
  got = np.asarray(sraal.oui(_log(probs), unbiased))
  if not unbiased:
    np.testing.assert_allclose(got, _numpy_oui(probs), atol=1e-5)
    assert np.all((got >= 0) & (got <= 1))
  else:
    np.testing.assert_allclose(got, _numpy_oui(probs, ddof=1), atol=1e-5)


def test_oui_one_hot_flat_family_and_uniform_guard():
  c = 4
  one_hot = np.eye(c)[[0, 3]]
  np.testing.assert_allclose(sraal.oui(_log(one_hot + 0.0)), [0, 0],
                             atol=1e-6)
  tops = np.linspace(0.3, 0.95, 8)
  flat = np.array([[t] + [(1 - t) / (c - 1)] * (c - 1) for t in tops])
  got = np.asarray(sraal.oui(_log(flat)))
  np.testing.assert_allclose(got, 1 - tops, atol=1e-5)
  assert np.all(np.diff(got) < 0)
  np.testing.assert_allclose(sraal.oui(_log(np.full((2, c), 1 / c))), 1.0)
  # K > 1: V is the mean of the K predictions.
  mixed = jnp.log(jnp.asarray([[[1.0, 0, 0, 0]], [[0, 1.0, 0, 0]]]))
  np.testing.assert_allclose(sraal.oui(mixed), _numpy_oui([[.5, .5, 0, 0]]),
                             atol=1e-6)


def test_kl_divergence_matches_formula():
  rng = np.random.default_rng(1)
  mean, log_var = rng.normal(size=(2, 6, 5))
  want = np.array([
      0.5 * np.sum(np.exp(lv) + m**2 - 1 - lv) for m, lv in zip(mean, log_var)])
  np.testing.assert_allclose(
      vae_lib.kl_divergence(jnp.asarray(mean, jnp.float32),
                            jnp.asarray(log_var, jnp.float32)), want,
      rtol=1e-5)


@pytest.mark.parametrize('shape, arch', [((28, 28, 1), 'conv'),
                                         ((7, 5, 3), 'conv'), ((6,), 'mlp')])
def test_vae_architecture_adapts_to_the_input(shape, arch):
  chosen = vae_lib.resolve_architecture('auto', shape)
  assert chosen == ('mlp' if shape == (7, 5, 3) else arch)
  net = vae_lib.VAE(shape, 8, arch, decoder_latents=4)
  x_hat, mean, _ = jax.eval_shape(
      lambda: net.apply(net.init(jax.random.key(0), jnp.zeros((1,) + shape)),
                        jnp.ones((3,) + shape)))
  assert x_hat.shape == (3,) + shape and mean.shape == (3, 8)


def _shifted_pool(n_a=90, n_b=60, n_labeled=45, d=2):
  """Region A (first coordinate −3) holds every labeled point and some
  unlabeled ones; region B (+3) is covered by unlabeled points only."""
  rng = np.random.default_rng(0)
  x = rng.normal(0, 1, (n_a + n_b, d)).astype(np.float32)
  x[:n_a, 0] -= 3
  x[n_a:, 0] += 3
  mask = np.zeros(n_a + n_b, bool)
  mask[:n_labeled] = True
  return jnp.asarray(x), jnp.asarray(mask), n_a


# The official VAAL sums the KL over the batch against a mean MSE; with β = 1
# on this 2-d pool μ collapses and D barely tells A from B in so few steps, so
# the separation tests use a small β.
_FAST = dict(batch_size=32, num_epochs=60, beta=0.01)


def test_vaal_discriminator_separates_and_picks_the_unlabeled_only_region():
  x, mask, n_a = _shifted_pool()
  probs, picks = jax.jit(lambda k: (
      vaal.vaal_scores(k, x, mask, latent_dim=8, learning_rate=5e-4, **_FAST),
      vaal._select(k, {'images': x}, mask, 10, latent_dim=8, **_FAST)))(
          jax.random.key(0))
  probs, picks = np.asarray(probs), np.asarray(picks)
  # The same key trains the same networks: D(μ) is lowest on region B.
  assert probs[np.asarray(mask)].mean() > probs[n_a:].mean() + 0.1
  assert np.all(picks >= n_a)


def test_sraal_discriminator_follows_the_state_relabeling():
  x, mask, n_a = _shifted_pool()
  n = x.shape[0]
  # The task model is sure in region A and unsure in region B.
  sure, unsure = [0.97, 0.01, 0.01, 0.01], [0.4, 0.3, 0.2, 0.1]
  probs = np.where(np.arange(n)[:, None] < n_a, sure, unsure)
  inputs = {'images': x, 'log_probs': _log(probs),
            'labels': jnp.where(mask, 0, -1).astype(jnp.int32)}
  hp = dict(latent_dim=8, batch_size=32, num_epochs=60)
  picks = np.asarray(jax.jit(lambda k: sraal._select_sraal(
      k, inputs, mask, 10, **hp))(jax.random.key(0)))
  assert np.all(picks >= n_a)


def _run(tiny_config, tmp_path, name, on_round, **hparams):
  tiny_config.strategy = name
  tiny_config.num_rounds = 1
  tiny_config.pool_size = 300
  tiny_config.hparams[name].update(hparams)
  return loop.run(tiny_config, str(tmp_path), on_round=on_round)


@pytest.mark.parametrize('name', ['vaal', 'sraal'])
def test_end_to_end_loop(tiny_config, tmp_path, name):
  hp = dict(latent_dim=8, batch_size=64, num_epochs=1)
  records = []
  _run(tiny_config, tmp_path, name, records.append, **hp)
  assert [r['num_labeled'] for r in records] == [20, 30]
  assert len(set(records[0]['selected'])) == 10
  assert acquisition.get(name).needs[-1] in ('images', 'labels')


def test_kcenter_initial_set_spreads_over_the_latents():
  x, _, n_a = _shifted_pool(n_a=100, n_b=20)
  picks = np.asarray(jax.jit(
      sraal.kcenter_initial_set, static_argnums=(2, 3),
      static_argnames=('latent_dim', 'batch_size', 'num_epochs', 'beta'))(
          jax.random.key(3), x, 6, 1, latent_dim=4, batch_size=32,
          num_epochs=30, beta=0.01))
  assert len(set(picks.tolist())) == 6
  # Farthest-first reaches the small region B, which a uniform draw of 6
  # from 120 points misses with probability ~1/3.
  assert np.any(picks >= n_a)


def test_config_initial_strategy_is_validated():
  config = config_lib.default()
  config.initial_strategy = 'kcentre'
  with pytest.raises(errors.ConfigError, match='initial_strategy'):
    config_lib.validate(config)
  config.initial_strategy = 'kcenter_vae'
  config_lib.validate(config)
  config.initial_per_class = 2
  with pytest.raises(errors.ConfigError, match='initial_per_class'):
    config_lib.validate(config)
