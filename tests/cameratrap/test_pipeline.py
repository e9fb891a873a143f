"""The pipeline as a campaign: schedule, answers, and exact resume."""

import json
import os

import jax
import numpy as np
import pytest

from jal import errors
from jal.cameratrap import embedder as embedder_lib
from jal.cameratrap import frames
from jal.cameratrap import pipeline
from jal.data import digits


def small_config(**changes):
  config = pipeline.default()
  config.update(dict(
      dataset='digits', empty_share=0.5, embedding_loss='cross_entropy',
      embedding_size=32, detector_epochs=3, pretrain_epochs=3,
      finetune_epochs=2, head_steps=100, head_hidden_size=16,
      initial_size=30, query_size=15, budget=90, finetune_every=40,
      strategy='kcenter', chunk_size=256))
  config.update(changes)
  return config


@pytest.fixture(scope='module')
def split():
  return frames.make_split(digits.load_splits(0), (0, 1, 2, 3, 4),
                           (5, 6, 7, 8, 9), 0.5, seed=0)


@pytest.fixture(scope='module')
def prepared(split):
  return pipeline.prepare(small_config(), split)


def _run(workdir, split, prepared, **changes):
  return pipeline.run(small_config(**changes), workdir, split, prepared,
                      log=None)


def _final(workdir):
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    return [json.loads(line) for line in f]


def _without_seconds(records):
  return [{k: v for k, v in r.items() if not k.endswith('seconds')}
          for r in records]


@pytest.fixture(scope='module')
def reference(tmp_path_factory, split, prepared):
  workdir = str(tmp_path_factory.mktemp('reference'))
  records = _run(workdir, split, prepared)
  return workdir, records


def test_schedule_and_records(reference, prepared):
  workdir, records = reference
  assert [r['num_labeled'] for r in records] == [30, 45, 60, 75, 90]
  # Fine-tunes when the count passes a multiple of 40: at 45 and at 90.
  assert [r['finetuned'] for r in records] == [False, True, False, False,
                                               True]
  assert [r['embedder_version'] for r in records] == [0, 1, 1, 1, 2]
  picked = [p for r in records for p in r['selected']]
  assert len(set(picked)) == 90
  assert max(picked) < prepared[0].kept.size
  summary = json.load(open(os.path.join(workdir, 'summary.json')))
  assert summary['detector']['kept'] == prepared[0].kept.size
  assert summary['num_labeled'] == [30, 45, 60, 75, 90]
  assert all(0.0 <= r['test_accuracy'] <= 1.0 for r in records)


def test_detector_keeps_exactly_the_frames_at_or_above_threshold(split,
                                                                 prepared):
  kept, stats = prepared[0].kept, prepared[1]
  config = small_config()
  detector = pipeline.train_detector(config, split, prepared[0].mean,
                                     prepared[0].std)
  from jal.cameratrap import classifier  # pylint: disable=g-import-not-at-top
  prob = np.asarray(classifier.animal_probability(
      detector, classifier.standardize(split.pool_images, prepared[0].mean,
                                       prepared[0].std), chunk_size=256))
  np.testing.assert_array_equal(kept, np.flatnonzero(prob >= 0.9))
  assert stats['animal_as_animal'] + stats['empty_as_animal'] == kept.size
  assert stats['accuracy'] > 0.8


def test_features_are_the_current_embedders(reference, split, prepared):
  workdir, _ = reference
  campaign = pipeline.Campaign.create(workdir, small_config(), split,
                                      prepared)
  assert int(campaign.state.version) == 2
  with np.load(os.path.join(workdir, pipeline.FEATURES)) as data:
    stored = data['pool']
  expected = embedder_lib.embed(campaign.state.embedder, campaign._pool,
                                chunk_size=256)
  np.testing.assert_allclose(stored, np.asarray(expected), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, rtol=1e-5)


