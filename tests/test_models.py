"""Model output shapes, dropout switches and batch-norm statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import errors
from jal import models


@pytest.mark.parametrize('name, image_shape, embedding_size', [
    ('mlp', (8, 8, 1), 128),
    ('lenet', (28, 28, 1), 50),
    ('resnet18', (32, 32, 3), 512),
    ('resnet18_imagenet_stem', (28, 28, 1), 512),
])
def test_output_shapes_and_dropout(name, image_shape, embedding_size):
  graphdef, variables = models.init(jax.random.key(0), name, image_shape, 7,
                                    dropout_rate=0.5)
  images = jax.random.normal(jax.random.key(1), (3, *image_shape))
  logits, embedding, _ = models.apply(graphdef, variables, images)
  assert logits.shape == (3, 7) and embedding.shape == (3, embedding_size)
  again, _, _ = models.apply(graphdef, variables, images)
  np.testing.assert_array_equal(logits, again)
  dropped, _, _ = models.apply(graphdef, variables, images,
                               dropout_key=jax.random.key(2))
  assert not np.allclose(dropped, logits)


def test_resnet_train_mode_updates_batch_stats_only_when_training():
  graphdef, variables = models.init(jax.random.key(0), 'resnet18',
                                    (16, 16, 3), 4, dropout_rate=0.0)
  images = jax.random.normal(jax.random.key(1), (4, 16, 16, 3)) + 2.0
  _, _, after_eval = models.apply(graphdef, variables, images, train=False)
  _, _, after_train = models.apply(graphdef, variables, images, train=True)
  before = jax.tree.leaves(variables.batch_stats)
  assert all(np.array_equal(a, b)
             for a, b in zip(before, jax.tree.leaves(after_eval.batch_stats)))
  assert any(not np.array_equal(a, b)
             for a, b in zip(before, jax.tree.leaves(after_train.batch_stats)))


def test_lenet_matches_deepal_parameter_count():
  # DeepAL's Net1: 260 + 5020 + 16050 + 510 parameters.
  _, variables = models.init(jax.random.key(0), 'lenet', (28, 28, 1), 10, 0.5)
  assert sum(x.size for x in jax.tree.leaves(variables.params)) == 21840


def test_unknown_model_lists_valid_names():
  with pytest.raises(errors.UnknownNameError, match='lenet'):
    models.init(jax.random.key(0), 'vgg', (8, 8, 1), 10, 0.1)
