"""Compile-once training on a masked pool, and chunked evaluation.

The labeled set is a boolean mask over the pool, so every array has a shape
fixed by the pool size and the batch size. Each epoch draws a keyed permutation
that puts the labeled indices first; step `s` takes positions
`s*B … s*B+B-1` of it modulo the labeled count, and weights the positions past
the count by zero. The number of steps depends on the labeled count, but no
shape does, so `Trainer` compiles once per experiment whatever the round.
"""

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jal import errors
from jal import models

Augment = Callable[[jax.Array, jax.Array], jax.Array]


class TrainState(NamedTuple):
  """Everything that training updates."""
  variables: models.Variables
  opt_state: Any
  step: jax.Array  # [] int32


def make_optimizer(name: str = 'adam', learning_rate: float = 1e-3,
                   momentum: float = 0.9,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam (DeepAL+'s default) or SGD with momentum (DeepAL's MNIST protocol)."""
  if name == 'adam':
    tx = optax.adam(learning_rate)
  elif name == 'sgd':
    tx = optax.sgd(learning_rate, momentum=momentum or None)
  else:
    raise errors.UnknownNameError(
        f"Unknown optimizer {name!r}. Valid names: adam, sgd.")
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  return tx


def labeled_first_order(key: jax.Array, labeled_mask: jax.Array) -> jax.Array:
  """A random permutation of the pool with the labeled indices first.

  Args:
    key: PRNG key.
    labeled_mask: [N] bool.

  Returns:
    [N] int32: positions `0 … sum(labeled_mask)-1` hold the labeled indices in
    a uniformly random order.
  """
  noise = jax.random.uniform(key, labeled_mask.shape)
  return jnp.argsort(jnp.where(labeled_mask, noise, 2.0)).astype(jnp.int32)


def cross_entropy(logits: jax.Array, labels: jax.Array,
                  weights: jax.Array) -> jax.Array:
  """Weighted mean softmax cross-entropy; logits [B, C], labels/weights [B]."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.sum(weights * losses) / jnp.maximum(jnp.sum(weights), 1.0)


class Trainer:
  """Jitted training and prediction for one model, optimizer and batch size.

  Build one per experiment: its jitted functions are traced on first use and
  reused by every later round.

  Attributes:
    graphdef: the model's static structure (from `models.init`).
    tx: the optax optimizer.
    batch_size: minibatch size B.
    augment: optional `augment(key, images [B, H, W, C]) -> images`, applied
      inside the step.
    in_jit_loop: run all epochs inside one jitted `lax.fori_loop` (fewer
      dispatches: best on accelerators) instead of a Python loop over a
      jitted step (best on a small CPU, where XLA runs the step body faster
      outside a loop). Defaults to True on every backend but CPU.
    eval_chunk: chunk size for prediction.
  """

  def __init__(self, graphdef, tx: optax.GradientTransformation, *,
               batch_size: int, augment: Augment | None = None,
               in_jit_loop: bool | None = None, eval_chunk: int = 1000):
    self.graphdef = graphdef
    self.tx = tx
    self.batch_size = batch_size
    self.augment = augment
    if in_jit_loop is None:
      in_jit_loop = jax.default_backend() != 'cpu'
    self.in_jit_loop = in_jit_loop
    self.eval_chunk = eval_chunk
    # Step s of an epoch: its key is derived inside jit, sparing a dispatch.
    self.step = jax.jit(
        lambda state, epoch_key, s, images, labels, order, num_labeled:
        self._step(state, jax.random.fold_in(epoch_key, s + 1), images,
                   labels, order, s * self.batch_size, num_labeled))
    self.epochs = jax.jit(self._epochs)
    self.order = jax.jit(labeled_first_order)
    self.predict = jax.jit(self._predict)
    self.init_state = jax.jit(self._init_state)
    # Ensembles: the same functions vmapped over stacked member states.
    self.ensemble_step = jax.jit(jax.vmap(
        self._step, in_axes=(0, 0, None, None, 0, None, None)))
    self.ensemble_epochs = jax.jit(jax.vmap(
        self._epochs, in_axes=(0, 0, None, None, None, None)))
    self.ensemble_order = jax.jit(jax.vmap(labeled_first_order,
                                           in_axes=(0, None)))
    self.ensemble_init_state = jax.jit(jax.vmap(self._init_state))
    self.fold_in = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))

  def _init_state(self, variables: models.Variables) -> TrainState:
    return TrainState(variables, self.tx.init(variables.params),
                      jnp.zeros((), jnp.int32))

  def _step(self, state: TrainState, key: jax.Array, images: jax.Array,
            labels: jax.Array, order: jax.Array, start: jax.Array,
            num_labeled: jax.Array):
    """One optimizer step on positions `start … start+B-1` of `order`."""
    positions = start + jnp.arange(self.batch_size)
    batch = order[positions % jnp.maximum(num_labeled, 1)]
    weights = (positions < num_labeled).astype(jnp.float32)
    aug_key, dropout_key = jax.random.split(key)
    batch_images = images[batch]
    if self.augment is not None:
      batch_images = self.augment(aug_key, batch_images)

    def loss_fn(params):
      logits, _, variables = models.apply(
          self.graphdef, state.variables._replace(params=params),
          batch_images, train=True, dropout_key=dropout_key)
      return cross_entropy(logits, labels[batch], weights), variables

    (loss, variables), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.variables.params)
    updates, opt_state = self.tx.update(grads, state.opt_state,
                                        state.variables.params)
    params = optax.apply_updates(state.variables.params, updates)
    return TrainState(variables._replace(params=params), opt_state,
                      state.step + 1), loss

  def _epochs(self, state: TrainState, key: jax.Array, images: jax.Array,
              labels: jax.Array, labeled_mask: jax.Array,
              num_epochs: jax.Array):
    """All epochs inside jit; the step count is a traced value."""
    num_labeled = jnp.sum(labeled_mask, dtype=jnp.int32)
    steps_per_epoch = (num_labeled + self.batch_size - 1) // self.batch_size

    def epoch(e, state):
      epoch_key = jax.random.fold_in(key, e)
      order = labeled_first_order(epoch_key, labeled_mask)

      def step(s, state):
        state, _ = self._step(state, jax.random.fold_in(epoch_key, s + 1),
                              images, labels, order, s * self.batch_size,
                              num_labeled)
        return state

      return jax.lax.fori_loop(0, steps_per_epoch, step, state)

    return jax.lax.fori_loop(0, num_epochs, epoch, state)

  def fit(self, key: jax.Array, variables: models.Variables,
          images: jax.Array, labels: jax.Array, labeled_mask: jax.Array,
          num_epochs: int) -> TrainState:
    """Trains from `variables` on the labeled part of the pool.

    Args:
      key: PRNG key for the minibatch order, augmentation and dropout.
      variables: initial model variables.
      images: [N, H, W, C] float32, the whole pool (on device).
      labels: [N] int32; only labeled positions are read.
      labeled_mask: [N] bool.
      num_epochs: passes over the labeled set.

    Returns:
      The trained `TrainState`. Both loop modes give the same result.
    """
    state = self.init_state(variables)
    if self.in_jit_loop:
      return self.epochs(state, key, images, labels, labeled_mask, num_epochs)
    num_labeled = int(jnp.sum(labeled_mask))
    for e in range(num_epochs):
      epoch_key = jax.random.fold_in(key, e)
      order = self.order(epoch_key, labeled_mask)
      for s in range(math.ceil(num_labeled / self.batch_size)):
        state, _ = self.step(state, epoch_key, s, images, labels, order,
                             num_labeled)
    return state

  def fit_ensemble(self, key: jax.Array, variables: models.Variables,
                   images: jax.Array, labels: jax.Array,
                   labeled_mask: jax.Array, num_epochs: int) -> TrainState:
    """Trains M ensemble members at once, vmapped over stacked variables.

    Member m is trained exactly as `fit(split(key, M)[m], member m, ...)`
    would train it (own minibatch order, augmentation and dropout), but all
    members advance together in each jitted call.

    Args:
      key: PRNG key, split into one per member.
      variables: member variables stacked along a leading axis of length M.
      images, labels, labeled_mask, num_epochs: as for `fit`.

    Returns:
      The members' `TrainState`s, stacked.
    """
    num_members = jax.tree.leaves(variables)[0].shape[0]
    keys = jax.random.split(key, num_members)
    state = self.ensemble_init_state(variables)
    if self.in_jit_loop:
      return self.ensemble_epochs(state, keys, images, labels, labeled_mask,
                                  num_epochs)
    num_labeled = int(jnp.sum(labeled_mask))
    for e in range(num_epochs):
      epoch_keys = self.fold_in(keys, e)
      orders = self.ensemble_order(epoch_keys, labeled_mask)
      for s in range(math.ceil(num_labeled / self.batch_size)):
        state, _ = self.ensemble_step(state, self.fold_in(epoch_keys, s + 1),
                                      images, labels, orders,
                                      s * self.batch_size, num_labeled)
    return state

  def _predict(self, variables: models.Variables, images: jax.Array,
               include_mask: jax.Array | None = None):
    """Logits [N, C] and embeddings [N, D] in fixed-size chunks."""
    return predict(self.graphdef, variables, images, chunk_size=self.eval_chunk,
                   include_mask=include_mask)

  def accuracy(self, variables: models.Variables, images: jax.Array,
               labels: jax.Array) -> float:
    logits, _ = self.predict(variables, images)
    return float(jnp.mean(jnp.argmax(logits, -1) == labels))


