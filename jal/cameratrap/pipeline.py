"""Seed 001's camera-trap labeling pipeline as an ask/tell labeling campaign.

Stages (Norouzzadeh et al. 2019, Alg. 2; `../shared/specs/methods.md` §4):

1. a detector trained on the source side drops the frames it calls empty
   (P(animal) < `detector_threshold`);
2. an embedder pre-trained on the source classes maps every kept frame to a
   256-d feature, once, in chunks;
3. `initial_size` random frames are labeled, then every step a strategy
   picks `query_size` more on the features and the head (an MLP 256→100→C,
   C = the target classes and "empty") is retrained from scratch;
4. each time the labeled count passes a multiple of `finetune_every`, the
   embedder is fine-tuned on the labeled target set with its own loss and
   the pool re-embedded.

A `Campaign` holds the pipeline between the questions: `ask()` gives the
open batch (pool rows to label), `tell(rows, labels)` records answers, and a
complete batch advances the pipeline. Everything is saved to the work
directory after every call (`checkpoint.npz`: labeled set, open batch,
embedder, records; `features.npz`: the cached features and the embedder
version they belong to; `prepared.npz`: the detector's decisions and the
pre-trained embedder), so a campaign killed anywhere, a fine-tune included,
resumes exactly. `run` drives a campaign with the true labels as the oracle.

On one's own frames: build a `frames.Split` from the arrays (the source side
with its labels; the pool with labels -1; a labeled test set, or none), then

  campaign = Campaign.create(workdir, config, split)
  rows = campaign.ask()                      # kept-pool rows to label
  images = split.pool_images[campaign.pool_rows(rows)]
  campaign.tell(rows, answers)               # 0..T-1, or T for empty
"""

import io
import json
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import acquisition
from jal import checkpoint
from jal import errors
from jal import workdir as workdir_lib
from jal.cameratrap import classifier
from jal.cameratrap import embedder as embedder_lib
from jal.cameratrap import frames
from jal.data import dataset as dataset_lib
from jal.data import digits
from jal.data import idx

PREPARED = 'prepared.npz'
FEATURES = 'features.npz'
STRATEGIES = ('random', 'least_confidence', 'margin', 'entropy', 'kcenter')
# Key streams, folded into the seed's key.
_DETECTOR, _PRETRAIN, _INITIAL, _QUERY, _HEAD, _FINETUNE, _TARGET_HEAD = range(7)


