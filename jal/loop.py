"""The active learning loop: a host driver around `jal.rounds`.

`run` checks the config against the data, opens the work directory, then
for every round calls the round's pure functions (jitted once per
experiment), times them, asks the oracle for the labels of the selected
points and saves the state and records atomically. A run killed at any point
and restarted ends with the same labeled set and the same records (timings
aside) as one that never stopped.
"""

import functools
import logging
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import acquisition
from jal import config as config_lib
from jal import data as data_lib
from jal import errors
from jal import models
from jal import oracle as oracles
from jal import rounds
from jal import stopping
from jal import workdir as workdir_lib
from jal.rounds import ALState, Data, Experiment  # pylint: disable=unused-import
from jal.workdir import CHECKPOINT, CONFIG, RESULTS, SUMMARY  # pylint: disable=unused-import


def load_dataset(config) -> data_lib.Dataset:
  """Loads `config.dataset` with the config's data options."""
  return data_lib.load(config.dataset, data_dir=config.data_dir or None,
                       seed=config.seed, pool_size=config.pool_size)


def _dataset_error(message: str):
  raise errors.ConfigError(
      f'{message} Fix the dataset passed to jal (jal.data.Dataset: images '
      '[N, H, W, C] float, labels [N] int in [0, num_classes)).')


def check_dataset_contents(dataset: data_lib.Dataset,
                           pool_labels_known: bool = True) -> None:
  """Checks a `Dataset`'s arrays: shapes, dtypes, label range, finiteness.

  With `pool_labels_known=False` (an oracle answers instead of the pool's
  labels) pool labels may be -1 for unknown.
  """
  num_classes = dataset.num_classes
  if (not isinstance(num_classes, (int, np.integer)) or
      isinstance(num_classes, bool) or num_classes < 2):
    _dataset_error(f'dataset.num_classes must be an integer >= 2, got '
                   f'{num_classes!r}.')
  for split in ('pool', 'test'):
    images = np.asarray(getattr(dataset, f'{split}_images'))
    labels = np.asarray(getattr(dataset, f'{split}_labels'))
    if images.ndim < 2 or images.shape[0] == 0:
      _dataset_error(f'dataset.{split}_images has shape {images.shape}; '
                     'it needs at least one example and a feature axis.')
    if not np.issubdtype(images.dtype, np.floating):
      _dataset_error(f'dataset.{split}_images has dtype {images.dtype}; '
                     'convert it to float32 (e.g. pixels / 255).')
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
      _dataset_error(f'dataset.{split}_labels has shape {labels.shape} for '
                     f'{images.shape[0]} images; it must be [N] with one '
                     'label per image.')
    if not np.issubdtype(labels.dtype, np.integer):
      _dataset_error(f'dataset.{split}_labels has dtype {labels.dtype}; '
                     'labels must be integers.')
    lowest = -1 if split == 'pool' and not pool_labels_known else 0
    if labels.min() < lowest or labels.max() >= num_classes:
      _dataset_error(f'dataset.{split}_labels span [{labels.min()}, '
                     f'{labels.max()}], outside [{lowest}, '
                     f'dataset.num_classes = {num_classes}). Unknown (-1) '
                     'pool labels need an oracle to answer for them.')
    if not np.all(np.isfinite(images)):
      raise errors.ConfigError(
          f'dataset.{split}_images contains NaN or infinite values; clean or '
          'impute them before running an experiment.')
  if dataset.pool_images.shape[1:] != dataset.test_images.shape[1:]:
    _dataset_error(f'dataset.pool_images are {dataset.pool_images.shape[1:]}'
                   f' but dataset.test_images are '
                   f'{dataset.test_images.shape[1:]}.')


