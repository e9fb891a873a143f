"""One active learning round, written once as pure functions of their data.

An `Experiment` holds what stays fixed across rounds (config, model,
posterior source, strategy and its hyperparameters, trainer); a `Data` holds
the arrays (pool, test set, and the pool's labels for a simulated oracle);
an `ALState` what a round changes. A round is

  trained  = train_round(exp, data, state)       # fit the round's model(s)
  accuracy = test_round(exp, data, trained)      # test accuracy
  selected, strategy_state = query_round(exp, data, trained, state)
  state    = reveal(state, selected, labels, strategy_state, trained)

Each is pure: arrays come in as arguments, nothing is captured, so the same
functions are jitted by the loop (`jal.loop`), vmapped over seeds by
`jal.trials`, and called by benchmarks and notebooks. `train_round` is
traceable when the trainer runs its epochs inside jit
(`config.train_loop='jit'`); otherwise it is a host loop over a jitted step
and everything else is jitted.

Randomness: round r uses `fold_in(state.key, r)`, split into the keys for
model initialization, training and the query, so a round's outcome depends
only on the state it starts from.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from jal import acquisition
from jal import data as data_lib
from jal import errors
from jal import metrics
from jal import models
from jal import posterior as posterior_lib
from jal import predict
from jal import train


class Data(NamedTuple):
  """The arrays of an experiment.

  Attributes:
    pool_images: [N, ...] float32.
    pool_labels: [N] int32 ground truth for a simulated oracle inside jit
      (vmapped trials); -1 where unknown.
    test_images: [T, ...] float32.
    test_labels: [T] int32.
    validation_images: [V, ...] float32 labeled examples held out of the
      test set (`config.validation_size`), or None.
    validation_labels: [V] int32, or None.
    stop_indices: [S] int32 pool indices of the stop set (stabilizing
      predictions, `jal.stopping`), or None.
  """
  pool_images: jax.Array
  pool_labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array
  validation_images: jax.Array | None = None
  validation_labels: jax.Array | None = None
  stop_indices: jax.Array | None = None


class ALState(NamedTuple):
  """The state of an active learning experiment between rounds.

  Attributes:
    round: [] int32, rounds completed.
    labeled_mask: [N] bool over the pool.
    labels: [N] int32 revealed labels, -1 where unknown.
    key: PRNG key of the rounds; round r uses `fold_in(key, r)`.
    strategy_state: the strategy's state (its `init` runs at the first
      query; before that, zeros of the same structure).
    variables: the last trained model's variables when warm-starting, else
      `()`.
  """
  round: jax.Array
  labeled_mask: jax.Array
  labels: jax.Array
  key: jax.Array
  strategy_state: Any = ()
  variables: Any = ()


class Epochs(NamedTuple):
  """What early stopping did: [] int32 each ([M] for an ensemble).

  Attributes:
    best_epoch: epochs the kept model was trained for.
    epochs_run: epochs trained before stopping.
  """
  best_epoch: jax.Array
  epochs_run: jax.Array


class Trained(NamedTuple):
  """A round's trained model(s): variables and the objective's parameters,
  and with early stopping (`config.early_stopping_patience`) its `Epochs`
  (else `()`)."""
  variables: Any
  aux_params: Any
  epochs: Any = ()


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
  """What stays fixed across rounds. Hashable by identity (a jit static)."""
  config: ml_collections.ConfigDict
  model: models.Model
  input_shape: tuple[int, ...]
  num_classes: int
  posterior: posterior_lib.Posterior
  strategy: acquisition.Strategy
  hparams: dict
  trainer: train.Trainer


def make_experiment(config: ml_collections.ConfigDict,
                    input_shape: tuple[int, ...], num_classes: int,
                    model: models.Model | None = None,
                    strategy: acquisition.Strategy | None = None
                    ) -> Experiment:
  """Builds the fixed parts of an experiment from a validated config.

  Args:
    config: the experiment config.
    input_shape: shape of one pool item.
    num_classes: C.
    model: a user's model; default `models.get(config.model, ...)`.
    strategy: a user's strategy; default `acquisition.get(config.strategy)`.
  """
  if model is None and config.model not in models.NAMES:
    raise errors.UnknownNameError(
        f'config.model: unknown model {config.model!r}. Valid names: '
        f'{", ".join(models.NAMES)}.')
  model = model or models.get(config.model, num_classes, config.dropout_rate)
  strategy, hparams = acquisition.resolve(
      strategy or acquisition.get(config.strategy), config.hparams)
  unknown = set(strategy.needs) - set(acquisition.PREDICTIONS)
  if unknown:
    raise errors.ConfigError(
        f'Strategy {strategy.name!r} needs {sorted(unknown)}, which the loop '
        f'does not compute; needs must be among {acquisition.PREDICTIONS}.')
  tx = train.make_optimizer(config.optimizer, config.learning_rate,
                            config.momentum, config.weight_decay)
  in_jit_loop = {'auto': None, 'python': False, 'jit': True}[config.train_loop]
  objective = strategy.objective
  if callable(objective):  # built from the hyperparameters
    objective = objective(**hparams)
  trainer = train.Trainer(
      model, tx, batch_size=config.batch_size,
      augment=data_lib.random_crop_flip if config.augment else None,
      in_jit_loop=in_jit_loop, objective=objective,
      early_stopping_patience=config.early_stopping_patience,
      eval_chunk=config.eval_chunk, epoch_samples=config.epoch_samples)
  return Experiment(
      config=config, model=model, input_shape=tuple(input_shape),
      num_classes=num_classes,
      posterior=posterior_lib.get(config.posterior, model, input_shape,
                                  config),
      strategy=strategy, hparams=hparams, trainer=trainer)


def round_keys(state: ALState):
  """The round's (init, train, query) keys."""
  return jax.random.split(jax.random.fold_in(state.key, state.round), 3)