def default() -> ml_collections.ConfigDict:
  """The pipeline at seed 001's full scale (its values; see the configs)."""
  return ml_collections.ConfigDict(dict(
      dataset='mnist',
      source_classes=(0, 1, 2, 3, 4),
      target_classes=(5, 6, 7, 8, 9),
      empty_share=0.75,
      detector_threshold=0.9,
      detector_epochs=1,
      embedding_loss='triplet',
      embedding_size=256,
      triplet_margin=0.2,
      pretrain_epochs=3,
      finetune_epochs=10,
      finetune_every=2000,
      embedder_batch_size=128,
      embedder_learning_rate=1e-3,
      head_hidden_size=100,
      head_steps=500,
      head_batch_size=64,
      head_learning_rate=1e-3,
      initial_size=1000,
      query_size=100,
      budget=25000,
      strategy='kcenter',
      seed=0,
      chunk_size=1024,
  ))


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses a config the pipeline cannot run, saying which field and why."""
  embedder_lib.check_loss(config.embedding_loss)
  if config.strategy not in STRATEGIES:
    raise errors.ConfigError(
        f'strategy={config.strategy!r}: the pipeline compares '
        f'{", ".join(STRATEGIES)}; choose one of them.')
  for name in ('initial_size', 'query_size', 'budget', 'embedding_size',
               'head_hidden_size', 'head_steps', 'head_batch_size',
               'embedder_batch_size', 'chunk_size'):
    value = config[name]
    if not isinstance(value, int) or value < 1:
      raise errors.ConfigError(f'{name}={value!r}: give a positive integer.')
  for name in ('finetune_every', 'finetune_epochs', 'pretrain_epochs',
               'detector_epochs'):
    value = config[name]
    if not isinstance(value, int) or value < 0:
      raise errors.ConfigError(
          f'{name}={value!r}: give a non-negative integer (0 turns it off).')
  if config.budget < config.initial_size:
    raise errors.ConfigError(
        f'budget={config.budget} is below initial_size={config.initial_size}; '
        'the budget counts every label, the initial ones included.')
  if not 0.0 <= config.detector_threshold <= 1.0:
    raise errors.ConfigError(
        f'detector_threshold={config.detector_threshold}: give a probability '
        'in [0, 1] (the seed uses 0.9).')


def load_splits(name: str, data_dir: str | None, seed: int
                ) -> dataset_lib.Splits:
  """The labeled dataset the split is cut from: `digits` or an IDX name."""
  if name == 'digits':
    return digits.load_splits(seed)
  if name not in idx.DATASETS:
    raise errors.UnknownNameError(
        f'dataset={name!r}: the pipeline reads digits or '
        f'{", ".join(idx.DATASETS)}.')
  return idx.load_splits(name, dataset_lib.data_root(data_dir))


class Prepared(NamedTuple):
  """What the pipeline computes once, before the first label.

  Attributes:
    kept: [P'] int32 pool rows the detector calls animal, ascending.
    embedder: the embedder pre-trained on the source (`embedder.Params`, its
      head replaced by a fresh one over the target classes and "empty").
    mean: the source images' pixel mean (standardizes every image).
    std: their pixel standard deviation.
  """
  kept: np.ndarray
  embedder: embedder_lib.Params
  mean: np.ndarray
  std: np.ndarray


def _key(config, stream: int, index: int = 0) -> jax.Array:
  return jax.random.fold_in(
      jax.random.fold_in(jax.random.key(config.seed), stream), index)


def train_detector(config, split: frames.Split, mean, std
                   ) -> embedder_lib.Params:
  """The animal/empty classifier, trained on the source side only."""
  images = classifier.standardize(split.detector_images, mean, std)
  params = embedder_lib.init(_key(config, _DETECTOR), images.shape[1:],
                             config.embedding_size, 2)
  return embedder_lib.fit(
      _key(config, _DETECTOR, 1), params, images,
      jnp.asarray(split.detector_is_animal, jnp.int32),
      jnp.ones(len(images), bool), loss='cross_entropy', margin=0.0,
      batch_size=config.embedder_batch_size,
      num_epochs=config.detector_epochs,
      learning_rate=config.embedder_learning_rate)


def prepare(config, split: frames.Split) -> tuple[Prepared, dict]:
  """Trains the detector, filters the pool, pre-trains the embedder.

  Returns:
    The `Prepared` arrays and the detector's figures on the target pool
    (`classifier.detection_stats`, plus `threshold` and `kept`).
  """
  mean = np.float32(split.source_images.mean())
  std = np.float32(split.source_images.std())
  detector = train_detector(config, split, mean, std)
  prob = np.asarray(classifier.animal_probability(
      detector, classifier.standardize(split.pool_images, mean, std),
      chunk_size=config.chunk_size))
  detected = prob >= config.detector_threshold
  # A practitioner's pool arrives without labels (-1): no figures then.
  stats = (classifier.detection_stats(split.pool_is_animal, detected)
           if np.all(split.pool_labels >= 0) else {})
  stats.update(threshold=config.detector_threshold,
               kept=int(detected.sum()))
  kept = np.flatnonzero(detected).astype(np.int32)
  if kept.size < config.budget:
    raise errors.ConfigError(
        f'The detector kept {kept.size} pool frames, fewer than '
        f'budget={config.budget}. Lower the budget or the empty_share, or '
        'train the detector longer.')

  source = classifier.standardize(split.source_images, mean, std)
  num_source = int(split.source_labels.max()) + 1
  params = embedder_lib.init(_key(config, _PRETRAIN), source.shape[1:],
                             config.embedding_size, num_source)
  params = embedder_lib.fit(
      _key(config, _PRETRAIN, 1), params, source,
      jnp.asarray(split.source_labels), jnp.ones(len(source), bool),
      loss=config.embedding_loss, margin=config.triplet_margin,
      batch_size=config.embedder_batch_size,
      num_epochs=config.pretrain_epochs,
      learning_rate=config.embedder_learning_rate)
  params = params._replace(head=embedder_lib.init_head(
      _key(config, _TARGET_HEAD), config.embedding_size,
      split.num_target_classes + 1))
  return Prepared(kept, params, mean, std), stats


def save_prepared(path: str, config, prepared: Prepared, stats: dict) -> None:
  """Writes `prepare`'s result (and the detector's figures) atomically."""
  checkpoint.save(path, prepared, [stats], prepared_fingerprint(config))


def load_prepared(path: str, config, split: frames.Split
                  ) -> tuple[Prepared, dict]:
  """`save_prepared`'s file, checked against the config and the pool.

  Raises:
    CheckpointError: the file was written for another config or pool, or
      is damaged.
  """
  with np.load(path) as data:
    num_kept = data['.kept'].shape[0] if '.kept' in data.files else 0
  tree, records = checkpoint.restore(
      path, prepared_like(config, split, num_kept),
      prepared_fingerprint(config))
  prepared = jax.tree.map(np.asarray, tree)
  if num_kept and prepared.kept.max() >= len(split.pool_images):
    raise errors.CheckpointError(
        f'{path} keeps pool row {prepared.kept.max()}, but the pool has '
        f'{len(split.pool_images)} frames: it was prepared for another pool. '
        'Pass the same frames as when the campaign was created, or use a new '
        'work directory.')
  return prepared, records[0]


def prepared_like(config, split: frames.Split, num_kept: int) -> Prepared:
  """A `Prepared` of the right shapes, for `load_prepared`."""
  params = jax.eval_shape(
      lambda: embedder_lib.init(jax.random.key(0),
                                split.pool_images.shape[1:],
                                config.embedding_size,
                                split.num_target_classes + 1))
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), params)
  return Prepared(np.zeros(num_kept, np.int32), params, np.float32(0),
                  np.float32(0))


def prepared_fingerprint(config) -> str:
  """What `prepare` depends on: the config less the active learning fields."""
  fields = {k: v for k, v in config.to_dict().items() if k not in (
      'strategy', 'initial_size', 'query_size', 'budget', 'finetune_every',
      'finetune_epochs', 'head_hidden_size', 'head_steps', 'head_batch_size',
      'head_learning_rate')}
  return workdir_lib.fingerprint(json.dumps(fields, sort_keys=True,
                                            default=list))


class State(NamedTuple):
  """The campaign between two calls (saved in `checkpoint.npz`).

  Attributes:
    labeled_mask: [P'] bool over the kept pool.
    labels: [P'] int32, the told labels, -1 elsewhere.
    batch: [B] int32 kept-pool rows of the open batch, -1 padding; B is
      max(initial_size, query_size).
    version: [] int32, how many fine-tunes the embedder has had.
    embedder: the current `embedder.Params`.
    query_seconds: [] float32, the time the open batch's query took.
  """
  labeled_mask: jax.Array
  labels: jax.Array
  batch: jax.Array
  version: jax.Array
  embedder: embedder_lib.Params
  query_seconds: jax.Array


class Campaign:
  """The pipeline on one work directory; create or reopen with `create`."""

  def __init__(self, workdir, config, config_text, split, prepared, stats,
               state, records):
    self.workdir = workdir
    self.config = config
    self._config_text = config_text
    self.split = split
    self.prepared = prepared
    self.detector_stats = stats
    self.state = state
    self.records = records
    kept = prepared.kept
    self._pool = jnp.asarray(classifier.standardize(
        split.pool_images[kept], prepared.mean, prepared.std))
    self._test = jnp.asarray(classifier.standardize(
        split.test_images, prepared.mean, prepared.std))
    self.true_labels = split.pool_labels[kept]
    self.num_classes = split.num_target_classes + 1
    self._features = self._load_features()
    self._head = None

  @classmethod
  def create(cls, workdir: str, config: ml_collections.ConfigDict,
             split: frames.Split | None = None,
             prepared: tuple[Prepared, dict] | None = None) -> 'Campaign':
    """Opens `workdir`, creating the campaign (and preparing) if it is new.

    Args:
      workdir: the campaign's directory.
      config: the pipeline config (`default()` and the configs/ files).
      split: the data; by default cut from `config.dataset`.
      prepared: `prepare(config, split)`'s result, when a study shares one
        preparation between strategies; computed (and cached in `workdir`)
        otherwise.
    """
    check_config(config)
    config_text = workdir_lib.open_workdir(config, workdir)
    if split is None:
      split = frames.make_split(
          load_splits(config.dataset, None, config.seed),
          config.source_classes, config.target_classes, config.empty_share,
          config.seed)
    path = os.path.join(workdir, PREPARED)
    if os.path.exists(path):
      prepared = load_prepared(path, config, split)
    else:
      if prepared is None:
        prepared = prepare(config, split)
      save_prepared(path, config, *prepared)
    prepared, stats = prepared
    num_kept = prepared.kept.size
    width = max(config.initial_size, config.query_size)
    fresh = State(jnp.zeros(num_kept, bool), jnp.full(num_kept, -1, jnp.int32),
                  jnp.full(width, -1, jnp.int32), jnp.int32(0),
                  jax.tree.map(jnp.asarray, prepared.embedder),
                  jnp.float32(0))
    state, records = workdir_lib.restore(workdir, fresh, config_text)
    campaign = cls(workdir, config, config_text, split, prepared, stats, state,
                   records)
    campaign._finish_told_batch()
    return campaign

  # Features -----------------------------------------------------------------

  def _embed(self) -> tuple[jax.Array, jax.Array]:
    chunk = self.config.chunk_size
    return (embedder_lib.embed(self.state.embedder, self._pool,
                               chunk_size=chunk),
            embedder_lib.embed(self.state.embedder, self._test,
                               chunk_size=chunk))

  def _load_features(self):
    path = os.path.join(self.workdir, FEATURES)
    version = int(self.state.version)
    if os.path.exists(path):
      with np.load(path) as data:
        if int(data['version']) == version:
          return jnp.asarray(data['pool']), jnp.asarray(data['test'])
    # None yet, or written by a fine-tune whose checkpoint never landed.
    features = self._embed()
    self._save_features(features, version)
    return features

  def _save_features(self, features, version: int) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, pool=np.asarray(features[0]),
             test=np.asarray(features[1]), version=np.int32(version))
    checkpoint.atomic_write(os.path.join(self.workdir, FEATURES),
                            buffer.getvalue())

  # Questions and answers -----------------------------------------------------

  @property
  def num_labeled(self) -> int:
    return int(jnp.sum(self.state.labeled_mask))

  def _open_rows(self) -> np.ndarray:
    """Kept-pool rows of the open batch not told yet."""
    batch = np.asarray(self.state.batch)
    batch = batch[batch >= 0]
    return batch[~np.asarray(self.state.labeled_mask)[batch]]

  def pool_rows(self, kept_rows) -> np.ndarray:
    """Rows of the full pool (`split.pool_images`) for kept-pool rows."""
    return self.prepared.kept[np.asarray(kept_rows)]

  def ask(self) -> np.ndarray:
    """The open batch's unanswered kept-pool rows, opening a batch if none.

    Returns:
      [b] int32 kept-pool rows (`pool_rows` maps them to the full pool); empty
      once the budget is spent.
    """
    open_rows = self._open_rows()
    if open_rows.size or self.num_labeled >= self.config.budget:
      return open_rows
    start = time.perf_counter()
    if not self.records:
      picks = self._initial_rows()
    else:
      size = min(self.config.query_size,
                 self.config.budget - self.num_labeled)
      picks = np.asarray(self._query(size))
    batch = np.full(self.state.batch.shape, -1, np.int32)
    batch[:picks.size] = picks
    self.state = self.state._replace(
        batch=jnp.asarray(batch),
        query_seconds=jnp.float32(time.perf_counter() - start))
    self._save()
    return picks.astype(np.int32)

  def _initial_rows(self) -> np.ndarray:
    num_kept = self.prepared.kept.size
    order = jax.random.permutation(_key(self.config, _INITIAL), num_kept)
    return np.sort(np.asarray(order[:self.config.initial_size]))

  def _query(self, size: int) -> jax.Array:
    strategy = acquisition.get(self.config.strategy)
    inputs = {}
    if 'embeddings' in strategy.needs:
      inputs['embeddings'] = self._features[0]
    if 'log_probs' in strategy.needs:  # only these need the head's output
      inputs['log_probs'] = self._pool_log_probs()[None]
    return acquisition.query(
        strategy, _key(self.config, _QUERY, len(self.records)), inputs,
        self.state.labeled_mask, size)

  def tell(self, rows, labels) -> dict | None:
    """Records answers for rows of the open batch.

    Args:
      rows: kept-pool rows from `ask`.
      labels: their classes: 0..T-1 for the target classes, T for "empty".

    Returns:
      The round's record once the batch is complete (the head retrained,
      and the embedder fine-tuned when due), else None.

    Raises:
      ConfigError: a row outside the open batch or told twice, or a label
        out of range; nothing is changed.
    """
    rows = np.asarray(rows, np.int64).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    open_rows = set(self._open_rows().tolist())
    if rows.size != labels.size:
      raise errors.ConfigError(
          f'tell got {rows.size} rows and {labels.size} labels; give one '
          'label per row.')
    stray = [int(r) for r in rows if int(r) not in open_rows]
    if stray or len(set(rows.tolist())) != rows.size:
      raise errors.ConfigError(
          f'Rows {stray or rows.tolist()} are not open questions (or are '
          'told twice); tell only rows `ask` returned, once each.')
    bad = [int(v) for v in labels if not 0 <= v < self.num_classes]
    if bad:
      raise errors.ConfigError(
          f'Labels {bad} are out of range; give 0..{self.num_classes - 2} '
          f'for the target classes or {self.num_classes - 1} for an empty '
          'frame.')
    self.state = self.state._replace(
        labeled_mask=self.state.labeled_mask.at[rows].set(True),
        labels=self.state.labels.at[rows].set(jnp.asarray(labels, jnp.int32)))
    self._save()
    return self._finish_told_batch()

  def _finish_told_batch(self) -> dict | None:
    """Advances the pipeline if a batch is told in full but not yet trained."""
    if self._open_rows().size:
      return None
    recorded = self.records[-1]['num_labeled'] if self.records else 0
    if self.num_labeled == recorded:
      return None
    every = self.config.finetune_every
    finetuned = bool(every) and self.num_labeled // every > recorded // every
    start = time.perf_counter()
    if finetuned:
      self._finetune()
    finetune_seconds = time.perf_counter() - start
    record = self._train_and_record(finetuned)
    record.update(finetune_seconds=finetune_seconds,
                  train_seconds=finetune_seconds + record['train_seconds'])
    self._save()
    return record

  def _finetune(self) -> None:
    """Fine-tunes the embedder on the labeled set, then re-embeds."""
    version = int(self.state.version) + 1
    params = embedder_lib.fit(
        _key(self.config, _FINETUNE, version), self.state.embedder, self._pool,
        self.state.labels, self.state.labeled_mask,
        loss=self.config.embedding_loss, margin=self.config.triplet_margin,
        batch_size=self.config.embedder_batch_size,
        num_epochs=self.config.finetune_epochs,
        learning_rate=self.config.embedder_learning_rate)
    self.state = self.state._replace(embedder=params,
                                     version=jnp.int32(version))
    self._features = self._embed()
    self._save_features(self._features, version)

  # Training and records --------------------------------------------------------

  def _fit_head(self, round_: int):
    """The head of round `round_`: its key and the current labeled set."""
    return classifier.fit_head(
        _key(self.config, _HEAD, round_), self._features[0],
        self.state.labels, self.state.labeled_mask,
        num_classes=self.num_classes,
        hidden_size=self.config.head_hidden_size,
        batch_size=self.config.head_batch_size,
        num_steps=self.config.head_steps,
        learning_rate=self.config.head_learning_rate)

  def _log_probs(self, head, features) -> jax.Array:
    return classifier.head_log_probs(
        head, features, num_classes=self.num_classes,
        hidden_size=self.config.head_hidden_size,
        chunk_size=self.config.chunk_size)

  def _pool_log_probs(self) -> jax.Array:
    """The last round's head on the pool; after a resume it is retrained
    (same key, same labeled set), not stored."""
    if self._head is None:
      self._head = self._fit_head(len(self.records) - 1)
    return self._log_probs(self._head, self._features[0])

  def _train_and_record(self, finetuned: bool) -> dict:
    start = time.perf_counter()
    head = self._fit_head(len(self.records))
    self._head = head
    jax.block_until_ready(head)
    train_seconds = time.perf_counter() - start
    test_log_probs = np.asarray(self._log_probs(head, self._features[1]))
    predicted = test_log_probs.argmax(-1)
    test_labels = self.split.test_labels
    recalls = [np.mean(predicted[test_labels == c] == c)
               for c in np.unique(test_labels)]
    # Without a test set (a practitioner's own pool) the accuracies are NaN.
    accuracy = (float(np.mean(predicted == test_labels)) if test_labels.size
                else float('nan'))
    labeled = np.asarray(self.state.labeled_mask)
    batch = np.asarray(self.state.batch)
    record = dict(
        round=len(self.records), num_labeled=int(labeled.sum()),
        test_accuracy=accuracy,
        test_balanced_accuracy=float(np.mean(recalls)) if recalls else accuracy,
        finetuned=finetuned, embedder_version=int(self.state.version),
        num_empty_labeled=int(np.sum(
            np.asarray(self.state.labels)[labeled] == self.num_classes - 1)),
        selected=[int(r) for r in batch[batch >= 0]],
        train_seconds=train_seconds,
        query_seconds=float(self.state.query_seconds),
        test_seconds=time.perf_counter() - start - train_seconds)
    self.records.append(record)
    return record

  def _save(self) -> None:
    workdir_lib.save_round(self.workdir, self.state, self.records,
                           self._config_text)

  def finish(self) -> dict:
    """Writes `summary.json` (AUBC, final accuracy, the detector's figures)."""
    summary = workdir_lib.write_summary(self.workdir, self.records,
                                        self._config_text)
    summary['detector'] = self.detector_stats
    checkpoint.atomic_write(os.path.join(self.workdir, workdir_lib.SUMMARY),
                            json.dumps(summary, indent=2).encode())
    return summary


def run(config: ml_collections.ConfigDict, workdir: str,
        split: frames.Split | None = None,
        prepared: tuple[Prepared, dict] | None = None,
        log=print) -> list[dict]:
  """Runs the pipeline to its budget with the true labels as the oracle.

  Resumes from `workdir` if it holds a campaign of the same config.

  Returns:
    The per-round records.
  """
  campaign = Campaign.create(workdir, config, split, prepared)
  while True:
    rows = campaign.ask()
    if not rows.size:
      break
    record = campaign.tell(rows, campaign.true_labels[rows])
    if record is not None and log:
      log(f'round {record["round"]:3d}  labels {record["num_labeled"]:5d}  '
          f'accuracy {record["test_accuracy"]:.4f}'
          + ('  (embedder fine-tuned)' if record['finetuned'] else ''))
  campaign.finish()
  return campaign.records