def check_dataset(config, dataset: data_lib.Dataset,
                  pool_labels_known: bool = True) -> None:
  """Checks the dataset's contents and what the config asks of them."""
  check_dataset_contents(dataset, pool_labels_known)
  config_lib.validate_budget(config, dataset.pool_labels.shape[0])
  num_test = np.shape(dataset.test_labels)[0]
  if config.validation_size >= num_test:
    raise errors.ConfigError(
        f'config.validation_size = {config.validation_size} leaves no test '
        f'example of {num_test}; hold out fewer for validation.')
  if config.oracle_confusion is not None:
    oracles.read_confusion(config.oracle_confusion, dataset.num_classes)
  oracles.label_costs(config.label_costs, dataset.pool_labels.shape[0],
                      dataset.num_classes)
  if config.initial_per_class and not pool_labels_known:
    raise errors.ConfigError(
        f'config.initial_per_class = {config.initial_per_class} draws the '
        "initial set with the pool's labels, which an oracle run does not "
        'have; set it to 0.')
  if config.initial_per_class:
    counts = np.bincount(dataset.pool_labels, minlength=dataset.num_classes)
    if (config.initial_per_class * dataset.num_classes != config.initial_size
        or counts.min() < config.initial_per_class):
      raise errors.ConfigError(
          f'config.initial_per_class = {config.initial_per_class} needs '
          f'config.initial_size = {config.initial_per_class} * '
          f'{dataset.num_classes} classes and that many pool examples of '
          f'every class (got initial_size {config.initial_size}, smallest '
          f'class {counts.min()}); change one of them.')


def setup(config: ml_collections.ConfigDict, dataset: data_lib.Dataset,
          model: models.Model | None = None,
          strategy: acquisition.Strategy | None = None,
          pool_labels_known: bool = True):
  """Validates and builds `(experiment, data)` for a run on `dataset`.

  `pool_labels_known=False`: an oracle answers, the pool's labels may be -1.
  """
  config_lib.validate(config)
  if not isinstance(dataset, data_lib.Dataset):
    raise errors.ConfigError(
        f'dataset must be a jal.data.Dataset, got {type(dataset).__name__}; '
        'build one with jal.data.Dataset(pool_images, pool_labels, '
        'test_images, test_labels, num_classes, name).')
  check_dataset(config, dataset, pool_labels_known)
  if model is None and np.ndim(dataset.pool_images) != 4:
    raise errors.ConfigError(
        f'config.model = {config.model!r} needs images [N, H, W, C], got '
        f'dataset.pool_images of shape {np.shape(dataset.pool_images)}; add '
        'a channel axis (images[..., None]) or pass your own model.')
  exp = rounds.make_experiment(config, dataset.pool_images.shape[1:],
                               dataset.num_classes, model, strategy)
  data = make_data(config, dataset)
  return exp, data


def make_data(config, dataset: data_lib.Dataset) -> Data:
  """The experiment's arrays: pool, test, the validation examples held out
  of the test set (`config.validation_size`) and the stop set's indices."""
  test_images = jnp.asarray(dataset.test_images)
  test_labels = jnp.asarray(dataset.test_labels, jnp.int32)
  validation_images = validation_labels = stop_indices = None
  if config.validation_size:
    held = np.zeros(test_labels.shape[0], bool)
    held[np.asarray(rounds.validation_indices(test_labels.shape[0],
                                              config.validation_size))] = True
    validation_images, validation_labels = (test_images[held],
                                            test_labels[held])
    test_images, test_labels = test_images[~held], test_labels[~held]
  if config.stopping.stop_set_size:
    stop_indices = rounds.stop_set_indices(dataset.pool_labels.shape[0],
                                           config.stopping.stop_set_size)
  return Data(jnp.asarray(dataset.pool_images),
              jnp.asarray(dataset.pool_labels, jnp.int32),
              test_images, test_labels, validation_images, validation_labels,
              stop_indices)


_ORACLE_STREAM = 0x0AC1E


def simulated_oracle(config, pool_labels, num_classes: int) -> oracles.Oracle:
  """The oracle of a simulated run: the ground truth, or a noisy annotator
  (`config.oracle_noise`, `config.oracle_confusion`) keyed by the seed."""
  if not config.oracle_noise and config.oracle_confusion is None:
    return oracles.simulated(pool_labels)
  confusion = (None if config.oracle_confusion is None else
               oracles.read_confusion(config.oracle_confusion, num_classes))
  key = jax.random.fold_in(jax.random.key(config.seed), _ORACLE_STREAM)
  return oracles.noisy(pool_labels, key, num_classes,
                       flip_rate=config.oracle_noise, confusion=confusion)