def initial_variables(exp: Experiment, key: jax.Array):
  """The variables a round starts from: fresh ones (stacked if an ensemble)."""
  return exp.posterior.init(key)


def train_set(exp: Experiment, state: ALState) -> train.TrainSet:
  """The oracle's labeled set, extended by the strategy's hook if it has one.

  The hook applies from round 1 on: before the first query the strategy
  state is a zeros template, not a state its `init` made.
  """
  base = train.TrainSet(state.labeled_mask, state.labels)
  if exp.strategy.train_set is None:
    return base
  extended = exp.strategy.train_set(state.strategy_state, base)
  queried = state.round > 0
  return extended._replace(
      mask=jnp.where(queried, extended.mask, base.mask),
      labels=jnp.where(queried, extended.labels, base.labels),
      extra_mask=(None if extended.extra_mask is None
                  else extended.extra_mask & queried))


def train_round(exp: Experiment, data: Data, state: ALState) -> Trained:
  """Trains the round's model(s) on the labeled pool."""
  init_key, train_key, _ = round_keys(state)
  config = exp.config
  variables = (state.variables if config.warm_start
               else initial_variables(exp, init_key))
  rows = train_set(exp, state)
  validation = None
  if config.early_stopping_patience:
    validation = (data.validation_images, data.validation_labels)

  def fit_one(key, variables):
    trained = exp.trainer.fit(key, variables, data.pool_images, rows,
                              config.num_epochs, validation)
    epochs = ()
    if config.early_stopping_patience:
      epochs = Epochs(trained.best_epoch, trained.epochs_run)
    return Trained(trained.variables, trained.aux_params, epochs)

  return exp.posterior.fit(fit_one, train_key, variables)


