"""Model output shapes, dropout switches and batch-norm statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import linen
from flax import nnx

from jal import errors
from jal import loop
from jal import models


@pytest.mark.parametrize('name, image_shape, embedding_size', [
    ('mlp', (8, 8, 1), 128),
    ('lenet', (28, 28, 1), 50),
    ('bayesian_cnn', (28, 28, 1), 128),
    ('gal_cnn', (28, 28, 1), 128),
    ('resnet18', (32, 32, 3), 512),
    ('resnet18_imagenet_stem', (28, 28, 1), 512),
])
def test_output_shapes_and_dropout(name, image_shape, embedding_size):
  model = models.get(name, 7, dropout_rate=0.5)
  variables = model.init(jax.random.key(0), image_shape)
  images = jax.random.normal(jax.random.key(1), (3, *image_shape))
  logits, embedding, features, _ = model.apply(variables, images)
  assert logits.shape == (3, 7) and embedding.shape == (3, embedding_size)
  assert features and all(f.shape[0] == 3 for f in features)
  again = model.apply(variables, images).logits
  np.testing.assert_array_equal(logits, again)
  dropped = model.apply(variables, images, key=jax.random.key(2)).logits
  assert not np.allclose(dropped, logits)


def test_resnet_train_mode_updates_batch_stats_only_when_training():
  model = models.get('resnet18', 4, dropout_rate=0.0)
  variables = model.init(jax.random.key(0), (16, 16, 3))
  images = jax.random.normal(jax.random.key(1), (4, 16, 16, 3)) + 2.0
  after_eval = model.apply(variables, images, train=False).state
  after_train = model.apply(variables, images, train=True).state
  before = jax.tree.leaves(variables.state)
  assert all(np.array_equal(a, b)
             for a, b in zip(before, jax.tree.leaves(after_eval)))
  assert any(not np.array_equal(a, b)
             for a, b in zip(before, jax.tree.leaves(after_train)))


def test_lenet_matches_deepal_parameter_count():
  # DeepAL's Net1: 260 + 5020 + 16050 + 510 parameters.
  variables = models.get('lenet', 10, 0.5).init(jax.random.key(0),
                                                (28, 28, 1))
  assert sum(x.size for x in jax.tree.leaves(variables.params)) == 21840


@pytest.mark.parametrize('name, count', [
    # BatchBALD's BayesianNet: 832 + 51264 + 131200 + 1290.
    ('bayesian_cnn', 184586),
    # Gal et al.'s Keras CNN (4x4 kernels, 2x2 pool): 544 + 16416 + 495744
    # + 1290.
    ('gal_cnn', 513994),
])
def test_paper_networks_match_their_parameter_counts(name, count):
  variables = models.get(name, 10, 0.5).init(jax.random.key(0), (28, 28, 1))
  assert sum(x.size for x in jax.tree.leaves(variables.params)) == count


def test_conv_dropout_of_bayesian_cnn_drops_whole_feature_maps():
  model = models.BayesianCNN(1, 10, rngs=nnx.Rngs(0))
  images = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
  stage1, _ = model(images, dropout_key=jax.random.key(3))[2]
  # A dropped map is zero at every pixel after the ReLU, for each image.
  zero_maps = np.all(np.asarray(stage1) == 0, axis=(1, 2))
  assert zero_maps.any() and not zero_maps.all()


def test_unknown_model_lists_valid_names():
  with pytest.raises(errors.UnknownNameError, match='lenet'):
    models.get('vgg', 10, 0.1)


# Bring your own model: a Linen module and plain functions run the loop.


class _LinenNet(linen.Module):
  """Dense → ReLU [embedding] → dropout → Dense, with batch norm."""

  @linen.compact
  def __call__(self, x, train: bool = False, deterministic: bool = True):
    x = x.reshape(x.shape[0], -1)
    x = linen.BatchNorm(use_running_average=not train)(x)
    embedding = linen.relu(linen.Dense(32)(x))
    x = linen.Dropout(0.3, deterministic=deterministic)(embedding)
    return linen.Dense(10)(x), embedding, (embedding,)


def _plain_model():
  def init(key, input_shape):
    size = int(np.prod(input_shape))
    k1, k2 = jax.random.split(key)
    return {'hidden': {'kernel': jax.random.normal(k1, (size, 32)) / 8,
                       'bias': jnp.zeros(32)},
            'head': {'kernel': jax.random.normal(k2, (32, 10)) / 6,
                     'bias': jnp.zeros(10)}}

  def apply(params, x, key=None):
    h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params['hidden']['kernel'] +
                    params['hidden']['bias'])
    dropped = h
    if key is not None:
      keep = jax.random.bernoulli(key, 0.7, h.shape)
      dropped = jnp.where(keep, h / 0.7, 0.0)
    return dropped @ params['head']['kernel'] + params['head']['bias'], h

  return models.from_function(init, apply)


@pytest.mark.parametrize('kind', ['linen', 'function'])
@pytest.mark.parametrize('strategy', ['entropy', 'bald', 'badge', 'kcenter'])
def test_user_models_run_two_rounds(tiny_config, tmp_path, kind, strategy):
  model = (models.from_linen(_LinenNet()) if kind == 'linen'
           else _plain_model())
  tiny_config.strategy = strategy
  tiny_config.num_rounds = 2
  tiny_config.posterior_samples = 4
  tiny_config.num_epochs = 30  # 20 labels: one step an epoch
  summary = loop.run(tiny_config, str(tmp_path), model=model)
  assert summary['num_labeled'] == [20, 30, 40]
  assert summary['final_accuracy'] > 0.3  # digits, 10 classes: chance 0.1


def test_linen_wrapper_dropout_and_batch_norm_switches():
  model = models.from_linen(_LinenNet())
  variables = model.init(jax.random.key(0), (4, 4, 1))
  assert 'batch_stats' in variables.state
  x = jax.random.normal(jax.random.key(1), (6, 4, 4, 1)) + 1.0
  eval_out = model.apply(variables, x)
  np.testing.assert_array_equal(eval_out.logits, model.apply(variables,
                                                             x).logits)
  assert not np.allclose(model.apply(variables, x, key=jax.random.key(2)
                                     ).logits, eval_out.logits)
  trained = model.apply(variables, x, train=True)
  assert not np.allclose(trained.state['batch_stats']['BatchNorm_0']['mean'],
                         variables.state['batch_stats']['BatchNorm_0']['mean'])
  assert len(eval_out.features) == 1


def test_model_returning_too_much_is_a_clear_error():
  model = models.from_function(lambda key, shape: {},
                               lambda params, x: (x, x, (), x))
  with pytest.raises(errors.ConfigError, match='must return logits'):
    model.apply(model.init(jax.random.key(0), (2,)), jnp.zeros((1, 2)))
