"""WAAL: the query score, the gradient penalty, each player's gradient, the
α = 0 case and the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import acquisition
from jal import loop
from jal import models
from jal import rounds
from jal import train
from jal.acquisition import waal
from tests.synthetic import make_blobs_dataset


def _leaves(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _critic_numpy(params, z):
  for layer in params[:-1]:
    z = np.maximum(z @ np.asarray(layer['w']) + np.asarray(layer['b']), 0)
  logit = z @ np.asarray(params[-1]['w']) + np.asarray(params[-1]['b'])
  return 1.0 / (1.0 + np.exp(-logit[:, 0]))


def test_score_and_selection_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 2, (30, 4))
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  embeddings = rng.normal(size=(30, 6)).astype(np.float32)
  params = waal.critic_init(jax.random.key(0), 6, width=8, depth=2)
  expected = (0.5 * np.sqrt((log_probs**2).sum(-1)) +
              0.5 * (-log_probs).sum(-1) -
              10.0 * _critic_numpy(params, embeddings))
  got = waal.waal_scores(jnp.asarray(log_probs, jnp.float32),
                         jnp.asarray(embeddings), params, 10.0, chunk_size=7)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
  labeled = np.zeros(30, bool)
  labeled[:5] = True
  picks = acquisition.query(
      acquisition.get('waal'), jax.random.key(0),
      {'log_probs': jnp.asarray(log_probs[None], jnp.float32),
       'embeddings': jnp.asarray(embeddings), 'aux_params': params},
      jnp.asarray(labeled), 4)
  smallest = 5 + np.argsort(expected[5:], kind='stable')[:4]
  np.testing.assert_array_equal(np.sort(picks), np.sort(smallest))


def test_gradient_penalty_on_a_linear_critic_is_closed_form():
  rng = np.random.default_rng(1)
  w = jnp.asarray(rng.normal(size=5), jnp.float32)
  z_u, z_l = (jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
              for _ in range(2))
  u = jax.random.uniform(jax.random.key(0), (8,))
  gp = waal.gradient_penalty(lambda z: z @ w + 0.3, z_u, z_l, u, jnp.ones(8))
  np.testing.assert_allclose(float(gp), (np.linalg.norm(w) - 1.0)**2,
                             rtol=1e-5)
  # A sigmoid on top: ‖∇D(z)‖ = σ(1-σ)·‖w‖ at each of the 3B points.
  weights = jnp.asarray([1.0] * 6 + [0.0] * 2)
  gp = waal.gradient_penalty(lambda z: jax.nn.sigmoid(z @ w), z_u, z_l, u,
                             weights)
  points = np.concatenate([z_u + u[:, None] * (z_l - z_u), z_u, z_l])
  sig = 1.0 / (1.0 + np.exp(-points @ np.asarray(w)))
  norms = sig * (1 - sig) * np.linalg.norm(w)
  point_weights = np.concatenate([weights, np.ones(8), weights])
  np.testing.assert_allclose(
      float(gp), (point_weights * (norms - 1)**2).sum() / point_weights.sum(),
      rtol=1e-5)


@pytest.mark.parametrize('corrected_gp', [False, True])
def test_each_player_gets_the_gradient_of_its_own_objective(corrected_gp):
  alpha, gamma = 0.5, 0.7
  model = models.get('mlp', 3, dropout_rate=0.0)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  rng = np.random.default_rng(2)
  x_l, x_u = (jnp.asarray(rng.normal(size=(6, 4, 4, 1)), jnp.float32)
              for _ in range(2))
  weights = jnp.asarray([1.0] * 5 + [0.0])
  objective = waal.waal_objective(alpha=alpha, gamma=gamma,
                                  corrected_gp=corrected_gp)
  critic_params = waal.critic_init(jax.random.key(1), 128, width=16)
  info = train.StepInfo(0, 0, 1, 6, 6, jax.random.key(3))
  u = jax.random.uniform(info.key, (6,))

  def embed(params, x):
    return model.apply(variables._replace(params=params), x).embedding

  def gp_of(phi, z_l, z_u):
    # mean (‖∇D‖ - 1)² over interpolates and both sets, labeled rows
    # (and their interpolates) weighted.
    points = jnp.concatenate([z_u + u[:, None] * (z_l - z_u), z_u, z_l])
    grads = jax.vmap(jax.grad(
        lambda z: waal.critic(phi, z[None])[0]))(points)
    w = jnp.concatenate([weights, jnp.ones(6), weights])
    return jnp.sum(w * (jnp.linalg.norm(grads, axis=-1) - 1)**2) / w.sum()

  def w_of(phi, z_l, z_u):
    return (jnp.mean(waal.critic(phi, z_u)) - gamma * jnp.sum(
        weights * waal.critic(phi, z_l)) / weights.sum())

  # The official code's two objectives, each over its own player only.
  def task_objective(theta):
    z_l, z_u = embed(theta, x_l), embed(theta, x_u)
    detached = jax.lax.stop_gradient((z_l, z_u))
    return (alpha * w_of(critic_params, z_l, z_u) +
            5 * alpha * gp_of(critic_params, *detached))

  z_l, z_u = embed(variables.params, x_l), embed(variables.params, x_u)

  def critic_objective(phi):
    gp_sign = 1.0 if corrected_gp else -1.0
    return (-alpha * w_of(phi, z_l, z_u) +
            gp_sign * 2 * alpha * gp_of(phi, z_l, z_u))

  def combined(theta, phi):
    return objective.loss(phi, model.apply(variables._replace(params=theta),
                                           x_l), jnp.zeros(6, jnp.int32),
                          weights,
                          model.apply(variables._replace(params=theta), x_u),
                          info)

  task_grad, critic_grad = jax.grad(combined, argnums=(0, 1))(
      variables.params, critic_params)
  np.testing.assert_allclose(_leaves(task_grad),
                             _leaves(jax.grad(task_objective)(
                                 variables.params)), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(_leaves(critic_grad),
                             _leaves(jax.grad(critic_objective)(
                                 critic_params)), rtol=1e-4, atol=1e-7)
  assert np.abs(_leaves(task_grad)).max() > 0
  assert np.abs(_leaves(critic_grad)).max() > 0


def test_alpha_zero_trains_as_plain_cross_entropy():
  dataset = make_blobs_dataset(num_pool=60)
  images = jnp.asarray(dataset.pool_images)
  mask = jnp.arange(60) < 30
  rows = train.TrainSet(mask, jnp.where(
      mask, jnp.asarray(dataset.pool_labels, jnp.int32), -1))
  model = models.get('mlp', 3, dropout_rate=0.1)
  variables = model.init(jax.random.key(0), (4, 4, 1))

  def fit(objective):
    trainer = train.Trainer(model, train.make_optimizer('adam', 1e-2),
                            batch_size=16, in_jit_loop=True,
                            objective=objective)
    return trainer.fit(jax.random.key(1), variables, images, rows, 2)

  plain = fit(None)
  hooked = fit(waal.waal_objective(alpha=0.0, epoch_mode='labeled'))
  np.testing.assert_allclose(_leaves(plain.variables.params),
                             _leaves(hooked.variables.params), atol=1e-6)


def test_waal_runs_the_loop_with_pool_epochs(tiny_config, tmp_path):
  dataset = make_blobs_dataset(num_pool=120)
  tiny_config.strategy = 'waal'
  tiny_config.num_rounds = 2
  tiny_config.num_epochs = 2
  exp, _ = loop.setup(tiny_config, dataset)
  # An epoch passes over the 100 unlabeled rows, cycling the 20 labeled.
  mask = jnp.arange(120) < 20
  assert [int(c) for c in exp.trainer._counts(
      train.TrainSet(mask, jnp.where(mask, 0, -1)))] == [20, 100, 100]
  # Round 0's query: the 10 smallest scores of the trained critic (numpy).
  data = loop.setup(tiny_config, dataset)[1]
  state = loop.init_state(exp, data, lambda idx: dataset.pool_labels[idx])
  fns = loop.RoundFns(exp)
  trained = fns.train(data, state)
  selected, _ = fns.query(data, trained, state)
  inputs = rounds.predictions(exp, None, trained, data.pool_images,
                              state.labeled_mask, ('log_probs', 'embeddings'))
  log_probs = np.asarray(inputs['log_probs'][0], np.float64)
  scores = (0.5 * np.sqrt((log_probs**2).sum(-1)) + 0.5 * (-log_probs).sum(-1)
            - 10.0 * _critic_numpy(trained.aux_params,
                                   np.asarray(inputs['embeddings'])))
  scores[np.asarray(state.labeled_mask)] = np.inf
  np.testing.assert_array_equal(
      np.sort(selected), np.sort(np.argsort(scores, kind='stable')[:10]))
  summary = loop.run(tiny_config, str(tmp_path), dataset=dataset)
  assert summary['num_labeled'] == [20, 30, 40]
  assert 0.0 < summary['final_accuracy'] <= 1.0
