"""LPL (learning loss): ranking loss, detach schedule, errors, the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import errors
from jal import loop
from jal import models
from jal import rounds
from jal import train
from jal.acquisition import loss_prediction as lpl
from tests.synthetic import make_blobs_dataset


def _leaves(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _ranking_loss_reference(predicted, target, weights, margin):
  """Pairs (i, B-1-i); sign +1 iff l_i > l_j (ties count -1)."""
  b = len(predicted)
  total = count = 0.0
  for i in range(b // 2):
    j = b - 1 - i
    sign = 1.0 if target[i] - target[j] > 0 else -1.0
    pair_weight = weights[i] * weights[j]
    total += pair_weight * max(0.0, margin - sign *
                               (predicted[i] - predicted[j]))
    count += pair_weight
  return total / max(count, 1.0)


@pytest.mark.parametrize('margin', [1.0, 0.3])
def test_ranking_loss_matches_numpy(margin):
  rng = np.random.default_rng(0)
  predicted = rng.normal(size=12).astype(np.float32)
  target = rng.integers(0, 3, 12).astype(np.float32)  # ties: sign(0) = -1
  target[2] = target[9]
  weights = np.ones(12, np.float32)
  weights[-3:] = 0.0  # padding rows of a last batch
  got = lpl.ranking_loss(jnp.asarray(predicted), jnp.asarray(target),
                         jnp.asarray(weights), margin)
  np.testing.assert_allclose(
      float(got), _ranking_loss_reference(predicted, target, weights, margin),
      rtol=1e-6)
  # Unweighted it is the plain mean over the B/2 pairs.
  ones = np.ones(12, np.float32)
  np.testing.assert_allclose(
      float(lpl.ranking_loss(predicted, target, ones, margin)),
      _ranking_loss_reference(predicted, target, ones, margin), rtol=1e-6)


def _trainer(objective, batch_size=16):
  model = models.get('mlp', 3, dropout_rate=0.0)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  return train.Trainer(model, train.make_optimizer('adam', 1e-2),
                       batch_size=batch_size, in_jit_loop=True,
                       objective=objective), variables


def _data(num_pool=60, num_labeled=30):
  dataset = make_blobs_dataset(num_pool=num_pool)
  mask = jnp.arange(num_pool) < num_labeled
  labels = jnp.asarray(dataset.pool_labels, jnp.int32)
  return (jnp.asarray(dataset.pool_images),
          train.TrainSet(mask, jnp.where(mask, labels, -1)))


def test_weight_zero_trains_the_backbone_as_plain_training():
  images, rows = _data()
  plain, variables = _trainer(None)
  hooked, _ = _trainer(lpl.lpl_objective(weight=0.0))
  a = plain.fit(jax.random.key(1), variables, images, rows, 2)
  b = hooked.fit(jax.random.key(1), variables, images, rows, 2)
  np.testing.assert_allclose(_leaves(a.variables.params),
                             _leaves(b.variables.params), atol=1e-6)


def test_detaching_stops_the_backbone_gradient_only():
  images, rows = _data()
  model = models.get('mlp', 3, dropout_rate=0.0)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  objective = lpl.lpl_objective(detach_after_epoch=3)
  batch, labels = images[:16], rows.labels[:16]
  aux = objective.init(jax.random.key(2), model.apply(variables, batch))

  def grads(epoch):
    info = train.StepInfo(jnp.int32(0), jnp.int32(epoch), jnp.int32(5),
                          jnp.int32(30), jnp.int32(30), jax.random.key(0))

    def loss(params, aux):
      output = model.apply(variables._replace(params=params), batch)
      return objective.loss(aux, output, labels, jnp.ones(16), None, info)

    return jax.grad(loss, argnums=(0, 1))(variables.params, aux)

  backbone, module = grads(2)
  assert np.abs(_leaves(backbone)).max() > 0
  backbone, module_detached = grads(3)
  assert np.abs(_leaves(backbone)).max() == 0.0
  np.testing.assert_allclose(_leaves(module), _leaves(module_detached),
                             rtol=1e-6)


def test_detach_epoch_defaults_to_sixty_percent_of_training():
  info = train.StepInfo(0, 0, jnp.int32(200), 0, 0, None)
  assert int(lpl.detach_epoch(info, None, 0.6)) == 120
  assert int(lpl.detach_epoch(info, 20, 0.6)) == 20


def test_model_without_features_or_odd_batch_is_refused():
  images, _ = _data()
  plain = models.from_function(
      lambda key, shape: {'w': jnp.zeros((16, 3))},
      lambda params, x: (x.reshape(x.shape[0], -1) @ params['w'],) * 2)
  trainer = train.Trainer(plain, train.make_optimizer(), batch_size=16,
                          objective=lpl.lpl_objective())
  with pytest.raises(errors.ConfigError,
                     match=r"'lpl' reads the task model's intermediate "
                     r"features.*config.model 'mlp'"):
    trainer.init_state(jax.random.key(0), plain.init(jax.random.key(0),
                                                     (4, 4, 1)), images)
  odd, variables = _trainer(lpl.lpl_objective(), batch_size=15)
  with pytest.raises(errors.ConfigError, match='batch_size must be even'):
    odd.init_state(jax.random.key(0), variables, images)


def test_subset_is_drawn_from_the_unlabeled_points():
  labeled = jnp.arange(40) < 25
  subset = np.asarray(lpl.random_subset(jax.random.key(3), ~labeled, 8))
  assert subset.sum() == 8 and not subset[:25].any()
  assert np.asarray(lpl.random_subset(jax.random.key(3), ~labeled, 99)).sum(
  ) == 15


def test_lpl_round_picks_the_highest_predicted_loss_and_runs_the_loop(
    tiny_config, tmp_path):
  dataset = make_blobs_dataset(num_pool=120)
  tiny_config.strategy = 'lpl'
  tiny_config.num_rounds = 2
  tiny_config.hparams.lpl.subset_size = 50
  exp, data = loop.setup(tiny_config, dataset)
  state = loop.init_state(exp, data, lambda idx: dataset.pool_labels[idx])
  fns = loop.RoundFns(exp)
  trained = fns.train(data, state)
  selected, _ = fns.query(data, trained, state)
  features = rounds.predictions(exp, None, trained, data.pool_images,
                                state.labeled_mask, ('features',))['features']
  # The module's forward pass in numpy: pool, dense + ReLU, concat, dense.
  aux = jax.tree.map(np.asarray, trained.aux_params)
  hidden = [np.maximum(np.asarray(f) @ layer['w'] + layer['b'], 0)
            for layer, f in zip(aux['hidden'], features)]
  predicted = (np.concatenate(hidden, -1) @ aux['out']['w'] +
               aux['out']['b'])[:, 0]
  _, _, query_key = rounds.round_keys(state)
  subset = np.asarray(lpl.random_subset(
      jax.random.split(query_key, 3)[2], ~state.labeled_mask, 50))
  predicted[~subset] = -np.inf
  best = np.argsort(-predicted, kind='stable')[:10]
  np.testing.assert_array_equal(np.sort(selected), np.sort(best))
  summary = loop.run(tiny_config, str(tmp_path), dataset=dataset)
  assert summary['num_labeled'] == [20, 30, 40]
  assert 0.0 < summary['final_accuracy'] <= 1.0
