"""Compile-once training on a masked pool, with the training hooks.

The training set is a boolean mask over the pool, so every array has a shape
fixed by the pool size and the batch size. Each epoch draws a keyed
permutation that puts the training rows first; step `s` takes positions
`s*B … s*B+B-1` of it modulo the row count, and weights the positions past
the count by zero. The number of steps depends on the count, but no shape
does, so a `Trainer` compiles once per experiment whatever the round.

Two hooks reach into the task model's training:

- a `TrainSet` may hold pseudo-labelled pool rows (in its mask, not in the
  oracle's labeled set) and a fixed-size buffer of extra rows (e.g.
  adversarial copies), drawn from one index space `[0, N + E)`;
- an `Objective` adds auxiliary parameters with their own optimizer and a
  loss over the model's `Output` (features included) of the labeled batch
  and, if it asks, of a batch drawn from the unlabeled pool; it may also ask
  that an epoch pass over the larger of the training and unlabeled sets,
  cycling the smaller (WAAL's epoch).

Early stopping (`Trainer(early_stopping_patience=P)`, as in the BatchBALD
authors' code, Kirsch et al. 2019): after every epoch the model (dropout off)
is scored by its number of correct predictions on a labeled validation set;
the state of the best epoch so far is kept (ties keep the earlier epoch) and
training ends after P epochs in a row without a strict improvement, or after
`num_epochs`. The epochs run as a `lax.while_loop` (inside jit) or a Python
loop over the same jitted update (outside), so both stop at the same epoch
(their parameters agree up to float rounding, as without early stopping);
a vmapped batch of seeds runs until its last seed stops, each seed's state
frozen from its own stop on. The epoch kept and the epochs run are
returned in `TrainState.best_epoch` and `TrainState.epochs_run`.

`fit_on_mask` is the same minibatch machinery for any loss, for strategies
that train their own networks at query time.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jal import errors
from jal import models
from jal import predict

Augment = Callable[[jax.Array, jax.Array], jax.Array]


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
        f'Unknown optimizer {name!r}. Valid names: adam, sgd.')
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  return tx


def labeled_first_order(key: jax.Array, mask: jax.Array) -> jax.Array:
  """A random permutation of `[0, len(mask))` with the masked rows first.

  Args:
    key: PRNG key.
    mask: [N] bool.

  Returns:
    [N] int32: positions `0 … sum(mask)-1` hold the masked rows in a
    uniformly random order.
  """
  noise = jax.random.uniform(key, mask.shape)
  return jnp.argsort(jnp.where(mask, noise, 2.0)).astype(jnp.int32)


def minibatch(order: jax.Array, start: jax.Array, count: jax.Array,
              batch_size: int, epoch_rows: jax.Array | None = None
              ) -> tuple[jax.Array, jax.Array]:
  """Rows `order[start … start+B-1]` taken modulo `count`, and their weights.

  Args:
    order: [N] int32, the rows to draw from first.
    start: [] int32 position of the batch's first row.
    count: [] int32 rows to draw from (positions wrap modulo `count`).
    batch_size: B.
    epoch_rows: [] int32 positions in the epoch; `count` if None, else more
      to cycle the rows.

  Returns:
    rows [B] int32 and weights [B] float32 (zero past `epoch_rows`).
  """
  positions = start + jnp.arange(batch_size)
  rows = order[positions % jnp.maximum(count, 1)]
  end = count if epoch_rows is None else epoch_rows
  return rows, (positions < end).astype(jnp.float32)


def cross_entropy(logits: jax.Array, labels: jax.Array,
                  weights: jax.Array) -> jax.Array:
  """Weighted mean softmax cross-entropy; logits [B, C], labels/weights [B]."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.sum(weights * losses) / jnp.maximum(jnp.sum(weights), 1.0)


class TrainSet(NamedTuple):
  """What the task model trains on.

  Attributes:
    mask: [N] bool pool rows to train on (oracle labels, plus any
      pseudo-labels a strategy adds).
    labels: [N] int32 their labels (-1 elsewhere).
    extra_images: [E, ...] extra rows (E may be 0).
    extra_labels: [E] int32.
    extra_mask: [E] bool, the extra rows in use.
  """
  mask: jax.Array
  labels: jax.Array
  extra_images: jax.Array | None = None
  extra_labels: jax.Array | None = None
  extra_mask: jax.Array | None = None


