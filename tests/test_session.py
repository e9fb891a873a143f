"""Tests for jal.session: ask/tell campaigns equal the simulated loop."""

import json
import os
import numpy as np
import pytest

from jal import config as config_lib
from jal import errors
from jal import loop
from jal import session
from jal.data import digits
from jal.data import local
from tests import files

NAMES = tuple(str(c) for c in range(10))


@pytest.fixture(scope='module')
def pools():
  splits = digits.load_splits(0)
  n = 300
  pool = local.LocalPool(splits.train_images[:n],
              tuple(f'unlabeled/{i:04d}.png' for i in range(n)),
              np.full(n, -1, np.int32), NAMES, None)
  test = local.LocalPool(splits.test_images[:200],
              tuple(f'test/{i:04d}.png' for i in range(200)),
              splits.test_labels[:200].astype(np.int32), NAMES, None)
  return pool, test, splits.train_labels[:n].astype(np.int32)


def _config():
  config = config_lib.default()
  config.num_epochs = 3
  config.initial_size = 20
  config.query_size = 20
  config.num_rounds = 4
  config.strategy = 'margin'
  return config


def _simulated(config, pool, test, truth, workdir):
  dataset = local.to_dataset(pool._replace(labels=truth), test)
  loop.run(config, workdir, dataset)
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_campaign_with_restarts_equals_simulated_loop(pools, tmp_path):
  pool, test, truth = pools
  config = _config()
  workdir = str(tmp_path / 'campaign')
  session.Campaign.create(workdir, config, pool, test)
  for _ in range(config.num_rounds + 1):
    # Each call in a fresh campaign object: a restart between ask and tell,
    # and between two partial tells.
    batch = session.Campaign.open(workdir, pool, test).ask()
    assert session.Campaign.open(workdir, pool, test).ask().ids == batch.ids
    half = len(batch.ids) // 2
    first = session.Campaign.open(workdir, pool, test)
    assert first.tell(batch.ids[:half],
                      [int(truth[i]) for i in batch.indices[:half]]) is None
    second = session.Campaign.open(workdir, pool, test)
    record = second.tell(batch.ids[half:],  # class names this time
                         [NAMES[truth[i]] for i in batch.indices[half:]])
    assert record['num_labeled'] == len(second.labeled_ids)
  campaign = session.Campaign.open(workdir, pool, test)
  simulated = _simulated(config, pool, test, truth, str(tmp_path / 'sim'))
  assert [r['selected'] for r in campaign.records] == [
      r['selected'] for r in simulated]
  for key in ('test_accuracy', 'test_ece', 'stop_set_kappa',
              'queried_class_counts', 'label_cost', 'cumulative_label_cost'):
    assert [r[key] for r in campaign.records] == [
        r[key] for r in simulated], key
  assert campaign.status()['stopping'] == json.load(open(
      os.path.join(tmp_path, 'sim', 'summary.json')))['stopping']
  assert campaign.records[1]['selected_ids'] == [
      pool.ids[i] for i in simulated[1]['selected']]
  labels = campaign.labels
  assert len(labels) == 20 + 4 * 20
  assert all(labels[pool.ids[i]] == NAMES[truth[i]]
             for i in range(len(pool.ids)) if pool.ids[i] in labels)