def _assert_same_run(workdir, reference_dir):
  assert _without_seconds(_final(workdir)) == _without_seconds(
      _final(reference_dir))
  a = pipeline.Campaign.create(workdir, small_config(), None, None)
  b = pipeline.Campaign.create(reference_dir, small_config(), None, None)
  untimed = lambda c: c.state._replace(query_seconds=0)
  for x, y in zip(jax.tree.leaves(untimed(a)), jax.tree.leaves(untimed(b))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize('where', ['fit', 'features_written'])
def test_a_kill_during_a_fine_tune_resumes_exactly(
    tmp_path, monkeypatch, reference, split, prepared, where):
  reference_dir, _ = reference
  workdir = str(tmp_path)
  calls = []
  real_fit, real_save = embedder_lib.fit, pipeline.Campaign._save_features

  def fit(*args, **kwargs):  # the second fine-tune's fit is killed
    calls.append('fit')
    if where == 'fit' and calls.count('fit') == 2:
      raise KeyboardInterrupt
    return real_fit(*args, **kwargs)

  def save_features(self, features, version):
    real_save(self, features, version)
    if where == 'features_written' and version == 2:
      raise KeyboardInterrupt  # after the file, before the checkpoint

  monkeypatch.setattr(embedder_lib, 'fit', fit)
  monkeypatch.setattr(pipeline.Campaign, '_save_features', save_features)
  with pytest.raises(KeyboardInterrupt):
    _run(workdir, split, prepared)
  assert len(_final(workdir)) == 4
  monkeypatch.undo()
  _run(workdir, split, prepared)
  _assert_same_run(workdir, reference_dir)


def test_answers_given_bit_by_bit_across_processes_match_the_run(
    tmp_path, reference, split, prepared):
  reference_dir, _ = reference
  workdir = str(tmp_path)
  config = small_config()
  while True:
    campaign = pipeline.Campaign.create(workdir, config, split, prepared)
    rows = campaign.ask()
    if not rows.size:
      break
    # Re-asking before answering gives the same batch.
    np.testing.assert_array_equal(campaign.ask(), rows)
    half = rows.size // 2
    assert campaign.tell(rows[:half], campaign.true_labels[rows[:half]]) is None
    campaign = pipeline.Campaign.create(workdir, config, split, prepared)
    np.testing.assert_array_equal(campaign.ask(), rows[half:])
    record = campaign.tell(rows[half:], campaign.true_labels[rows[half:]])
    assert record['num_labeled'] == campaign.num_labeled
  campaign.finish()
  _assert_same_run(workdir, reference_dir)


def test_bad_answers_are_refused_and_lose_nothing(tmp_path, split, prepared):
  workdir = str(tmp_path)
  campaign = pipeline.Campaign.create(workdir, small_config(), split, prepared)
  rows = campaign.ask()
  campaign.tell(rows[:2], campaign.true_labels[rows[:2]])
  outside = next(r for r in range(prepared[0].kept.size) if r not in rows)
  with pytest.raises(errors.ConfigError, match='not open questions'):
    campaign.tell([rows[2], outside], [0, 0])
  with pytest.raises(errors.ConfigError, match='not open questions'):
    campaign.tell(rows[:1], [0])  # told already
  with pytest.raises(errors.ConfigError, match='out of range'):
    campaign.tell(rows[2:3], [6])
  with pytest.raises(errors.ConfigError, match='one label per row'):
    campaign.tell(rows[2:4], [0])
  reopened = pipeline.Campaign.create(workdir, small_config(), split, prepared)
  np.testing.assert_array_equal(reopened.ask(), rows[2:])
  assert reopened.num_labeled == 2


@pytest.mark.parametrize('changes, match', [
    (dict(embedding_loss='contrastive'), 'embedding_loss'),
    (dict(strategy='bald'), 'strategy'),
    (dict(budget=10), 'budget'),
    (dict(finetune_every=-1), 'finetune_every'),
    (dict(detector_threshold=1.5), 'detector_threshold'),
])
def test_bad_configs_are_refused(tmp_path, changes, match):
  with pytest.raises(errors.ConfigError, match=match):
    pipeline.Campaign.create(str(tmp_path), small_config(**changes))


def test_another_config_in_the_workdir_is_refused(tmp_path, reference, split,
                                                  prepared):
  reference_dir, _ = reference
  with pytest.raises(errors.CheckpointError, match='different config'):
    pipeline.Campaign.create(reference_dir, small_config(query_size=10),
                             split, prepared)


def test_a_person_labeling_an_unlabeled_pool_gets_the_simulated_campaign(
    tmp_path, reference, split):
  reference_dir, _ = reference
  hidden = split.pool_labels
  unlabeled = split._replace(pool_labels=np.full_like(hidden, -1))
  config = small_config()
  prepared, stats = pipeline.prepare(config, unlabeled)
  assert set(stats) == {'threshold', 'kept'}
  campaign = pipeline.Campaign.create(str(tmp_path), config, unlabeled,
                                      (prepared, stats))
  while (rows := campaign.ask()).size:
    campaign.tell(rows, hidden[campaign.pool_rows(rows)])  # the person
  assert _without_seconds(campaign.records) == _without_seconds(
      _final(reference_dir))


def test_reopening_with_another_pool_is_refused(tmp_path, split, prepared):
  workdir = str(tmp_path)
  pipeline.Campaign.create(workdir, small_config(), split, prepared)
  smaller = split._replace(pool_images=split.pool_images[:100],
                           pool_labels=split.pool_labels[:100])
  with pytest.raises(errors.CheckpointError, match='another pool'):
    pipeline.Campaign.create(workdir, small_config(), smaller)