class StepInfo(NamedTuple):
  """Where training stands at one step, for an objective's schedule.

  Attributes:
    step: [] int32 optimizer steps taken so far in this fit.
    epoch: [] int32 the step's epoch, from 0.
    num_epochs: [] int32 epochs in this fit.
    num_train: [] int32 rows in the training set.
    num_unlabeled: [] int32 unlabeled pool rows.
    key: PRNG key of the step for the objective's own randomness.
  """
  step: jax.Array
  epoch: jax.Array
  num_epochs: jax.Array
  num_train: jax.Array
  num_unlabeled: jax.Array
  key: jax.Array


class Objective(NamedTuple):
  """An objective plugged into the task model's training (hook H4).

  The task model's optimizer sees only the gradient with respect to the task
  model's parameters and the objective's optimizer only that with respect to
  `aux_params`, so a two-player objective can be one loss in which
  `jax.lax.stop_gradient` separates what each player moves.

  Attributes:
    init: `init(key, output: models.Output) -> aux_params`, given the model's
      output on one batch.
    tx: the auxiliary parameters' optimizer.
    loss: `loss(aux_params, output, labels [B], weights [B], unlabeled_output,
      info: StepInfo) -> scalar` added to the cross-entropy;
      `unlabeled_output` is the model's output on a batch of unlabeled pool
      rows (None unless `unlabeled_batch`), `info` the step, epoch and set
      sizes (e.g. for a detach schedule) and a key.
    unlabeled_batch: draw an unlabeled batch at every step.
    epoch_covers_unlabeled: an epoch takes max(training rows, unlabeled
      rows) positions, cycling the smaller set, instead of the training
      rows only (WAAL's epoch over labeled/unlabeled pairs).
  """
  init: Callable[..., Any]
  tx: optax.GradientTransformation
  loss: Callable[..., jax.Array]
  unlabeled_batch: bool = False
  epoch_covers_unlabeled: bool = False


class TrainState(NamedTuple):
  """Everything that training updates.

  `best_epoch` and `epochs_run` are set by a fit with early stopping (both
  [] int32): the epochs trained by the state returned (the best on the
  validation set) and the epochs run before stopping; `()` otherwise.
  """
  variables: models.Variables
  opt_state: Any
  aux_params: Any
  aux_opt_state: Any
  step: jax.Array  # [] int32
  best_epoch: Any = ()
  epochs_run: Any = ()


class EarlyStopping(NamedTuple):
  """Early stopping's state between epochs.

  Attributes:
    best: the `TrainState` after the best epoch so far.
    best_correct: [] int32 its correct validation predictions (-1 before
      the first epoch).
    best_epoch: [] int32 epochs `best` was trained for.
    bad_epochs: [] int32 epochs in a row without a strict improvement.
    epochs_run: [] int32 epochs trained.
    done: [] bool out of patience.
  """
  best: TrainState
  best_correct: jax.Array
  best_epoch: jax.Array
  bad_epochs: jax.Array
  epochs_run: jax.Array
  done: jax.Array


def validation_correct(model: models.Model, variables: models.Variables,
                       images: jax.Array, labels: jax.Array,
                       chunk_size: int) -> jax.Array:
  """[] int32 correct argmax predictions (dropout off) on `images` [V, ...]."""
  logits, _ = predict.predict(model, variables, images,
                              chunk_size=min(chunk_size, images.shape[0]))
  return jnp.sum(jnp.argmax(logits, -1) == labels, dtype=jnp.int32)


def _gather(images, train_set: TrainSet, rows):
  """Images and labels of rows in `[0, N + E)`."""
  n = images.shape[0]
  pool_rows = jnp.minimum(rows, n - 1)
  batch = images[pool_rows]
  labels = train_set.labels[pool_rows]
  if train_set.extra_images is not None and train_set.extra_images.shape[0]:
    extra = jnp.clip(rows - n, 0, train_set.extra_images.shape[0] - 1)
    in_pool = (rows < n).reshape((-1,) + (1,) * (batch.ndim - 1))
    batch = jnp.where(in_pool, batch, train_set.extra_images[extra])
    labels = jnp.where(rows < n, labels, train_set.extra_labels[extra])
  return batch, labels


def _full_mask(train_set: TrainSet) -> jax.Array:
  if train_set.extra_mask is None or not train_set.extra_mask.shape[0]:
    return train_set.mask
  return jnp.concatenate([train_set.mask, train_set.extra_mask])


