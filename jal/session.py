"""Labeling campaigns: a person answers the batches the model asks for.

A campaign is the simulated loop (`jal.loop`) with the oracle outside the
process: the same strategy, posterior, model and round functions
(`jal.rounds`), split at the oracle call into

  batch = campaign.ask()          # the open batch, or a new query
  campaign.tell(ids, labels)      # answers; a complete batch retrains

and saved to its work directory after every call, so a campaign can pause
for days between an `ask` and its `tell` and resume in another process. A
campaign given the answers a simulated oracle would give ends with the same
labeled set, records and model as `loop.run` with the same config and seed.

The first batch is the initial set (`config.initial_size` points drawn as
the simulated loop draws them), unless the pool arrives with labels (an
image folder's `root/<class>/` items): then those are the initial set and the
first model is trained when the campaign is created. Later batches are the
strategy's queries of `n` points (default `config.query_size`).

Rules of `tell`: every id must be in the open batch and told once; labels
are class names or indices; a partial answer is kept (saved) and the model
retrains when the batch is complete; asking again before then returns the
same open batch. Anything else is refused with a `ConfigError` that names the
offending ids, and nothing already told is lost.

Files in the work directory: `config.json`, `campaign.json` (the pool's ids
and class names, fixed at creation), `checkpoint.npz` (state, the last
model, the open batch; records) and `results.jsonl` (one record per trained
round, with the labeled ids). Labels of pool items that arrive after
creation are ignored: the campaign's answers are the ones told to it.
"""

import functools
import hashlib
import json
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import acquisition
from jal import annotate
from jal import checkpoint
from jal import config as config_lib
from jal import errors
from jal import loop
from jal import models
from jal import oracle as oracles
from jal import predict
from jal import rounds
from jal import stopping
from jal import workdir as workdir_lib
from jal.data import local

CAMPAIGN = 'campaign.json'


class Batch(NamedTuple):
  """A batch of pool items for a person to label.

  Attributes:
    round: the round whose model asked for it (-1: the initial set).
    ids: the items' stable ids, in the order of the query.
    indices: [b] int pool indices.
    scores: [b] float32 acquisition scores (NaN where the strategy ranks
      sets rather than points, and for the initial set).
    predictions: the model's predicted class names ('' before any model).
    confidences: [b] float32 the predicted class's probability (NaN before
      any model).
    answered: ids of the batch already told.
  """
  round: int
  ids: tuple[str, ...]
  indices: np.ndarray
  scores: np.ndarray
  predictions: tuple[str, ...]
  confidences: np.ndarray
  answered: tuple[str, ...] = ()


class OpenBatch(NamedTuple):
  """The open batch as saved with the campaign: fixed [N] shapes.

  Attributes:
    position: [N] int32 the item's place in the batch, -1 outside it.
    answers: [N] int32 told labels, -1 where not told yet.
    scores: [N] float32 acquisition scores.
    predicted: [N] int32 the model's predicted class, -1 before any model.
    confidences: [N] float32.
    strategy_state: the strategy state the query returned.
  """
  position: jax.Array
  answers: jax.Array
  scores: jax.Array
  predicted: jax.Array
  confidences: jax.Array
  strategy_state: Any


def _ids_digest(ids) -> str:
  return hashlib.sha256('\n'.join(ids).encode()).hexdigest()[:16]


def _acquisition_scores(exp, data, trained, state) -> jax.Array:
  """[N] the score a score-based strategy ranked the round's query by."""
  inputs, _, _ = rounds._query_inputs(  # pylint: disable=protected-access
      exp, data, trained, state)
  return exp.strategy.score(inputs)