def untrained(exp: Experiment, data: Data, key: jax.Array) -> Trained:
  """Freshly initialised `Trained`, shaped as `train_round`'s (a template for
  shapes and checkpoints)."""

  def fit_one(key, variables):
    epochs = ()
    if exp.config.early_stopping_patience:
      epochs = Epochs(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return Trained(variables, exp.trainer.init_state(
        key, variables, data.pool_images).aux_params, epochs)

  return exp.posterior.fit(fit_one, key, initial_variables(exp, key))


def all_finite(tree) -> jax.Array:
  """[] bool: no floating-point leaf of `tree` holds a NaN or an infinity."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


class TestMetrics(NamedTuple):
  """A round's test metrics, each [] (NaN when training diverged)."""
  accuracy: jax.Array
  balanced_accuracy: jax.Array  # mean per-class recall


def test_metrics(exp: Experiment, data: Data, trained: Trained) -> TestMetrics:
  """Test accuracy and balanced accuracy (an ensemble's: of its mean).

  Both are NaN when training diverged: a parameter or a test prediction is
  NaN or infinite (the argmax of such a model means nothing, and its
  acquisition scores would tie everywhere).
  """
  log_probs = exp.posterior.test_log_probs(trained.variables, data.test_images)
  finite = all_finite(trained) & jnp.all(~jnp.isnan(log_probs))
  return TestMetrics(
      jnp.where(finite, metrics.accuracy(log_probs, data.test_labels), jnp.nan),
      jnp.where(finite, metrics.balanced_accuracy(log_probs, data.test_labels),
                jnp.nan))


class Diagnostics(NamedTuple):
  """A round's model beyond its accuracy.

  Attributes:
    test_ece: [] expected calibration error on the test set
      (`metrics.ece`), NaN when training diverged.
    validation_accuracy: [] accuracy on the validation set; NaN without one.
    stop_predictions: [S] int32 argmax predictions on the stop set ([0]
      without one).
    best_epoch: [] int32 ([M] for an ensemble) epochs the round's model was
      trained for: with early stopping the best epoch on the validation
      set, else `config.num_epochs`.
    epochs_run: [] int32 (or [M]) epochs trained before stopping
      (`config.num_epochs` without early stopping).
  """
  test_ece: jax.Array
  validation_accuracy: jax.Array
  stop_predictions: jax.Array
  best_epoch: jax.Array
  epochs_run: jax.Array


def diagnostics(exp: Experiment, data: Data, trained: Trained) -> Diagnostics:
  """The round model's calibration, validation accuracy and stop-set
  predictions (an ensemble's: of its mean)."""
  log_probs = exp.posterior.test_log_probs(trained.variables, data.test_images)
  finite = all_finite(trained) & jnp.all(~jnp.isnan(log_probs))
  test_ece = jnp.where(finite, metrics.ece(log_probs, data.test_labels),
                       jnp.nan)
  validation_accuracy = jnp.float32(jnp.nan)
  if data.validation_images is not None:
    validation_accuracy = jnp.where(finite, metrics.accuracy(
        exp.posterior.test_log_probs(trained.variables,
                                     data.validation_images),
        data.validation_labels), jnp.nan)
  stop_predictions = jnp.zeros((0,), jnp.int32)
  if data.stop_indices is not None:
    stop_predictions = jnp.argmax(exp.posterior.test_log_probs(
        trained.variables, data.pool_images[data.stop_indices]),
                                  axis=-1).astype(jnp.int32)
  epochs = trained.epochs
  if not epochs:
    epochs = Epochs(*[jnp.int32(exp.config.num_epochs)] * 2)
  return Diagnostics(test_ece, validation_accuracy, stop_predictions,
                     epochs.best_epoch, epochs.epochs_run)


# Fixed draws, the same for every seed: the validation examples out of the
# test set and the stop set out of the pool.
_VALIDATION_KEY = 20091
_STOP_SET_KEY = 20092
_SUBSAMPLE_STREAM = 20093


def validation_indices(num_test: int, size: int):
  """[size] sorted test indices of the validation set (a fixed draw)."""
  return jnp.sort(jax.random.permutation(
      jax.random.key(_VALIDATION_KEY), num_test)[:size])


def stop_set_indices(pool_size: int, size: int):
  """[min(size, N)] sorted pool indices of the stop set (a fixed draw)."""
  return jnp.sort(jax.random.permutation(
      jax.random.key(_STOP_SET_KEY), pool_size)[:min(size, pool_size)]
                  ).astype(jnp.int32)


def test_round(exp: Experiment, data: Data, trained: Trained) -> jax.Array:
  """[] test accuracy, NaN when training diverged (see `test_metrics`)."""
  return test_metrics(exp, data, trained).accuracy


def predictions(exp: Experiment, key: jax.Array, trained: Trained,
                pool_images: jax.Array, labeled_mask: jax.Array,
                needs, labels: jax.Array | None = None) -> dict[str, Any]:
  """Computes only the predictions in `needs` (see `jal.acquisition.base`).

  `labels` ([N] int32, -1 where unknown) is passed through as
  `inputs['labels']` when needed.

  Log-probabilities are computed for unlabeled points only, unless
  embeddings are needed too, which cover the whole pool.
  """
  config = exp.config
  unlabeled = ~labeled_mask
  variables = exp.posterior.point(trained.variables)
  inputs = {}
  if 'log_probs' in needs or 'embeddings' in needs:
    logits, embeddings = predict.predict(
        exp.model, variables, pool_images, chunk_size=config.eval_chunk,
        include_mask=None if 'embeddings' in needs else unlabeled)
    inputs['log_probs'] = jax.nn.log_softmax(logits)[None]
    inputs['embeddings'] = embeddings
  if 'mc_log_probs' in needs:
    inputs['mc_log_probs'] = exp.posterior.sample(
        key, trained.variables, pool_images, labeled_mask, unlabeled)
  if 'features' in needs:
    inputs['features'] = predict.features(exp.model, variables, pool_images,
                                          chunk_size=config.eval_chunk)
  if 'images' in needs:
    inputs['images'] = pool_images
  if 'labels' in needs:
    if labels is None:
      raise errors.ConfigError(
          "inputs['labels'] was asked for but no labels were given.")
    inputs['labels'] = labels
  if 'logits_fn' in needs:
    inputs['logits_fn'] = predict.logits_fn(exp.model, variables)
  if 'aux_params' in needs:
    inputs['aux_params'] = exp.posterior.point(trained.aux_params)
  return {name: inputs[name] for name in needs}


def subsample_candidates(key: jax.Array, labeled_mask: jax.Array,
                         size: int) -> jax.Array:
  """[N] bool: `size` unlabeled points drawn uniformly without replacement
  (every unlabeled point when fewer remain). `size` is static."""
  draw = jnp.where(labeled_mask, -1.0,
                   jax.random.uniform(key, labeled_mask.shape))
  _, chosen = jax.lax.top_k(draw, min(size, labeled_mask.shape[0]))
  return jnp.zeros_like(labeled_mask).at[chosen].set(True) & ~labeled_mask


def query_mask(exp: Experiment, state: ALState) -> jax.Array:
  """[N] bool: the points this round's query may not pick.

  The labeled ones, and with `config.pool_subsample` every point outside
  this round's random subsample (so they are not even scored).
  """
  size = exp.config.get('pool_subsample', 0)
  if not size:
    return state.labeled_mask
  _, _, query_key = round_keys(state)
  # fold_in leaves the predict/init/select keys as they are without it.
  candidates = subsample_candidates(
      jax.random.fold_in(query_key, _SUBSAMPLE_STREAM), state.labeled_mask,
      size)
  return ~candidates


def _query_inputs(exp: Experiment, data: Data, trained: Trained,
                  state: ALState, excluded: jax.Array | None = None):
  """The strategy's inputs and its (init, select) keys for this round;
  `excluded` defaults to `query_mask(exp, state)`."""
  if excluded is None:
    excluded = query_mask(exp, state)
  _, _, query_key = round_keys(state)
  predict_key, init_key, select_key = jax.random.split(query_key, 3)
  inputs = predictions(exp, predict_key, trained, data.pool_images,
                       excluded, exp.strategy.needs, state.labels)
  return inputs, init_key, select_key


def query_round(exp: Experiment, data: Data, trained: Trained,
                state: ALState, query_size: int | None = None):
  """Asks the strategy for `query_size` points (default the config's).

  The strategy's `init` runs at the first query (round 0) and its state is
  carried from then on.

  Returns:
    selected [query_size] int32 pool indices and the new strategy state.
  """
  query_size = query_size or exp.config.query_size
  excluded = query_mask(exp, state)
  inputs, init_key, select_key = _query_inputs(exp, data, trained, state,
                                               excluded)
  strategy_state = jax.lax.cond(
      state.round == 0,
      lambda: exp.strategy.init(init_key, inputs, excluded, **exp.hparams),
      lambda: state.strategy_state)
  selected, strategy_state = exp.strategy.select(
      select_key, inputs, excluded, strategy_state, query_size,
      **exp.hparams)
  return selected.astype(jnp.int32), strategy_state


def reveal(exp: Experiment, state: ALState, selected: jax.Array,
           labels: jax.Array, strategy_state, trained: Trained) -> ALState:
  """The next state: `selected` labeled with `labels`, the round advanced."""
  return ALState(
      round=state.round + 1,
      labeled_mask=state.labeled_mask.at[selected].set(True),
      labels=state.labels.at[selected].set(labels),
      key=state.key, strategy_state=strategy_state,
      variables=trained.variables if exp.config.warm_start else ())


def initial_strategy_state(exp: Experiment, data: Data, state: ALState):
  """Zeros shaped like the strategy's state, before its `init` has run."""

  def first_state():
    # The objective's parameters are shaped by its init: trace it too.
    trained = untrained(exp, data, jax.random.key(0))
    inputs, init_key, _ = _query_inputs(exp, data, trained, state)
    return exp.strategy.init(init_key, inputs, state.labeled_mask,
                             **exp.hparams)

  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                      jax.eval_shape(first_state))
