"""The active learning loop: one pure-ish round at a time, checkpointed.

`ALState` holds everything a round changes. `round_step` trains a freshly
initialized model on the labeled part of the pool, tests it, asks the
strategy for `query_size` points and reveals their labels. `run` loops over
rounds, saving the state and the per-round records atomically after each one,
so that a run killed at any point and restarted ends with the same labeled set
and the same records (timings aside) as one that never stopped.

Randomness: round r uses `fold_in(state.key, r)`, split into the keys for
model initialization, training and the query, so a round's outcome depends only
on the state it starts from.
"""

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import acquisition
from jal import checkpoint
from jal import data
from jal import errors
from jal import laplace
from jal import metrics
from jal import models
from jal import oracle as oracles
from jal import train
from jal import uncertainty
from jal import config as config_lib

CHECKPOINT = 'checkpoint.npz'
RESULTS = 'results.jsonl'
SUMMARY = 'summary.json'
CONFIG = 'config.json'


class ALState(NamedTuple):
  """The state of an active learning experiment between rounds.

  Attributes:
    round: [] int32, rounds completed.
    labeled_mask: [N] bool over the pool.
    labels: [N] int32 revealed labels, -1 where unknown.
    key: PRNG key of the rounds; round r uses `fold_in(key, r)`.
    pool_state: [N] int32 kept by the strategy's `prepare` (-1 before the
      first query, and for strategies without one).
    variables: the last trained model's variables when warm-starting, else
      None.
  """
  round: jax.Array
  labeled_mask: jax.Array
  labels: jax.Array
  key: jax.Array
  pool_state: jax.Array
  variables: Any = None


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What stays fixed across rounds: data on device, model, jitted functions."""
  config: ml_collections.ConfigDict
  dataset: data.Dataset
  pool_images: jax.Array
  test_images: jax.Array
  test_labels: jax.Array
  graphdef: Any
  init_variables: Callable[[jax.Array], models.Variables]
  trainer: train.Trainer
  strategy: acquisition.Strategy
  select: Callable[..., jax.Array]
  prepare: Callable[..., jax.Array] | None
  oracle: oracles.Oracle

  @property
  def pool_size(self) -> int:
    return self.dataset.pool_labels.shape[0]


def build(config: ml_collections.ConfigDict, dataset: data.Dataset,
          oracle: oracles.Oracle | None = None) -> Experiment:
  """Puts the data on device and builds the jitted functions of a run."""
  config_lib.validate(config)
  config_lib.validate_budget(config, dataset.pool_labels.shape[0])
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
  for name in ('pool_images', 'test_images'):
    if not np.all(np.isfinite(getattr(dataset, name))):
      raise errors.ConfigError(
          f'dataset.{name} contains NaN or infinite values; clean or '
          'impute them before running an experiment.')
  image_shape = dataset.pool_images.shape[1:]
  graphdef, _ = models.init(jax.random.key(0), config.model, image_shape,
                            dataset.num_classes, config.dropout_rate)
  init_variables = lambda key: models.init(
      key, config.model, image_shape, dataset.num_classes,
      config.dropout_rate)[1]
  if config.uncertainty == 'ensemble':
    init_one = init_variables
    init_variables = lambda key: jax.vmap(init_one)(
        jax.random.split(key, config.ensemble_size))
  init_variables = jax.jit(init_variables)
  tx = train.make_optimizer(config.optimizer, config.learning_rate,
                            config.momentum, config.weight_decay)
  augment = data.random_crop_flip if config.augment else None
  in_jit_loop = {'auto': None, 'python': False, 'jit': True}[config.train_loop]
  trainer = train.Trainer(graphdef, tx, batch_size=config.batch_size,
                          augment=augment, in_jit_loop=in_jit_loop,
                          eval_chunk=config.eval_chunk)
  strategy = acquisition.get(config.strategy)
  unknown = set(strategy.needs) - set(acquisition.PREDICTIONS)
  if unknown:
    raise errors.ConfigError(
        f'Strategy {strategy.name!r} needs {sorted(unknown)}, which the loop '
        f'does not compute; needs must be among {acquisition.PREDICTIONS}.')
  select, prepare = jitted_select(strategy, config.strategy_kwargs)
  return Experiment(
      config=config, dataset=dataset,
      pool_images=jnp.asarray(dataset.pool_images),
      test_images=jnp.asarray(dataset.test_images),
      test_labels=jnp.asarray(dataset.test_labels),
      graphdef=graphdef, init_variables=init_variables, trainer=trainer,
      strategy=strategy, select=select, prepare=prepare,
      oracle=oracle or oracles.simulated(dataset.pool_labels))


def jitted_select(strategy: acquisition.Strategy, strategy_kwargs):
  """`strategy.select` and `.prepare` with hyperparameters bound, jitted."""
  kwargs = dict(strategy_kwargs)
  select = jax.jit(
      lambda key, inputs, mask, query_size: strategy.select(
          key, inputs, mask, query_size, **kwargs),
      static_argnums=3)
  prepare = None
  if strategy.prepare is not None:
    prepare = jax.jit(lambda key, inputs, mask: strategy.prepare(
        key, inputs, mask, **kwargs))
  return select, prepare


def init_state(exp: Experiment) -> ALState:
  """A random initial labeled set of `config.initial_size`, labels revealed.

  With `config.initial_per_class` the set holds that many points of every
  class, drawn with the dataset's pool labels (a simulation protocol).
  """
  initial_key, warm_key, rounds_key = jax.random.split(
      jax.random.key(exp.config.seed), 3)
  if exp.config.initial_per_class:
    initial = _balanced_sample(initial_key, exp.dataset.pool_labels,
                               exp.config.initial_per_class)
  else:
    initial = np.asarray(jax.random.choice(
        initial_key, exp.pool_size,
        (exp.config.initial_size,), replace=False))
  mask = np.zeros(exp.pool_size, bool)
  labels = np.full(exp.pool_size, -1, np.int32)
  mask[initial] = True
  labels[initial] = exp.oracle(initial)
  variables = (exp.init_variables(warm_key) if exp.config.warm_start
               else None)
  return ALState(jnp.zeros((), jnp.int32), jnp.asarray(mask),
                 jnp.asarray(labels), rounds_key,
                 jnp.full(exp.pool_size, -1, jnp.int32), variables)


def _balanced_sample(key: jax.Array, pool_labels: np.ndarray,
                     per_class: int) -> np.ndarray:
  """`per_class` random pool indices of every class (Gal et al. 2017)."""
  noise = np.asarray(jax.random.uniform(key, pool_labels.shape))
  return np.concatenate([
      np.flatnonzero(pool_labels == c)[
          np.argsort(noise[pool_labels == c])[:per_class]]
      for c in np.unique(pool_labels)])


def predictions(exp: Experiment, key: jax.Array, variables: models.Variables,
                state: ALState, needs) -> dict[str, jax.Array]:
  """Computes only the predictions in `needs` (see `jal.acquisition.base`).

  Log-probabilities are computed for unlabeled points only, unless
  embeddings are needed too, which cover the whole pool. `mc_log_probs`
  come from `config.uncertainty`: MC dropout, the ensemble's members, or
  heads sampled from a last-layer Laplace posterior. With an ensemble,
  `variables` are stacked and `log_probs` and `embeddings` are member 0's.
  """
  config = exp.config
  inputs = {}
  unlabeled = ~state.labeled_mask
  stacked = variables
  if config.uncertainty == 'ensemble':
    variables = uncertainty.member(stacked, 0)
  if 'embeddings' in needs:
    logits, inputs['embeddings'] = exp.trainer.predict(variables,
                                                       exp.pool_images)
    inputs['log_probs'] = jax.nn.log_softmax(logits)[None]
  elif 'log_probs' in needs:
    logits, _ = exp.trainer.predict(variables, exp.pool_images, unlabeled)
    inputs['log_probs'] = jax.nn.log_softmax(logits)[None]
  if 'mc_log_probs' in needs:
    if config.uncertainty == 'ensemble':
      inputs['mc_log_probs'] = uncertainty.ensemble_log_probs(
          exp.graphdef, stacked, exp.pool_images,
          chunk_size=config.eval_chunk, include_mask=unlabeled)
    elif config.uncertainty == 'laplace':
      inputs['mc_log_probs'] = laplace.laplace_log_probs(
          key, exp.graphdef, variables, exp.pool_images, state.labeled_mask,
          num_samples=config.mc_passes,
          prior_precision=config.laplace_prior_precision,
          structure=config.laplace_structure, chunk_size=config.eval_chunk)
    else:
      inputs['mc_log_probs'] = uncertainty.mc_dropout_log_probs(
          key, exp.graphdef, variables, exp.pool_images,
          num_passes=config.mc_passes, chunk_size=config.eval_chunk,
          include_mask=unlabeled)
  if 'labels' in needs:
    inputs['labels'] = state.labels
  return {name: inputs[name] for name in needs}


def round_step(exp: Experiment, state: ALState) -> tuple[ALState, dict]:
  """Trains, tests, and (unless this is the last round) queries and reveals.

  Returns:
    The next state and this round's record: round, num_labeled,
    test_accuracy (an ensemble's: of its mean prediction), train_seconds,
    query_seconds, selected (pool indices queried after testing, empty in the
    last round).
  """
  config = exp.config
  r = int(state.round)
  init_key, train_key, query_key = jax.random.split(
      jax.random.fold_in(state.key, r), 3)
  start = time.perf_counter()
  variables = (state.variables if config.warm_start
               else exp.init_variables(init_key))
  if config.uncertainty == 'ensemble':
    train_state = exp.trainer.fit_ensemble(
        train_key, variables, exp.pool_images, jnp.maximum(state.labels, 0),
        state.labeled_mask, config.num_epochs)
    variables = train_state.variables
    member_log_probs = uncertainty.ensemble_log_probs(
        exp.graphdef, variables, exp.test_images, chunk_size=config.eval_chunk)
    test_accuracy = float(jnp.mean(jnp.argmax(
        jnp.mean(jnp.exp(member_log_probs), 0), -1) == exp.test_labels))
  else:
    train_state = exp.trainer.fit(
        train_key, variables, exp.pool_images, jnp.maximum(state.labels, 0),
        state.labeled_mask, config.num_epochs)
    variables = train_state.variables
    test_accuracy = exp.trainer.accuracy(variables, exp.test_images,
                                         exp.test_labels)
  train_seconds = time.perf_counter() - start

  start = time.perf_counter()
  selected = np.zeros((0,), np.int32)
  mask, labels, pool_state = state.labeled_mask, state.labels, state.pool_state
  if r < config.num_rounds:
    predict_key, select_key = jax.random.split(query_key)
    inputs = predictions(exp, predict_key, variables, state,
                         exp.strategy.needs)
    if exp.prepare is not None:
      if r == 0:
        pool_state = exp.prepare(jax.random.fold_in(select_key, 1), inputs,
                                 mask)
      inputs['pool_state'] = pool_state
    selected = np.asarray(exp.select(select_key, inputs, mask,
                                     config.query_size))
    check_selection(selected, np.asarray(mask), config)
    mask = mask.at[selected].set(True)
    labels = labels.at[selected].set(exp.oracle(selected))
  query_seconds = time.perf_counter() - start

  record = dict(round=r, num_labeled=int(state.labeled_mask.sum()),
                test_accuracy=test_accuracy, train_seconds=train_seconds,
                query_seconds=query_seconds, selected=selected.tolist())
  next_state = ALState(state.round + 1, mask, labels, state.key, pool_state,
                       variables if config.warm_start else None)
  return next_state, record


def check_selection(selected: np.ndarray, labeled_mask: np.ndarray,
                    config) -> None:
  """Raises unless `selected` holds `query_size` distinct unlabeled indices."""
  if (selected.shape != (config.query_size,) or
      len(np.unique(selected)) != config.query_size or
      labeled_mask[selected].any()):
    raise RuntimeError(
        f'Strategy {config.strategy!r} returned {selected.tolist()}, which '
        f'is not {config.query_size} distinct unlabeled pool indices.')


def load_dataset(config) -> data.Dataset:
  """Loads `config.dataset` with the config's data options."""
  return data.load(config.dataset, data_dir=config.data_dir or None,
                   seed=config.seed, pool_size=config.pool_size)


def run(config: ml_collections.ConfigDict, workdir: str,
        dataset: data.Dataset | None = None,
        on_round: Callable[[dict], None] | None = None) -> dict:
  """Runs (or resumes) an experiment in `workdir`.

  Writes `config.json`; after every round the checkpoint and
  `results.jsonl` (one JSON record per round); at the end `summary.json`
  (aubc, final_accuracy, config).

  Args:
    config: experiment config (see `configs/default.py` for the fields).
    workdir: the experiment's directory; an existing one is resumed.
    dataset: use this dataset instead of loading `config.dataset`.
    on_round: called with each new round's record.

  Returns:
    The summary.

  Raises:
    ConfigError: a config field is out of range (before any work).
    CheckpointError: `workdir` belongs to an experiment with another config.
  """
  config_lib.validate(config)
  config_json = open_workdir(config, workdir)

  exp = build(config, dataset if dataset is not None else load_dataset(config))
  state = init_state(exp)
  records: list[dict] = []
  checkpoint_path = os.path.join(workdir, CHECKPOINT)
  if os.path.exists(checkpoint_path):
    state, records = checkpoint.restore(checkpoint_path, state)
    logging.info('Resuming %s after round %d.', workdir, int(state.round) - 1)

  while int(state.round) <= config.num_rounds:
    state, record = round_step(exp, state)
    records.append(record)
    save_round(workdir, state, records)
    if on_round is not None:
      on_round(record)
  return write_summary(workdir, records, config_json)


def open_workdir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Creates `workdir` with `config.json`, or checks the one it holds.

  Returns:
    The config as JSON.

  Raises:
    CheckpointError: `workdir` belongs to an experiment with another config.
  """
  os.makedirs(workdir, exist_ok=True)
  config_json = config.to_json_best_effort(sort_keys=True, indent=2)
  config_path = os.path.join(workdir, CONFIG)
  if os.path.exists(config_path):
    with open(config_path) as f:
      if json.load(f) != json.loads(config_json):
        raise errors.CheckpointError(
            f'{workdir} holds an experiment with a different config '
            f'({config_path}). Use a new work directory, or delete that one '
            'to start over.')
  else:
    checkpoint.atomic_write(config_path, config_json.encode())
  return config_json


def save_round(workdir: str, state: ALState, records: list[dict]) -> None:
  """Checkpoints the state after a round, then rewrites `results.jsonl`."""
  checkpoint.save(os.path.join(workdir, CHECKPOINT), state, records)
  checkpoint.atomic_write(
      os.path.join(workdir, RESULTS),
      ''.join(json.dumps(r) + '\n' for r in records).encode())


def write_summary(workdir: str, records: list[dict], config_json: str) -> dict:
  """Writes and returns `summary.json`: AUBC, final accuracy, config."""
  summary = summarize(records)
  summary['config'] = json.loads(config_json)
  checkpoint.atomic_write(os.path.join(workdir, SUMMARY),
                          json.dumps(summary, indent=2).encode())
  return summary


def summarize(records: list[dict]) -> dict:
  """AUBC and final accuracy of a run's per-round records."""
  num_labeled = [r['num_labeled'] for r in records]
  accuracies = [r['test_accuracy'] for r in records]
  return dict(aubc=metrics.aubc(num_labeled, accuracies),
              final_accuracy=metrics.final_accuracy(accuracies),
              num_labeled=num_labeled, test_accuracy=accuracies)