def test_bad_tells_record_nothing(pools, tmp_path):
  pool, test, truth = pools
  workdir = str(tmp_path / 'c')
  campaign = session.Campaign.create(workdir, _config(), pool, test)
  with pytest.raises(errors.ConfigError, match='not in the open batch'):
    campaign.tell(['unlabeled/9999.png'], ['3'])
  batch = campaign.ask()
  campaign.tell(batch.ids[:1], [int(truth[batch.indices[0]])])
  before = files.snapshot(workdir)
  bad = [
      ([batch.ids[0]], ['1'], 'told twice'),
      ([batch.ids[1], batch.ids[1]], ['1', '2'], 'told twice'),
      ([batch.ids[1]], ['cat'], "'cat' is not a class"),
      ([batch.ids[1]], [10], 'is not a class'),
      ([batch.ids[1], batch.ids[2]], ['1'], 'one label per id'),
      (['unlabeled/0001.png?'], ['1'], 'not in the open batch'),
  ]
  for ids, labels, message in bad:
    with pytest.raises(errors.ConfigError, match=message):
      campaign.tell(ids, labels)
  assert files.snapshot(workdir) == before
  reopened = session.Campaign.open(workdir, pool, test)
  assert reopened.ask().answered == batch.ids[:1]


def test_answers_survive_a_crash_in_training(pools, tmp_path, monkeypatch):
  pool, test, truth = pools
  workdir = str(tmp_path / 'c')
  session.Campaign.create(workdir, _config(), pool, test)
  campaign = session.Campaign.open(workdir, pool, test)
  batch = campaign.ask()

  def crash(self):
    raise KeyboardInterrupt

  with monkeypatch.context() as patch:
    patch.setattr(session.Campaign, '_train_and_record', crash)
    with pytest.raises(KeyboardInterrupt):
      campaign.tell(batch.ids, [int(truth[i]) for i in batch.indices])
  reopened = session.Campaign.open(workdir, pool, test)  # finishes the batch
  assert reopened.open_batch() is None
  assert sorted(reopened.labeled_ids) == sorted(batch.ids)
  assert len(reopened.records) == 1


def test_prelabeled_pool_trains_at_creation(pools, tmp_path):
  pool, test, truth = pools
  labels = np.full(len(pool.ids), -1, np.int32)
  labels[:30] = truth[:30]
  campaign = session.Campaign.create(str(tmp_path / 'c'), _config(),
                                     pool._replace(labels=labels), test)
  assert len(campaign.records) == 1 and campaign.records[0]['num_labeled'] == 30
  batch = campaign.ask(7)
  assert len(batch.ids) == 7 and not set(batch.indices) & set(range(30))
  assert all(np.isfinite(batch.scores)) and all(batch.predictions)
  assert campaign.status()['num_labeled'] == 30


def test_open_refuses_another_pool(pools, tmp_path):
  pool, test, _ = pools
  workdir = str(tmp_path / 'c')
  session.Campaign.create(workdir, _config(), pool, test)
  with pytest.raises(errors.ConfigError, match='pool has changed'):
    session.Campaign.open(workdir, pool._replace(ids=pool.ids[:-1] + ('x',)),
                          test)
  with pytest.raises(errors.ConfigError, match='test set differs'):
    session.Campaign.open(workdir, pool, None)
  with pytest.raises(errors.CheckpointError, match='already holds a campaign'):
    session.Campaign.create(workdir, _config(), pool, test)
  with pytest.raises(errors.CheckpointError, match='holds no campaign'):
    session.Campaign.open(str(tmp_path / 'none'), pool, test)


def test_creation_stopped_before_its_end_can_be_rerun(pools, tmp_path,
                                                      monkeypatch):
  pool, test, truth = pools
  labels = np.full(len(pool.ids), -1, np.int32)
  labels[:30] = truth[:30]
  workdir = str(tmp_path / 'c')

  def crash(self):
    raise KeyboardInterrupt

  with monkeypatch.context() as patch:
    patch.setattr(session.Campaign, '_train_and_record', crash)
    with pytest.raises(KeyboardInterrupt):
      session.Campaign.create(workdir, _config(), pool._replace(labels=labels),
                              test)
  with pytest.raises(errors.CheckpointError, match='holds no campaign'):
    session.Campaign.open(workdir, pool._replace(labels=labels), test)
  campaign = session.Campaign.create(workdir, _config(),
                                     pool._replace(labels=labels), test)
  assert campaign.records[0]['num_labeled'] == 30
