"""The four hooks, each proven by a toy strategy run through the round.

H1 training-set extension (pseudo-labels), H4 objective plugin (an auxiliary
loss with its own parameters, read back at query time), H3 auxiliary model at
query time (a labeled-vs-unlabeled discriminator), H2 input gradients (a
gradient-norm score against finite differences).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jal import acquisition
from jal import chunking
from jal import loop
from jal import rounds
from jal import train
from tests.synthetic import make_blobs_dataset


def _round(config, dataset, strategy):
  """Round 0 of `strategy`: (exp, data, state, trained, selected, next)."""
  exp, data = loop.setup(config, dataset, strategy=strategy)
  state = loop.init_state(exp, data, lambda idx: dataset.pool_labels[idx])
  fns = loop.RoundFns(exp)
  trained = fns.train(data, state)
  selected, strategy_state = fns.query(data, trained, state)
  next_state = fns.reveal(state, selected, data.pool_labels[selected],
                          strategy_state, trained)
  return exp, data, state, trained, np.asarray(selected), next_state


def _leaves(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _pseudo_labeling_strategy(num_pseudo):
  """Queries by entropy; pseudo-labels the `num_pseudo` most confident."""

  def select(key, inputs, labeled_mask, state, query_size):
    del key, state
    log_probs = inputs['log_probs'][0]
    confidence = jnp.where(labeled_mask, -jnp.inf, jnp.max(log_probs, -1))
    _, confident = jax.lax.top_k(confidence, num_pseudo)
    pseudo = jnp.full(labeled_mask.shape, -1, jnp.int32).at[confident].set(
        jnp.argmax(log_probs[confident], -1).astype(jnp.int32))
    selected = acquisition.top_k_unlabeled(
        acquisition.uncertainty.entropy(inputs['log_probs']), labeled_mask,
        query_size)
    return selected, pseudo.at[selected].set(-1)

  def init(key, inputs, labeled_mask):
    del key, inputs
    return jnp.full(labeled_mask.shape, -1, jnp.int32)

  def train_set(pseudo, rows):
    use = (pseudo >= 0) & ~rows.mask
    return rows._replace(mask=rows.mask | use,
                         labels=jnp.where(use, pseudo, rows.labels))

  return acquisition.Strategy('pseudo', ('log_probs',), select, init=init,
                              train_set=train_set)


def test_the_training_set_hook_waits_for_the_first_query(tiny_config):
  """Round 0's strategy state is a zeros template (pseudo-label 0 for all)."""
  dataset = make_blobs_dataset(num_pool=120)
  exp, data = loop.setup(tiny_config, dataset,
                         strategy=_pseudo_labeling_strategy(30))
  state = loop.init_state(exp, data, lambda idx: dataset.pool_labels[idx])
  assert not np.asarray(state.strategy_state).any()
  rows = rounds.train_set(exp, state)
  np.testing.assert_array_equal(rows.mask, state.labeled_mask)
  np.testing.assert_array_equal(rows.labels, state.labels)
  later = rounds.train_set(exp, state._replace(round=state.round + 1))
  assert np.asarray(later.mask).all()


def test_pseudo_labels_reach_training_but_never_the_budget(tiny_config,
                                                           tmp_path):
  dataset = make_blobs_dataset(num_pool=120)
  strategy = _pseudo_labeling_strategy(30)
  exp, data, _, _, selected, state = _round(tiny_config, dataset, strategy)
  pseudo = np.asarray(state.strategy_state)
  assert (pseudo >= 0).sum() == 30 and not np.any(
      np.asarray(state.labeled_mask)[pseudo >= 0])
  rows = rounds.train_set(exp, state)
  assert int(rows.mask.sum()) == 20 + 10 + 30
  plain = rounds.train_round(exp, data, state._replace(
      strategy_state=jnp.full_like(state.strategy_state, -1)))
  extended = rounds.train_round(exp, data, state)
  assert not np.allclose(_leaves(plain.variables), _leaves(extended.variables))
  summary = loop.run(tiny_config, str(tmp_path), dataset=dataset,
                     strategy=strategy)
  assert summary['num_labeled'] == [20, 30, 40, 50]


def _aux_loss_strategy():
  """An auxiliary head predicting each example's loss from the embedding."""

  def init(key, output):
    return {'w': 0.01 * jax.random.normal(key, (output.embedding.shape[-1],)),
            'b': jnp.zeros(())}

  def loss(aux_params, output, labels, weights, unlabeled_output, info):
    del unlabeled_output, info
    target = optax.softmax_cross_entropy_with_integer_labels(
        output.logits, jnp.maximum(labels, 0))
    predicted = output.embedding @ aux_params['w'] + aux_params['b']
    return jnp.sum(weights * (predicted - jax.lax.stop_gradient(target))**2
                   ) / jnp.maximum(jnp.sum(weights), 1.0)

  def select(key, inputs, labeled_mask, query_size):
    del key
    aux = inputs['aux_params']
    predicted = inputs['embeddings'] @ aux['w'] + aux['b']
    return acquisition.top_k_unlabeled(predicted, labeled_mask, query_size)

  return acquisition.stateless(
      'predicted_loss', ('embeddings', 'aux_params'), select,
      objective=train.Objective(init=init, tx=optax.adam(1e-2), loss=loss))