def predict(graphdef, variables: models.Variables, images: jax.Array, *,
            chunk_size: int, dropout_key: jax.Array | None = None,
            include_mask: jax.Array | None = None):
  """Evaluation-mode forward pass over many images in fixed-size chunks.

  Args:
    graphdef: the model's structure.
    variables: its arrays.
    images: [N, H, W, C] float32.
    chunk_size: images per forward pass.
    dropout_key: if given, dropout is active with a distinct key per chunk
      (one MC-dropout pass over all images).
    include_mask: [N] bool; if given, only the chunks needed to cover these
      images are run (a loop with a traced trip count, so the cost follows
      the mask while shapes stay fixed). Rows of other images are zero unless
      they shared a chunk with included ones.

  Returns:
    logits [N, C] float32 and embeddings [N, D] float32.
  """
  n = images.shape[0]
  chunk_size = min(chunk_size, n)
  num_chunks = -(-n // chunk_size)
  if include_mask is None:
    order = jnp.arange(num_chunks * chunk_size) % n
    num_needed = num_chunks
  else:
    order = jnp.argsort(~include_mask, stable=True).astype(jnp.int32)
    order = jnp.concatenate([order, order[:num_chunks * chunk_size - n]])
    num_needed = (jnp.sum(include_mask) + chunk_size - 1) // chunk_size

  def forward(index):
    rows = jax.lax.dynamic_slice(order, (index * chunk_size,), (chunk_size,))
    key = (None if dropout_key is None
           else jax.random.fold_in(dropout_key, index))
    logits, embedding, _ = models.apply(graphdef, variables, images[rows],
                                        train=False, dropout_key=key)
    return rows, logits, embedding

  def body(index, outputs):
    rows, logits, embedding = forward(index)
    return outputs[0].at[rows].set(logits), outputs[1].at[rows].set(embedding)

  _, logits, embedding = jax.eval_shape(forward, 0)
  outputs = (jnp.zeros((n, logits.shape[-1]), logits.dtype),
             jnp.zeros((n, embedding.shape[-1]), embedding.dtype))
  return jax.lax.fori_loop(0, num_needed, body, outputs)