def initial_indices(config, pool_labels: np.ndarray, key: jax.Array,
                    pool_images: jax.Array | None = None) -> np.ndarray:
  """The initial labeled set: uniform, `initial_per_class` per class, or
  SRAAL's k-center on a VAE's latents (`config.initial_strategy`).

  The per-class draw reads the pool's labels (a simulation protocol, as in
  Gal et al. 2017); 'kcenter_vae' reads `pool_images` only.
  """
  if config.initial_strategy == 'kcenter_vae':
    size = config.initial_size
    return np.asarray(jax.jit(
        acquisition.sraal.kcenter_initial_set, static_argnums=(2, 3))(
            key, pool_images, size, max(1, size // 10)))
  if config.initial_per_class:
    noise = np.asarray(jax.random.uniform(key, pool_labels.shape))
    return np.concatenate([
        np.flatnonzero(pool_labels == c)[
            np.argsort(noise[pool_labels == c])[:config.initial_per_class]]
        for c in np.unique(pool_labels)])
  return np.asarray(jax.random.choice(key, pool_labels.shape[0],
                                      (config.initial_size,), replace=False))


def init_state(exp: Experiment, data: Data,
               oracle: oracles.Oracle | None) -> ALState:
  """Round 0's state: the initial labeled set with its labels revealed.

  With `oracle=None` the labels stay -1: a template to restore into, whose
  labels `reveal_initial` fills later.
  """
  initial_key, warm_key, rounds_key = jax.random.split(
      jax.random.key(exp.config.seed), 3)
  pool_size = data.pool_images.shape[0]
  initial = initial_indices(exp.config, np.asarray(data.pool_labels),
                            initial_key, data.pool_images)
  mask = np.zeros(pool_size, bool)
  labels = np.full(pool_size, -1, np.int32)
  mask[initial] = True
  variables = (rounds.initial_variables(exp, warm_key)
               if exp.config.warm_start else ())
  state = ALState(jnp.zeros((), jnp.int32), jnp.asarray(mask),
                  jnp.asarray(labels), rounds_key, (), variables)
  state = state._replace(
      strategy_state=rounds.initial_strategy_state(exp, data, state))
  return state if oracle is None else reveal_initial(state, oracle)


def checked_oracle(oracle: oracles.Oracle,
                   num_classes: int) -> oracles.Oracle:
  """`oracle`, refusing answers that are not one class index per query."""

  def answer(indices):
    labels = np.asarray(oracle(indices))
    if (labels.shape != np.shape(indices) or
        not np.issubdtype(labels.dtype, np.integer) or
        (labels.size and (labels.min() < 0 or labels.max() >= num_classes))):
      raise errors.ConfigError(
          f'The oracle answered {labels.tolist()!r} for pool indices '
          f'{np.asarray(indices).tolist()}; it must return one integer class '
          f'in [0, {num_classes}) per index. Nothing of this round was saved;'
          ' fix the oracle and run again to resume.')
    return labels

  return answer


def reveal_initial(state: ALState, oracle: oracles.Oracle) -> ALState:
  """`state` with the oracle's labels of its labeled set."""
  initial = np.flatnonzero(np.asarray(state.labeled_mask))
  labels = np.asarray(state.labels).copy()
  labels[initial] = oracle(initial)
  return state._replace(labels=jnp.asarray(labels))


class RoundFns:
  """The round's functions for one experiment, jitted once."""

  def __init__(self, exp: Experiment):
    self.exp = exp
    train = functools.partial(rounds.train_round, exp)
    self.train = jax.jit(train) if exp.trainer.in_jit_loop else train
    self.test = jax.jit(functools.partial(rounds.test_round, exp))
    self.test_metrics = jax.jit(functools.partial(rounds.test_metrics, exp))
    self.diagnostics = jax.jit(functools.partial(rounds.diagnostics, exp))
    self.query = jax.jit(functools.partial(rounds.query_round, exp))
    self.reveal = jax.jit(functools.partial(rounds.reveal, exp))


def check_resumed(config, state: ALState, records: list[dict],
                  num_classes: int, workdir: str) -> None:
  """Raises `CheckpointError` unless a restored state is one this run makes.

  The checkpoint's arrays have the right paths, shapes and dtypes and its
  fingerprint matches (`jal.checkpoint.restore`); this checks their values:
  the round counter, one record per round, the labeled set's size, and a
  label in [0, num_classes) exactly where the mask is set.
  """
  path = os.path.join(workdir, CHECKPOINT)

  def fail(what):
    raise errors.CheckpointError(
        f'{path}: {what}, which this experiment never writes. It cannot be '
        'resumed: delete the work directory (or this file, to start the '
        'experiment over) or use a new one.')

  completed = int(state.round)
  if not 0 < completed <= config.num_rounds + 1:
    fail(f'its round counter is {completed}, outside [1, '
         f'{config.num_rounds + 1}]')
  if [r.get('round') if isinstance(r, dict) else None for r in records] != (
      list(range(completed))):
    fail(f'it holds {len(records)} records for {completed} rounds')
  for record in records:
    if not {'num_labeled', 'test_accuracy', 'selected'} <= set(record):
      fail(f'record {record["round"]} lacks fields')
  mask = np.asarray(state.labeled_mask)
  labels = np.asarray(state.labels)
  expected = (config.initial_size +
              min(completed, config.num_rounds) * config.query_size)
  if mask.sum() != expected:
    fail(f'its labeled set holds {mask.sum()} points, not {expected}')
  if np.any(labels[~mask] != -1) or np.any(
      (labels[mask] < 0) | (labels[mask] >= num_classes)):
    fail(f'its labels are not in [0, {num_classes}) exactly on the labeled '
         'set')
  try:
    selected = np.asarray([i for r in records for i in r['selected']],
                          np.int64)
  except (TypeError, ValueError):
    fail('its records hold malformed selections')
  if selected.size and (selected.min() < 0 or selected.max() >= mask.size or
                        not mask[selected].all()):
    fail('its records select points that are not labeled')


def check_selection(selected: np.ndarray, labeled_mask: np.ndarray,
                    query_size: int, strategy: str) -> None:
  """Raises unless `selected` holds `query_size` distinct unlabeled indices."""
  if (selected.shape != (query_size,) or
      len(np.unique(selected)) != query_size or
      labeled_mask[selected].any()):
    raise RuntimeError(
        f'Strategy {strategy!r} returned {selected.tolist()}, which is not '
        f'{query_size} distinct unlabeled pool indices.')


def check_accuracy(accuracy: float, config, round_: int) -> None:
  """Raises `DivergedError` when a round's test accuracy is NaN.

  `rounds.test_round` gives NaN for a model with a NaN or infinite
  parameter or test prediction; its scores would tie at every point, so
  the run stops before querying (the last checkpoint stays as it was).
  """
  if not np.isfinite(accuracy):
    raise errors.DivergedError(
        f'Training diverged in round {round_} (seed {config.seed}): the model '
        'has NaN or infinite parameters or predictions. Lower '
        f'config.learning_rate (now {config.learning_rate}) or '
        f'config.weight_decay (now {config.weight_decay}), then run again '
        'with a new --workdir.')


def _timed(fn, *args):
  start = time.perf_counter()
  result = jax.block_until_ready(fn(*args))
  return result, time.perf_counter() - start


def diagnostics_record(num_classes: int, state: ALState,
                       diagnostics: rounds.Diagnostics, selected, answers,
                       *, costs: oracles.Costs | None = None,
                       true_labels=None,
                       previous: dict | None = None) -> dict:
  """A round's diagnostics and what its labels cost, JSON-friendly.

  Args:
    num_classes: C.
    state: the state the round started from (its labeled set).
    diagnostics: the round model's `rounds.Diagnostics` (host values).
    selected: [b] pool indices queried this round ([0] in the last).
    answers: [b] the oracle's labels of `selected`.
    costs: what labels cost (default 1 a label).
    true_labels: [N] ground truth, -1 where unknown; None: unknown.
    previous: the previous round's record (None in round 0).

  Returns:
    test_ece; validation_accuracy (None without a validation set);
    queried_class_counts [C] of `answers`; label_cost of the batch;
    cumulative_label_cost of the labeled set the round's model trained on;
    num_label_errors (answers that differ from the ground truth; None where
    it is unknown); stop_set_predictions [S]; stop_set_kappa (Cohen's kappa
    against the previous round's, None in round 0 or without a stop set);
    best_epoch and epochs_run (the epochs the round's model was trained for
    and the epochs run: both `config.num_epochs` without early stopping;
    lists, one per member, for an ensemble).
  """
  if costs is None:
    costs = oracles.Costs(None, np.ones(num_classes))
  selected = np.asarray(selected, np.int64)
  answers = np.asarray(answers, np.int64)
  mask = np.asarray(state.labeled_mask)
  labeled = np.flatnonzero(mask)
  errors_ = None
  if true_labels is not None:
    truth = np.asarray(true_labels)[selected]
    if np.all(truth >= 0):
      errors_ = int(np.sum(truth != answers))
  validation = float(diagnostics.validation_accuracy)
  stop_predictions = np.asarray(diagnostics.stop_predictions).tolist()
  kappa = None
  if previous is not None and stop_predictions and len(
      previous.get('stop_set_predictions') or ()) == len(stop_predictions):
    kappa = stopping.cohen_kappa(previous['stop_set_predictions'],
                                 stop_predictions, num_classes)
  return dict(
      test_ece=float(diagnostics.test_ece),
      validation_accuracy=None if np.isnan(validation) else validation,
      queried_class_counts=np.bincount(
          answers, minlength=num_classes).tolist(),
      label_cost=oracles.batch_cost(costs, selected, answers),
      cumulative_label_cost=oracles.batch_cost(
          costs, labeled, np.asarray(state.labels)[labeled]),
      num_label_errors=errors_,
      stop_set_predictions=stop_predictions,
      stop_set_kappa=kappa,
      best_epoch=np.asarray(diagnostics.best_epoch).tolist(),
      epochs_run=np.asarray(diagnostics.epochs_run).tolist())


def step(fns: RoundFns, data: Data, state: ALState,
         oracle: oracles.Oracle, *, costs: oracles.Costs | None = None,
         true_labels=None,
         previous: dict | None = None) -> tuple[ALState, dict]:
  """One round on the host: train, test, and (unless last) query and reveal.

  Args:
    fns: the experiment's round functions.
    data: its arrays.
    state: the state the round starts from.
    oracle: labels the queried points.
    costs: what labels cost (default 1 a label).
    true_labels: [N] ground truth for `num_label_errors` (None: unknown).
    previous: the previous round's record (for `stop_set_kappa`).

  Returns:
    The next state and this round's record: round, num_labeled,
    test_accuracy, test_balanced_accuracy, train_seconds, test_seconds
    (testing and the diagnostics), query_seconds, selected (pool indices
    queried after testing, empty in the last round), the keys of
    `diagnostics_record` (`run` adds stopped_by).
  """
  config = fns.exp.config
  r = int(state.round)
  num_labeled = int(np.sum(np.asarray(state.labeled_mask)))
  trained, train_seconds = _timed(fns.train, data, state)
  ((accuracy, balanced), diagnostics), test_seconds = _timed(
      lambda d, t: (fns.test_metrics(d, t), fns.diagnostics(d, t)), data,
      trained)
  check_accuracy(float(accuracy), config, r)
  start = time.perf_counter()
  selected = np.zeros((0,), np.int32)
  answers = np.zeros((0,), np.int32)
  before = state
  if r < config.num_rounds:
    selected, strategy_state = fns.query(data, trained, state)
    selected = np.asarray(selected)
    check_selection(selected, np.asarray(state.labeled_mask),
                    config.query_size, fns.exp.strategy.name)
    answers = np.asarray(oracle(selected), np.int32)
    state = fns.reveal(state, selected, jnp.asarray(answers), strategy_state,
                       trained)
  else:
    state = state._replace(round=state.round + 1)
  query_seconds = time.perf_counter() - start
  record = dict(round=r, num_labeled=num_labeled,
                test_accuracy=float(accuracy),
                test_balanced_accuracy=float(balanced),
                train_seconds=train_seconds, test_seconds=test_seconds, query_seconds=query_seconds,
                selected=selected.tolist())
  record.update(diagnostics_record(
      fns.exp.num_classes, before, diagnostics, selected, answers,
      costs=costs, true_labels=true_labels, previous=previous))
  return state, record


def run(config: ml_collections.ConfigDict, workdir: str,
        dataset: data_lib.Dataset | None = None,
        on_round: Callable[[dict], None] | None = None, *,
        model: models.Model | None = None,
        strategy: acquisition.Strategy | None = None,
        oracle: oracles.Oracle | None = None) -> dict:
  """Runs (or resumes) an experiment in `workdir`.

  Writes `config.json`; after every round the checkpoint and
  `results.jsonl` (one JSON record per round, see `step`, with stopped_by:
  the `jal.stopping` criteria fired by that round); at the end
  `summary.json` (aubc, final_accuracy, stopping: the round at which each
  criterion first fired, config).

  Args:
    config: experiment config (see `jal.config.default` for the fields).
    workdir: the experiment's directory; an existing one is resumed.
    dataset: use this dataset instead of loading `config.dataset`.
    on_round: called with each new round's record.
    model: a user's `models.Model` instead of `config.model`.
    strategy: a user's `acquisition.Strategy` instead of `config.strategy`.
    oracle: a labeling function instead of the simulated one (the pool's
      labels, noisy as `config.oracle_noise` or `config.oracle_confusion`
      say).

  Returns:
    The summary.

  Raises:
    ConfigError: a config field is out of range or does not fit the data
      (before any work, and before `workdir` is written).
    CheckpointError: `workdir` belongs to an experiment with another config,
      or its checkpoint is damaged.
  """
  config_lib.validate(config)
  if not isinstance(workdir, (str, os.PathLike)) or not os.fspath(workdir):
    raise errors.ConfigError(
        f'workdir must be a directory path, got {workdir!r}.')
  if dataset is None:
    dataset = load_dataset(config)
  if oracle is not None and (config.oracle_noise or
                             config.oracle_confusion is not None):
    raise errors.ConfigError(
        'config.oracle_noise and config.oracle_confusion simulate the '
        'oracle of a run without one; with your own oracle set them to 0 '
        'and None.')
  exp, data = setup(config, dataset, model, strategy,
                    pool_labels_known=oracle is None)
  oracle = (simulated_oracle(config, dataset.pool_labels, dataset.num_classes)
            if oracle is None else checked_oracle(oracle, dataset.num_classes))
  costs = oracles.label_costs(config.label_costs,
                              dataset.pool_labels.shape[0],
                              dataset.num_classes)
  true_labels = np.asarray(dataset.pool_labels)
  config_text = workdir_lib.open_workdir(config, workdir)
  template = init_state(exp, data, None)
  state, records = workdir_lib.restore(workdir, template, config_text)
  if records:
    check_resumed(config, state, records, dataset.num_classes, workdir)
    workdir_lib.write_results(workdir, records)
    logging.info('Resuming %s after round %d.', workdir, len(records) - 1)
  else:
    state = reveal_initial(template, oracle)
  fns = RoundFns(exp)
  while int(state.round) <= config.num_rounds:
    state, record = step(fns, data, state, oracle, costs=costs,
                         true_labels=true_labels,
                         previous=records[-1] if records else None)
    record['stopped_by'] = stopping.fired(records + [record], config)
    records.append(record)
    workdir_lib.save_round(workdir, state, records, config_text)
    if on_round is not None:
      on_round(record)
  return workdir_lib.write_summary(workdir, records, config_text)
