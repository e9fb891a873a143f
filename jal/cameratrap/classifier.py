"""The classifiers on top of images and embeddings: the detector and the head.

- The *head* is seed 001's "simple neural network with one hidden layer of
  100 neurons" on the 256-d embeddings, trained from scratch on the labeled
  set after every query.
- The *detector* stands in for the seed's pre-trained animal detector: a
  binary classifier (animal or empty) trained on the source side only; a
  frame enters the pool iff P(animal) ≥ the threshold (0.9 in the seed).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jal import chunking
from jal import models
from jal import train
from jal.cameratrap import embedder as embedder_lib
from jal.models.mlp import MLP


def head_network(num_classes: int, hidden_size: int) -> models.Model:
  """The MLP `D → hidden_size (ReLU) → num_classes`."""
  return models.from_nnx(lambda shape, rngs: MLP(
      int(np.prod(shape)), num_classes, hidden_sizes=(hidden_size,),
      dropout_rate=0.0, rngs=rngs))


@functools.partial(jax.jit, static_argnames=(
    'num_classes', 'hidden_size', 'batch_size', 'num_steps', 'learning_rate'))
def fit_head(key: jax.Array, features: jax.Array, labels: jax.Array,
             mask: jax.Array, *, num_classes: int, hidden_size: int,
             batch_size: int, num_steps: int,
             learning_rate: float) -> models.Variables:
  """A fresh head trained with Adam on the rows where `mask`.

  A fixed number of steps, each on `batch_size` labeled rows drawn
  uniformly with replacement, so that 40 labels get as much training as
  4000 and the program compiles once for every labeled count.

  Args:
    key: PRNG key (initialization and batches).
    features: [N, D] float32.
    labels: [N] int32; read only where `mask`.
    mask: [N] bool, the labeled rows (at least one).
    num_classes: C.
    hidden_size: width of the hidden layer.
    batch_size: rows per step.
    num_steps: optimizer steps.
    learning_rate: Adam's step size.

  Returns:
    The head's `Variables`.
  """
  net = head_network(num_classes, hidden_size)
  init_key, fit_key = jax.random.split(key)
  variables = net.init(init_key, features.shape[1:])
  tx = optax.adam(learning_rate)
  # The labeled rows first, in index order; a step draws positions below
  # their count.
  labeled_rows = jnp.argsort(~mask, stable=True)
  count = jnp.sum(mask, dtype=jnp.int32)

  def loss(params, rows):
    logits = net.apply(variables._replace(params=params), features[rows]).logits
    return train.cross_entropy(logits, labels[rows], jnp.ones(rows.shape))

  def step(i, carry):
    params, opt_state = carry
    positions = jax.random.randint(jax.random.fold_in(fit_key, i),
                                   (batch_size,), 0, count)
    rows = labeled_rows[positions]
    updates, opt_state = tx.update(jax.grad(loss)(params, rows), opt_state,
                                   params)
    return optax.apply_updates(params, updates), opt_state

  params, _ = jax.lax.fori_loop(0, num_steps, step,
                                (variables.params, tx.init(variables.params)))
  return variables._replace(params=params)


@functools.partial(jax.jit, static_argnames=('num_classes', 'hidden_size',
                                             'chunk_size'))
def head_log_probs(variables: models.Variables, features: jax.Array, *,
                   num_classes: int, hidden_size: int,
                   chunk_size: int) -> jax.Array:
  """The head's log-probabilities, [N, C], in fixed-size chunks."""
  net = head_network(num_classes, hidden_size)
  return chunking.map_rows(
      lambda x: jax.nn.log_softmax(net.apply(variables, x).logits),
      [features], chunk_size)


def standardize(images: np.ndarray, mean: float, std: float) -> np.ndarray:
  """Images shifted and scaled by the source side's pixel statistics."""
  return ((images - mean) / std).astype(np.float32)


@functools.partial(jax.jit, static_argnames=('chunk_size',))
def animal_probability(params: embedder_lib.Params, images: jax.Array, *,
                       chunk_size: int) -> jax.Array:
  """The detector's P(animal) for every image, [N] (class 1 of its head).

  Args:
    params: the detector, an embedder network with a 2-way cross-entropy head.
    images: [N, H, W, C] float32, standardized.
    chunk_size: rows per forward pass.
  """
  net = embedder_lib.network(params.head['w'].shape[0])

  def prob(x):
    embedding = net.apply(params.variables, x).embedding
    logits = jax.nn.relu(embedding) @ params.head['w'] + params.head['b']
    return jax.nn.softmax(logits)[:, 1]

  return chunking.map_rows(prob, [images], chunk_size)


def detection_stats(is_animal: np.ndarray, detected: np.ndarray) -> dict:
  """The seed's Table 1 figures for a detector's decisions.

  Args:
    is_animal: [N] bool ground truth.
    detected: [N] bool, the detector's "animal" decisions.

  Returns:
    accuracy, precision and recall of "animal" (and of "empty"), and the
    confusion counts `{true}_as_{decided}`.
  """
  is_animal = np.asarray(is_animal, bool)
  detected = np.asarray(detected, bool)
  counts = dict(
      animal_as_animal=int(np.sum(is_animal & detected)),
      animal_as_empty=int(np.sum(is_animal & ~detected)),
      empty_as_animal=int(np.sum(~is_animal & detected)),
      empty_as_empty=int(np.sum(~is_animal & ~detected)))

  def ratio(a, b):
    return float(a / b) if b else float('nan')

  return dict(
      accuracy=ratio(counts['animal_as_animal'] + counts['empty_as_empty'],
                     is_animal.size),
      precision=ratio(counts['animal_as_animal'], int(np.sum(detected))),
      recall=ratio(counts['animal_as_animal'], int(np.sum(is_animal))),
      empty_precision=ratio(counts['empty_as_empty'], int(np.sum(~detected))),
      empty_recall=ratio(counts['empty_as_empty'], int(np.sum(~is_animal))),
      **counts)