def test_auxiliary_objective_changes_training_and_reaches_the_query(
    tiny_config):
  dataset = make_blobs_dataset(num_pool=120)
  tiny_config.train_loop = 'jit'
  exp, data, state, trained, selected, _ = _round(
      tiny_config, dataset, _aux_loss_strategy())
  plain_exp, _ = loop.setup(tiny_config, dataset)
  plain = rounds.train_round(plain_exp, data, state)
  assert not np.allclose(_leaves(plain.variables), _leaves(trained.variables))
  initial = exp.trainer.init_state(jax.random.key(0), trained.variables,
                                   data.pool_images).aux_params
  assert not np.allclose(trained.aux_params['b'], initial['b'])
  embeddings = np.asarray(rounds.predictions(
      exp, None, trained, data.pool_images, state.labeled_mask,
      ('embeddings',))['embeddings'])
  predicted = embeddings @ np.asarray(trained.aux_params['w']) + float(
      trained.aux_params['b'])
  predicted[np.asarray(state.labeled_mask)] = -np.inf
  np.testing.assert_array_equal(
      np.sort(selected), np.sort(np.argsort(-predicted, kind='stable')[:10]))


def _discriminator_strategy():
  """A logistic labeled-vs-unlabeled classifier trained at query time."""

  def select(key, inputs, labeled_mask, query_size):
    x = inputs['images'].reshape(labeled_mask.shape[0], -1)
    target = (~labeled_mask).astype(jnp.float32)

    def loss_fn(params, key, rows, weights):
      del key
      logits = x[rows] @ params['w'] + params['b']
      losses = optax.sigmoid_binary_cross_entropy(logits, target[rows])
      return jnp.sum(weights * losses) / jnp.sum(weights)

    params = train.fit_on_mask(
        key, loss_fn, {'w': jnp.zeros(x.shape[1]), 'b': jnp.zeros(())},
        optax.adam(0.05), jnp.ones_like(labeled_mask), batch_size=32,
        num_epochs=30)
    return acquisition.top_k_unlabeled(x @ params['w'] + params['b'],
                                       labeled_mask, query_size)

  return acquisition.stateless('discriminator', ('images',), select)


def test_query_time_discriminator_picks_the_unlabeled_only_region(
    tiny_config):
  rng = np.random.default_rng(0)
  # Pool: 100 points around -3 and 100 around +3 (first coordinate).
  images = rng.normal(0, 1, (200, 4, 4, 1)).astype(np.float32)
  images[:100, 0, 0, 0] -= 3.0
  images[100:, 0, 0, 0] += 3.0
  labels = (np.arange(200) >= 100).astype(np.int32)
  dataset = make_blobs_dataset(num_pool=200)._replace(
      pool_images=images, pool_labels=labels, num_classes=2,
      test_images=images[::10], test_labels=labels[::10])
  strategy = _discriminator_strategy()
  exp, data = loop.setup(tiny_config, dataset, strategy=strategy)
  state = loop.init_state(exp, data, lambda idx: labels[idx])
  # Label 20 points of the left blob only.
  mask = np.zeros(200, bool)
  mask[:20] = True
  state = state._replace(labeled_mask=jnp.asarray(mask),
                         labels=jnp.asarray(np.where(mask, labels, -1)))
  fns = loop.RoundFns(exp)
  selected, _ = fns.query(data, fns.train(data, state), state)
  assert np.all(np.asarray(selected) >= 100)


def _gradient_norm_strategy(chunk_size=7):
  """Score: ‖∂ max_c logit_c / ∂x‖₂, chunked over the pool."""

  def scores(logits_fn, images):
    top = lambda x: jnp.max(logits_fn(x[None])[0])
    grads = chunking.map_masked(
        lambda rows: (jax.vmap(jax.grad(top))(images[rows]),),
        images.shape[0], chunk_size)[0]
    return jnp.sqrt(jnp.sum(grads.reshape(images.shape[0], -1)**2, -1))

  def select(key, inputs, labeled_mask, query_size):
    del key
    return acquisition.top_k_unlabeled(
        scores(inputs['logits_fn'], inputs['images']), labeled_mask,
        query_size)

  return acquisition.stateless('gradient_norm', ('logits_fn', 'images'),
                               select), scores


def test_input_gradient_score_matches_finite_differences(tiny_config):
  dataset = make_blobs_dataset(num_pool=40)
  tiny_config.initial_size = 10
  strategy, scores = _gradient_norm_strategy()
  exp, data, state, trained, selected, _ = _round(tiny_config, dataset,
                                                  strategy)
  inputs = rounds.predictions(exp, None, trained, data.pool_images,
                              state.labeled_mask, ('logits_fn', 'images'))
  got = np.asarray(scores(inputs['logits_fn'], inputs['images']))
  # Central differences in float64 numpy on a float64 copy of the MLP.
  logits_fn = inputs['logits_fn']
  images = np.asarray(dataset.pool_images, np.float64)
  eps = 1e-3
  for i in (0, 13, 39):
    c = int(np.argmax(logits_fn(jnp.asarray(images[i:i + 1],
                                            jnp.float32))[0]))
    grad = np.zeros(images[i].size)
    for d in range(images[i].size):
      step = np.zeros(images[i].size)
      step[d] = eps
      up = (images[i].ravel() + step).reshape(1, 4, 4, 1)
      down = (images[i].ravel() - step).reshape(1, 4, 4, 1)
      grad[d] = (float(logits_fn(jnp.asarray(up, jnp.float32))[0, c]) -
                 float(logits_fn(jnp.asarray(down, jnp.float32))[0, c])
                 ) / (2 * eps)
    np.testing.assert_allclose(got[i], np.linalg.norm(grad), rtol=2e-2)
  unlabeled = ~np.asarray(state.labeled_mask)
  best = np.flatnonzero(unlabeled)[np.argsort(-got[unlabeled],
                                              kind='stable')[:10]]
  np.testing.assert_array_equal(np.sort(selected), np.sort(best))