class Campaign:
  """An ask/tell labeling campaign in a work directory (see the module doc).

  Make one with `Campaign.create` or `Campaign.open`; each `ask` and `tell`
  saves it.
  """

  def __init__(self, workdir, config, pool, test, exp, data, config_text,
               state, trained, open_batch, records):
    self.workdir = workdir
    self.config = config
    self.pool = pool
    self.test = test
    self._exp = exp
    self._data = data
    self._config_text = config_text
    self._state = state
    self._trained = trained
    self._open = open_batch
    self.records = records
    self._fns = loop.RoundFns(exp)
    self._costs = oracles.label_costs(config.label_costs, len(pool.ids),
                                      exp.num_classes)
    self._scores = jax.jit(functools.partial(_acquisition_scores, exp))
    self._query_n = jax.jit(functools.partial(rounds.query_round, exp),
                            static_argnums=3)

  # Building and saving.

  @staticmethod
  def _setup(config, pool, test, model, strategy):
    config_lib.validate(config)
    dataset = local.to_dataset(pool, test)
    pool_images, labels = dataset.pool_images, dataset.pool_labels
    num_classes = dataset.num_classes
    if config.initial_per_class:
      raise errors.ConfigError(
          f'config.initial_per_class = {config.initial_per_class} draws the '
          "initial set with the pool's labels, which a campaign does not "
          'have; set it to 0.')
    if model is None and pool_images.ndim != 4:
      raise errors.ConfigError(
          f'config.model = {config.model!r} needs images [N, H, W, C]; a '
          f'features pool of shape {pool_images.shape} needs config.model = '
          "'mlp' on features, or your own model.")
    exp = rounds.make_experiment(config, pool_images.shape[1:], num_classes,
                                 model, strategy)
    if config.validation_size and (test is None or config.validation_size >=
                                   dataset.test_labels.shape[0]):
      raise errors.ConfigError(
          f'config.validation_size = {config.validation_size} needs a '
          'held-out labeled set with more items than that (--test_images).')
    return exp, loop.make_data(config, dataset)

  @staticmethod
  def _templates(exp, data, state):
    """Zeros shaped like the saved tree: trained model and open batch."""
    n = data.pool_images.shape[0]

    def trained_shape():
      return rounds.untrained(exp, data, jax.random.key(0))

    trained = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                           jax.eval_shape(trained_shape))
    open_batch = OpenBatch(
        jnp.full((n,), -1, jnp.int32), jnp.full((n,), -1, jnp.int32),
        jnp.full((n,), jnp.nan, jnp.float32), jnp.full((n,), -1, jnp.int32),
        jnp.full((n,), jnp.nan, jnp.float32), state.strategy_state)
    return trained, open_batch

  def _save(self) -> None:
    tree = dict(state=self._state, trained=self._trained, open=self._open)
    checkpoint.save(os.path.join(self.workdir, workdir_lib.CHECKPOINT), tree,
                    self.records, workdir_lib.fingerprint(self._config_text))
    workdir_lib.write_results(self.workdir, self.records)

  @classmethod
  def create(cls, workdir: str, config: ml_collections.ConfigDict, pool,
             test=None, *, model: models.Model | None = None,
             strategy: acquisition.Strategy | None = None) -> 'Campaign':
    """Starts a campaign in `workdir` (an existing one is refused).

    Args:
      workdir: a new directory.
      config: the experiment config (`jal.config.default()` fields).
      pool: a `jal.data.LocalPool` (images or features, ids, labels -1
        where unknown, class names), standardized with `to_dataset`.
      test: an optional `LocalPool` with every label known, for accuracy.
      model, strategy: a user's model and strategy, as in `loop.run`.
    """
    exp, data = cls._setup(config, pool, test, model, strategy)
    if os.path.exists(os.path.join(workdir, CAMPAIGN)):
      raise errors.CheckpointError(
          f'{workdir} already holds a campaign; open it (label.py ask/tell/'
          'status), or pick a new --workdir to start another.')
    config_text = workdir_lib.open_workdir(config, workdir)
    state = loop.init_state(exp, data, None)
    trained, open_batch = cls._templates(exp, data, state)
    known = np.asarray(pool.labels) >= 0
    campaign = cls(workdir, config, pool, test, exp, data, config_text, state,
                   trained, open_batch, [])
    if known.any():
      campaign._state = state._replace(
          labeled_mask=jnp.asarray(known),
          labels=jnp.asarray(np.where(known, pool.labels, -1), jnp.int32))
      campaign._train_and_record()
    else:
      initial = np.flatnonzero(np.asarray(state.labeled_mask))
      campaign._state = state._replace(
          labeled_mask=jnp.zeros_like(state.labeled_mask))
      campaign._open_batch(initial, np.full(initial.shape, np.nan),
                           None, state.strategy_state)
    campaign._save()
    # Written last: a creation that stops before this point can be rerun.
    checkpoint.atomic_write(os.path.join(workdir, CAMPAIGN), json.dumps(dict(
        num_items=len(pool.ids), ids_digest=_ids_digest(pool.ids),
        class_names=list(pool.class_names),
        test_ids_digest=None if test is None else _ids_digest(test.ids)),
        indent=2).encode())
    return campaign

  @classmethod
  def open(cls, workdir: str, pool, test=None, *,
           model: models.Model | None = None,
           strategy: acquisition.Strategy | None = None) -> 'Campaign':
    """Resumes the campaign in `workdir` on the same pool (and test set)."""
    path = os.path.join(workdir, CAMPAIGN)
    try:
      with open(path) as f:
        meta = json.load(f)
      with open(os.path.join(workdir, workdir_lib.CONFIG)) as f:
        config = ml_collections.ConfigDict(json.load(f))
    except FileNotFoundError:
      raise errors.CheckpointError(
          f'{workdir} holds no campaign ({path} is missing); create one '
          'first (label.py create).') from None
    except (OSError, ValueError) as e:
      raise errors.CheckpointError(
          f'{path} or its config.json is damaged ({e}); the campaign cannot '
          'be opened.') from None
    if (meta.get('num_items') != len(pool.ids) or
        meta.get('ids_digest') != _ids_digest(pool.ids)):
      raise errors.ConfigError(
          f'The pool has changed since the campaign in {workdir} was created '
          f'({len(pool.ids)} items now, {meta.get("num_items")} then, or '
          'other ids). Restore the files it was created with, or create a '
          'new campaign.')
    if list(pool.class_names) != meta.get('class_names'):
      raise errors.ConfigError(
          f'The pool\'s classes {list(pool.class_names)} differ from the '
          f'campaign\'s {meta.get("class_names")}.')
    test_digest = None if test is None else _ids_digest(test.ids)
    if test_digest != meta.get('test_ids_digest'):
      raise errors.ConfigError(
          'The held-out test set differs from the one the campaign was '
          'created with; give the same one (or none, if none was given).')
    exp, data = cls._setup(config, pool, test, model, strategy)
    with open(os.path.join(workdir, workdir_lib.CONFIG)) as f:
      config_text = f.read()
    state = loop.init_state(exp, data, None)
    trained, open_batch = cls._templates(exp, data, state)
    like = dict(state=state, trained=trained, open=open_batch)
    tree, records = checkpoint.restore(
        os.path.join(workdir, workdir_lib.CHECKPOINT), like,
        workdir_lib.fingerprint(config_text))
    campaign = cls(workdir, config, pool, test, exp, data, config_text,
                   tree['state'], tree['trained'], tree['open'], records)
    campaign._check_restored()
    batch = campaign.open_batch()
    if batch is not None and len(batch.answered) == len(batch.ids):
      # Answered in full, then stopped before (or while) training.
      campaign._finish_batch(batch)
      campaign._save()
    return campaign

  def _check_restored(self) -> None:
    mask = np.asarray(self._state.labeled_mask)
    labels = np.asarray(self._state.labels)
    position = np.asarray(self._open.position)
    bad = (np.any(labels[~mask] != -1) or
           np.any(labels[mask] < 0) or
           np.any(labels[mask] >= len(self.pool.class_names)) or
           np.any(mask & (position >= 0)) or
           len(self.records) != int(self._state.round) + (1 if self.records
                                                          else 0))
    if bad:
      raise errors.CheckpointError(
          f'{os.path.join(self.workdir, workdir_lib.CHECKPOINT)} holds a '
          'state this campaign never writes; it cannot be resumed.')

  # The round's pieces.

  def _open_batch(self, indices, scores, trained, strategy_state) -> None:
    n = self._data.pool_images.shape[0]
    position = np.full(n, -1, np.int32)
    position[indices] = np.arange(len(indices))
    score_row = np.full(n, np.nan, np.float32)
    score_row[indices] = scores
    predicted = np.full(n, -1, np.int32)
    confidence = np.full(n, np.nan, np.float32)
    if trained is not None:
      variables = self._exp.posterior.point(trained.variables)
      logits, _ = predict.predict(self._exp.model, variables,
                                  self._data.pool_images[indices],
                                  chunk_size=self.config.eval_chunk)
      probs = np.asarray(jax.nn.softmax(logits))
      predicted[indices] = probs.argmax(-1)
      confidence[indices] = probs.max(-1)
    self._open = OpenBatch(
        jnp.asarray(position), jnp.full((n,), -1, jnp.int32),
        jnp.asarray(score_row), jnp.asarray(predicted),
        jnp.asarray(confidence), strategy_state)

  def _train_and_record(self) -> dict:
    """Trains on the labeled set, tests, and appends the round's record."""
    state = self._state
    start = time.perf_counter()
    trained = jax.block_until_ready(self._fns.train(self._data, state))
    train_seconds = time.perf_counter() - start
    accuracy = balanced = None
    if self.test is not None:
      accuracy, balanced = (float(v) for v in
                            self._fns.test_metrics(self._data, trained))
      loop.check_accuracy(accuracy, self.config, int(state.round))
    mask = np.asarray(state.labeled_mask)
    record = dict(round=int(state.round), num_labeled=int(mask.sum()),
                  test_accuracy=accuracy, test_balanced_accuracy=balanced,
                  train_seconds=train_seconds, selected=[],
                  selected_ids=[])
    record.update(loop.diagnostics_record(
        self._exp.num_classes, state, self._fns.diagnostics(self._data,
                                                            trained),
        [], [], costs=self._costs,
        previous=self.records[-1] if self.records else None))
    if self.test is None:
      record['test_ece'] = None
    self._trained = trained
    self.records.append(record)
    return record

  # The public calls.

  @property
  def labeled_ids(self) -> list[str]:
    """Ids of the labeled items, in pool order."""
    mask = np.asarray(self._state.labeled_mask)
    return [self.pool.ids[i] for i in np.flatnonzero(mask)]

  @property
  def labels(self) -> dict[str, str]:
    """Labeled id → class name."""
    labels = np.asarray(self._state.labels)
    return {self.pool.ids[i]: self.pool.class_names[labels[i]]
            for i in np.flatnonzero(np.asarray(self._state.labeled_mask))}

  def open_batch(self) -> Batch | None:
    """The batch waiting for answers, or None."""
    position = np.asarray(self._open.position)
    if not np.any(position >= 0):
      return None
    indices = np.flatnonzero(position >= 0)
    indices = indices[np.argsort(position[indices])]
    predicted = np.asarray(self._open.predicted)[indices]
    answers = np.asarray(self._open.answers)
    return Batch(
        round=len(self.records) - 1 if self.records else -1,
        ids=tuple(self.pool.ids[i] for i in indices), indices=indices,
        scores=np.asarray(self._open.scores)[indices],
        predictions=tuple(self.pool.class_names[p] if p >= 0 else ''
                          for p in predicted),
        confidences=np.asarray(self._open.confidences)[indices],
        answered=tuple(self.pool.ids[i] for i in indices if answers[i] >= 0))

  def items(self, batch: Batch) -> list[annotate.BatchItem]:
    """The batch's items for a batch file, Label Studio or a labeler."""
    paths = self.pool.paths
    return [annotate.BatchItem(item, None if paths is None else paths[index],
                               float(score), prediction)
            for item, index, score, prediction in zip(
                batch.ids, batch.indices, batch.scores, batch.predictions)]

  def ask(self, n: int | None = None) -> Batch:
    """The open batch if there is one, else the strategy's next `n` points.

    Args:
      n: the batch size (default `config.query_size`); ignored while a batch
        is open.
    """
    unlabeled = int(np.sum(~np.asarray(self._state.labeled_mask)))
    if n is not None and (not isinstance(n, (int, np.integer)) or
                          isinstance(n, bool) or n < 1):
      raise errors.ConfigError(
          f'ask(n={n!r}): n must be a positive int (at most {unlabeled}, the '
          'unlabeled items left).')
    pending = self.open_batch()
    if pending is not None:
      return pending
    n = self.config.query_size if n is None else n
    if n > unlabeled:
      raise errors.ConfigError(
          f'ask(n={n}): only {unlabeled} items are left unlabeled; ask for '
          'at most that many.')
    start = time.perf_counter()
    selected, strategy_state = self._query_n(
        self._data, self._trained, self._state, int(n))
    selected = np.asarray(selected)
    loop.check_selection(selected, np.asarray(self._state.labeled_mask), n,
                         self._exp.strategy.name)
    scores = np.full(n, np.nan, np.float32)
    if self._exp.strategy.score is not None:
      scores = np.asarray(self._scores(self._data, self._trained,
                                       self._state))[selected]
    self._open_batch(selected, scores, self._trained, strategy_state)
    record = self.records[-1]
    record['selected'] = selected.tolist()
    record['selected_ids'] = [self.pool.ids[i] for i in selected]
    record['query_seconds'] = time.perf_counter() - start
    self._save()
    return self.open_batch()

  def tell(self, ids, labels) -> dict | None:
    """Records answers for items of the open batch.

    Args:
      ids: item ids of the open batch.
      labels: one per id: a class name or a class index.

    Returns:
      The new round's record when the answers complete the batch (the model
      was retrained), else None.

    Raises:
      ConfigError: no batch is open, an id is not in it or was told before
        (or twice here), a label is not a class; nothing is recorded then.
    """
    ids, labels = list(ids), list(labels)
    batch = self.open_batch()
    if batch is None:
      raise errors.ConfigError(
          'No batch is open: ask for one before telling labels.')
    if len(ids) != len(labels):
      raise errors.ConfigError(
          f'tell got {len(ids)} ids but {len(labels)} labels; give one label '
          'per id.')
    in_batch = dict(zip(batch.ids, batch.indices))
    names = list(self.pool.class_names)
    problems, answers = [], np.asarray(self._open.answers).copy()
    seen = set()
    for item, label in zip(ids, labels):
      if item not in in_batch:
        problems.append(f'{item!r} is not in the open batch')
        continue
      if item in seen or answers[in_batch[item]] >= 0:
        problems.append(f'{item!r} was told twice')
        continue
      seen.add(item)
      if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        index = int(label) if 0 <= label < len(names) else None
      else:
        index = names.index(label) if label in names else None
      if index is None:
        problems.append(f'{item!r}: {label!r} is not a class ({", ".join(names)})')
        continue
      answers[in_batch[item]] = index
    if problems:
      shown = '; '.join(problems[:10])
      more = f' (and {len(problems) - 10} more)' if len(problems) > 10 else ''
      raise errors.ConfigError(
          f'Nothing was recorded: {shown}{more}. Fix the answers and tell '
          'again.')
    self._open = self._open._replace(answers=jnp.asarray(answers))
    self._save()  # the answers are safe before any training
    if np.any(answers[batch.indices] < 0):
      return None
    record = self._finish_batch(batch)
    self._save()
    return record

  def _finish_batch(self, batch: Batch) -> dict:
    """Reveals a fully answered batch, retrains and records the round."""
    indices = batch.indices
    answers = np.asarray(self._open.answers)[indices]
    told = jnp.asarray(answers, jnp.int32)
    if self.records:  # the batch the last model asked for
      self.records[-1].update(
          queried_class_counts=np.bincount(
              answers, minlength=self._exp.num_classes).tolist(),
          label_cost=oracles.batch_cost(self._costs, indices, answers))
      self._state = self._fns.reveal(self._state, jnp.asarray(indices), told,
                                     self._open.strategy_state, self._trained)
    else:  # the initial set
      self._state = self._state._replace(
          labeled_mask=self._state.labeled_mask.at[indices].set(True),
          labels=self._state.labels.at[indices].set(told))
    n = self._data.pool_images.shape[0]
    self._open = self._open._replace(
        position=jnp.full((n,), -1, jnp.int32),
        answers=jnp.full((n,), -1, jnp.int32))
    return self._train_and_record()

  def status(self) -> dict:
    """Labels so far, the open batch, the last accuracy, the budget."""
    config = self.config
    mask = np.asarray(self._state.labeled_mask)
    labels = np.asarray(self._state.labels)[mask]
    budget = min(mask.size, config.initial_size +
                 config.num_rounds * config.query_size)
    batch = self.open_batch()
    last = self.records[-1] if self.records else {}
    return dict(
        num_labeled=int(mask.sum()), num_items=int(mask.size), budget=budget,
        rounds_trained=len(self.records),
        class_counts={name: int(np.sum(labels == c))
                      for c, name in enumerate(self.pool.class_names)},
        open_batch=None if batch is None else dict(
            size=len(batch.ids), answered=len(batch.answered)),
        test_accuracy=last.get('test_accuracy'),
        validation_accuracy=last.get('validation_accuracy'),
        stopping=stopping.evaluate(self.records, config),
        accuracy_curve=[(r['num_labeled'], r['test_accuracy'])
                        for r in self.records])