class Trainer:
  """Jitted training of one model, optimizer, batch size and objective.

  Build one per experiment: its jitted functions are traced on first use and
  reused by every later round.

  Attributes:
    model: the `models.Model`.
    tx: the optax optimizer.
    batch_size: minibatch size B.
    augment: optional `augment(key, images [B, ...]) -> images`, applied
      inside the step.
    in_jit_loop: run all epochs inside one jitted `lax.fori_loop` (fewer
      dispatches: best on accelerators, and what vmapped trials need)
      instead of a Python loop over a jitted step (best on a small CPU).
      Defaults to True on every backend but CPU.
    objective: optional `Objective`.
    early_stopping_patience: 0: train `num_epochs` epochs; P > 0: early
      stopping on the validation set given to `fit` (see the module
      docstring), `num_epochs` being the most.
    eval_chunk: rows per forward pass when scoring the validation set.
    epoch_samples: 0: an epoch is one pass over the training rows; E > 0:
      an epoch takes at least E positions, cycling the epoch's shuffled
      order of the training rows (a fixed-length epoch, as BatchBALD's
      code draws 5056 samples an epoch whatever the labeled set's size).
  """

  def __init__(self, model: models.Model, tx: optax.GradientTransformation,
               *, batch_size: int, augment: Augment | None = None,
               in_jit_loop: bool | None = None,
               objective: Objective | None = None,
               early_stopping_patience: int = 0, eval_chunk: int = 1000,
               epoch_samples: int = 0):
    self.model = model
    self.tx = tx
    self.batch_size = batch_size
    self.augment = augment
    if in_jit_loop is None:
      in_jit_loop = jax.default_backend() != 'cpu'
    self.in_jit_loop = in_jit_loop
    self.objective = objective
    self.early_stopping_patience = early_stopping_patience
    self.eval_chunk = eval_chunk
    self.epoch_samples = epoch_samples
    self._jit_step = jax.jit(self._epoch_step)
    self._jit_after_epoch = jax.jit(self._after_epoch)
    self._jit_order = jax.jit(self._orders)
    self._jit_init = jax.jit(self.init_state)

  def init_state(self, key: jax.Array, variables: models.Variables,
                 images: jax.Array) -> TrainState:
    """The state before the first step (auxiliary parameters initialised)."""
    aux_params = aux_opt_state = ()
    if self.objective is not None:
      output = self.model.apply(variables, images[:self.batch_size])
      aux_params = self.objective.init(key, output)
      aux_opt_state = self.objective.tx.init(aux_params)
    return TrainState(variables, self.tx.init(variables.params), aux_params,
                      aux_opt_state, jnp.zeros((), jnp.int32))

  def _orders(self, epoch_key, train_set: TrainSet):
    """The epoch's order of training rows (and of unlabeled pool rows)."""
    order = labeled_first_order(epoch_key, _full_mask(train_set))
    if self.objective is None or not self.objective.unlabeled_batch:
      return order, None
    _, unlabeled_key = jax.random.split(epoch_key)
    return order, labeled_first_order(unlabeled_key, ~train_set.mask)

  def _counts(self, train_set: TrainSet):
    """[] int32 training rows, unlabeled rows, and positions per epoch."""
    num_train = jnp.sum(_full_mask(train_set), dtype=jnp.int32)
    num_unlabeled = jnp.sum(~train_set.mask, dtype=jnp.int32)
    epoch_rows = num_train
    if self.objective is not None and self.objective.epoch_covers_unlabeled:
      epoch_rows = jnp.maximum(num_train, num_unlabeled)
    if self.epoch_samples:
      epoch_rows = jnp.where(num_train > 0,
                             jnp.maximum(epoch_rows, self.epoch_samples),
                             epoch_rows)
    return num_train, num_unlabeled, epoch_rows

  def _step(self, state: TrainState, key: jax.Array, images: jax.Array,
            train_set: TrainSet, orders, start: jax.Array, num_epochs):
    """One optimizer step on positions `start … start+B-1` of the order."""
    order, unlabeled_order = orders
    num_train, num_unlabeled, epoch_rows = self._counts(train_set)
    rows, weights = minibatch(order, start, num_train, self.batch_size,
                              epoch_rows)
    aug_key, dropout_key, unlabeled_key = jax.random.split(key, 3)
    batch, labels = _gather(images, train_set, rows)
    if self.augment is not None:
      batch = self.augment(aug_key, batch)
    unlabeled = None
    if self.objective is not None and self.objective.unlabeled_batch:
      unlabeled_rows, _ = minibatch(unlabeled_order, start, num_unlabeled,
                                    self.batch_size)
      unlabeled = images[unlabeled_rows]
    steps_per_epoch = jnp.maximum(
        (epoch_rows + self.batch_size - 1) // self.batch_size, 1)
    # fold_in leaves the three keys above, hence plain training, unchanged.
    info = StepInfo(state.step, state.step // steps_per_epoch,
                    jnp.asarray(num_epochs, jnp.int32), num_train,
                    num_unlabeled, jax.random.fold_in(key, 3))

    def loss_fn(params, aux_params):
      variables = state.variables._replace(params=params)
      output = self.model.apply(variables, batch, key=dropout_key, train=True)
      loss = cross_entropy(output.logits, jnp.maximum(labels, 0), weights)
      if self.objective is not None:
        unlabeled_output = None
        if unlabeled is not None:
          unlabeled_output = self.model.apply(
              variables._replace(state=output.state), unlabeled,
              key=unlabeled_key, train=True)
        loss += self.objective.loss(aux_params, output, labels, weights,
                                    unlabeled_output, info)
      return loss, output.state

    (loss, model_state), (grads, aux_grads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.variables.params,
                                               state.aux_params)
    updates, opt_state = self.tx.update(grads, state.opt_state,
                                        state.variables.params)
    params = optax.apply_updates(state.variables.params, updates)
    aux_params, aux_opt_state = state.aux_params, state.aux_opt_state
    if self.objective is not None:
      aux_updates, aux_opt_state = self.objective.tx.update(
          aux_grads, aux_opt_state, aux_params)
      aux_params = optax.apply_updates(aux_params, aux_updates)
    variables = models.Variables(params, model_state)
    return TrainState(variables, opt_state, aux_params, aux_opt_state,
                      state.step + 1), loss

  def _epoch_step(self, state, epoch_key, s, images, train_set, orders,
                  num_epochs):
    # Step s of an epoch; its key is derived inside jit, sparing a dispatch.
    return self._step(state, jax.random.fold_in(epoch_key, s + 1), images,
                      train_set, orders, s * self.batch_size, num_epochs)

  def _one_epoch(self, state, key, e, images, train_set, num_epochs):
    """Epoch `e`'s steps as one traceable loop."""
    _, _, epoch_rows = self._counts(train_set)
    steps_per_epoch = (epoch_rows + self.batch_size - 1) // self.batch_size
    epoch_key = jax.random.fold_in(key, e)
    orders = self._orders(epoch_key, train_set)

    def step(s, state):
      return self._epoch_step(state, epoch_key, s, images, train_set,
                              orders, num_epochs)[0]

    return jax.lax.fori_loop(0, steps_per_epoch, step, state)

  def epochs(self, state: TrainState, key: jax.Array, images: jax.Array,
             train_set: TrainSet, num_epochs: int) -> TrainState:
    """All epochs as one traceable loop; the step count is a traced value."""
    return jax.lax.fori_loop(
        0, num_epochs, lambda e, state: self._one_epoch(
            state, key, e, images, train_set, num_epochs), state)

  def _start_early_stopping(self, state: TrainState) -> EarlyStopping:
    zero = jnp.zeros((), jnp.int32)
    return EarlyStopping(state, jnp.full((), -1, jnp.int32), zero, zero, zero,
                         jnp.zeros((), bool))

  def _after_epoch(self, stopping: EarlyStopping, state: TrainState,
                   validation) -> EarlyStopping:
    """Scores the state after one more epoch and keeps it if it is best."""
    correct = validation_correct(self.model, state.variables, *validation,
                                 self.eval_chunk)
    improved = correct > stopping.best_correct
    epochs_run = stopping.epochs_run + 1
    bad_epochs = jnp.where(improved, 0, stopping.bad_epochs + 1)
    return EarlyStopping(
        best=jax.tree.map(lambda new, old: jnp.where(improved, new, old),
                          state, stopping.best),
        best_correct=jnp.maximum(correct, stopping.best_correct),
        best_epoch=jnp.where(improved, epochs_run, stopping.best_epoch),
        bad_epochs=bad_epochs, epochs_run=epochs_run,
        done=bad_epochs >= self.early_stopping_patience)

  @staticmethod
  def _stopped(stopping: EarlyStopping) -> TrainState:
    return stopping.best._replace(best_epoch=stopping.best_epoch,
                                  epochs_run=stopping.epochs_run)

  def epochs_early_stopping(self, state: TrainState, key: jax.Array,
                            images: jax.Array, train_set: TrainSet,
                            num_epochs: int, validation) -> TrainState:
    """Epochs with early stopping as one traceable `while_loop`."""

    def cond(carry):
      _, stopping = carry
      return (stopping.epochs_run < num_epochs) & ~stopping.done

    def body(carry):
      state, stopping = carry
      state = self._one_epoch(state, key, stopping.epochs_run, images,
                              train_set, num_epochs)
      return state, self._after_epoch(stopping, state, validation)

    _, stopping = jax.lax.while_loop(
        cond, body, (state, self._start_early_stopping(state)))
    return self._stopped(stopping)

  def fit(self, key: jax.Array, variables: models.Variables,
          images: jax.Array, train_set: TrainSet,
          num_epochs: int, validation=None) -> TrainState:
    """Trains from `variables` on `train_set`.

    With `in_jit_loop` this is a pure traceable function (it can be jitted
    and vmapped); otherwise a Python loop over a jitted step. Both give the
    same result.

    Args:
      key: PRNG key for the minibatch order, augmentation, dropout and the
        auxiliary parameters' initialisation.
      variables: initial model variables.
      images: [N, ...] the whole pool (on device).
      train_set: what to train on.
      num_epochs: passes over the training rows (or over the larger of the
        training and unlabeled rows, if the objective asks); with early
        stopping, the most.
      validation: (images [V, ...], labels [V] int32), the labeled set early
        stopping scores; needed when `early_stopping_patience` > 0, unused
        otherwise.

    Returns:
      The trained `TrainState` (with early stopping: the best epoch's, its
      `best_epoch` and `epochs_run` set).
    """
    patience = self.early_stopping_patience
    if patience and validation is None:
      raise errors.ConfigError(
          f'Early stopping (patience {patience}) scores a validation set: '
          'pass validation=(images, labels) to Trainer.fit (in an '
          'experiment, set config.validation_size > 0).')
    init_key, key = jax.random.split(key)
    if self.in_jit_loop:
      state = self.init_state(init_key, variables, images)
      if patience:
        return self.epochs_early_stopping(state, key, images, train_set,
                                          num_epochs, validation)
      return self.epochs(state, key, images, train_set, num_epochs)
    state = self._jit_init(init_key, variables, images)
    epoch_rows = int(self._counts(train_set)[2])
    stopping = self._start_early_stopping(state) if patience else None
    for e in range(num_epochs):
      epoch_key = jax.random.fold_in(key, e)
      orders = self._jit_order(epoch_key, train_set)
      for s in range(math.ceil(epoch_rows / self.batch_size)):
        state, _ = self._jit_step(state, epoch_key, s, images, train_set,
                                  orders, num_epochs)
      if patience:
        stopping = self._jit_after_epoch(stopping, state, validation)
        if bool(stopping.done):
          break
    return self._stopped(stopping) if patience else state


def fit_on_mask(key: jax.Array, loss_fn: Callable[..., jax.Array], params,
                tx: optax.GradientTransformation, mask: jax.Array, *,
                batch_size: int, num_epochs: int):
  """Trains any `params` on minibatches of the rows where `mask` (hook H3).

  The same fixed-shape machinery as the task model's training, for networks
  a strategy trains at query time (a discriminator, a VAE). Pure and
  traceable: call it inside `select`.

  Args:
    key: PRNG key.
    loss_fn: `loss_fn(params, key, rows [B] int32, weights [B]) -> scalar`,
      reading whatever arrays it closes over at `rows`.
    params: initial parameters (any pytree).
    tx: optimizer.
    mask: [N] bool rows to draw from.
    batch_size: B.
    num_epochs: passes over the masked rows.

  Returns:
    The trained parameters.
  """
  count = jnp.sum(mask, dtype=jnp.int32)
  steps_per_epoch = (count + batch_size - 1) // batch_size

  def epoch(e, carry):
    epoch_key = jax.random.fold_in(key, e)
    order = labeled_first_order(epoch_key, mask)

    def step(s, carry):
      params, opt_state = carry
      rows, weights = minibatch(order, s * batch_size, count, batch_size)
      grads = jax.grad(loss_fn)(params, jax.random.fold_in(epoch_key, s + 1),
                                rows, weights)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    return jax.lax.fori_loop(0, steps_per_epoch, step, carry)

  params, _ = jax.lax.fori_loop(0, num_epochs, epoch,
                                (params, tx.init(params)))
  return params
