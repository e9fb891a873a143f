"""Hostile inputs, classes 1, 5 and 6: kills, claimed workdirs, damaged state.

A kill is simulated at every write of a run (before the write, and between a
write's temporary file and its rename) by an exception nothing catches; the
resumed run must end with the records, summary and report of a run that was
never interrupted. Damaged or foreign state must be refused with a
`CheckpointError` that names the file, leaving every file as it was.
"""

import json
import os
import threading

import numpy as np
import pytest

from jal import checkpoint
from jal import errors
from jal import loop
from jal import study
from jal.report import runs as report_runs
from tests import files
from tests.synthetic import make_blobs_dataset


class _Killed(BaseException):
  """Stands for SIGKILL: no `except Exception` in jal can swallow it."""


@pytest.fixture
def config(tiny_config):
  tiny_config.num_epochs = 2
  tiny_config.initial_size = 20
  tiny_config.query_size = 10
  tiny_config.num_rounds = 2
  return tiny_config


@pytest.fixture(scope='module')
def blobs():
  return make_blobs_dataset()


def _without_timings(records):
  return [{k: v for k, v in r.items() if not k.endswith('_seconds')}
          for r in records]


def _results(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return _without_timings([json.loads(line) for line in f])


def _summary(workdir):
  with open(os.path.join(workdir, loop.SUMMARY)) as f:
    return json.load(f)


def _curve(workdir):
  run = report_runs.read_run(study.Cell('blobs', 'entropy', 0), workdir)
  return run.num_labeled, run.accuracies


def _writes_of_a_run(config, blobs, workdir, monkeypatch):
  calls = []
  real = checkpoint.atomic_write

  def counting(path, data):
    calls.append(os.path.basename(path))
    real(path, data)

  monkeypatch.setattr(checkpoint, 'atomic_write', counting)
  loop.run(config, workdir, dataset=blobs)
  monkeypatch.setattr(checkpoint, 'atomic_write', real)
  return calls


def test_a_kill_at_any_write_resumes_to_the_uninterrupted_run(
    config, blobs, tmp_path, monkeypatch):
  whole = str(tmp_path / 'whole')
  writes = _writes_of_a_run(config, blobs, whole, monkeypatch)
  # config.json, then checkpoint and results of rounds 0..2, then summary.
  assert writes == [loop.CONFIG] + [loop.CHECKPOINT, loop.RESULTS] * 3 + [
      loop.SUMMARY]
  real = checkpoint.atomic_write
  for n, name in enumerate(writes):
    for phase in ('before the write', 'before the rename'):
      killed = str(tmp_path / f'killed_{n}_{phase.split()[-1]}')
      count = iter(range(len(writes)))

      def dying(path, data, n=n, phase=phase, count=count):
        if next(count) == n:
          if phase == 'before the rename':
            with open(f'{path}.tmp', 'wb') as f:
              f.write(data[:len(data) // 2])
          raise _Killed()
        real(path, data)

      monkeypatch.setattr(checkpoint, 'atomic_write', dying)
      with pytest.raises(_Killed):
        loop.run(config, killed, dataset=blobs)
      monkeypatch.setattr(checkpoint, 'atomic_write', real)
      loop.run(config, killed, dataset=blobs)
      where = f'killed at write {n} ({name}), {phase}'
      assert _results(killed) == _results(whole), where
      assert ({k: v for k, v in _summary(killed).items()} ==
              _summary(whole)), where
      assert _curve(killed) == _curve(whole), where


@pytest.mark.parametrize('damage', ['emptied', 'truncated', 'garbage',
                                    'deleted'])
def test_a_finished_run_with_damaged_results_is_restored(config, blobs,
                                                         tmp_path, damage):
  loop.run(config, str(tmp_path), dataset=blobs)
  expected = _results(tmp_path)
  path = tmp_path / loop.RESULTS
  text = path.read_text()
  if damage == 'deleted':
    path.unlink()
  else:
    path.write_text({'emptied': '', 'truncated': text[:len(text) // 2],
                     'garbage': '{not json\n'}[damage])
  os.remove(tmp_path / loop.SUMMARY)
  loop.run(config, str(tmp_path), dataset=blobs)
  assert _results(tmp_path) == expected
  assert _summary(tmp_path)['test_accuracy'] == [
      r['test_accuracy'] for r in expected]


@pytest.mark.parametrize('field, value, names', [
    ('num_rounds', 1000, 'exceeds the pool'),
    ('initial_per_class', 3, 'config.initial_per_class'),
    ('seed', -1, 'config.seed'),
    ('optimizer', 'adamw', 'config.optimizer'),
    ('dataset', 'mnist', 'mnist'),
])
def test_a_rejected_config_does_not_claim_the_workdir(config, tmp_path,
                                                      monkeypatch, field,
                                                      value, names):
  monkeypatch.setenv('JAL_DATA_DIR', str(tmp_path / 'no_data_here'))
  good = config.to_dict()
  config[field] = value
  with pytest.raises(errors.JalError, match=names):
    loop.run(config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w' / loop.CONFIG)
  config.update(good)
  config.num_epochs = 1
  config.num_rounds = 0
  assert loop.run(config, str(tmp_path / 'w'))['num_labeled'] == [20]


def test_refusing_a_workdir_names_every_differing_field(config, blobs,
                                                        tmp_path):
  loop.run(config, str(tmp_path), dataset=blobs)
  config.learning_rate = 0.01
  config.hparams.power_bald.beta = 2.0
  with pytest.raises(errors.CheckpointError,
                     match='hparams.power_bald.beta, learning_rate'):
    loop.run(config, str(tmp_path), dataset=blobs)


def _rewrite_checkpoint(path, change):
  """Applies `change(arrays, records)` to a checkpoint, keeping its header."""
  with np.load(path) as data:
    arrays = {name: data[name] for name in data.files}
  records = json.loads(arrays['__records__'].tobytes().decode())
  records = change(arrays, records)
  arrays['__records__'] = np.frombuffer(json.dumps(records).encode(),
                                        np.uint8)
  with open(path, 'wb') as f:
    np.savez(f, **arrays)


def _set(name, value):
  def change(arrays, records):
    arrays[name] = value(arrays[name])
    return records
  return change


_DAMAGE = {
    'empty checkpoint': lambda p: open(p, 'wb').close(),
    'truncated checkpoint': lambda p: open(p, 'r+b').truncate(200),
    'random bytes': lambda p: open(p, 'wb').write(
        np.random.default_rng(0).bytes(5000)),
    'a directory': lambda p: (os.remove(p), os.mkdir(p)),
    'a FIFO': lambda p: (os.remove(p), os.mkfifo(p)),
    'round past num_rounds': lambda p: _rewrite_checkpoint(
        p, _set('.round', lambda r: np.asarray(9, r.dtype))),
    'negative round': lambda p: _rewrite_checkpoint(
        p, _set('.round', lambda r: np.asarray(-1, r.dtype))),
    'label -1 under the mask': lambda p: _rewrite_checkpoint(
        p, _set('.labels', lambda l: np.where(l >= 0, -1, l))),
    'label past num_classes': lambda p: _rewrite_checkpoint(
        p, _set('.labels', lambda l: np.where(l >= 0, 7, l))),
    'labels off the mask': lambda p: _rewrite_checkpoint(
        p, _set('.labels', np.zeros_like)),
    'mask grown': lambda p: _rewrite_checkpoint(
        p, _set('.labeled_mask', np.ones_like)),
    'a record dropped': lambda p: _rewrite_checkpoint(
        p, lambda arrays, records: records[:-1]),
    'records selecting unlabeled points': lambda p: _rewrite_checkpoint(
        p, lambda arrays, records: [
            dict(r, selected=[int(np.flatnonzero(~arrays['.labeled_mask'])[0])]
                 * len(r['selected'])) for r in records]),
    'key of another shape': lambda p: _rewrite_checkpoint(
        p, _set('.key', lambda k: np.zeros(5, k.dtype))),
    'an array of another dtype': lambda p: _rewrite_checkpoint(
        p, _set('.labeled_mask', lambda m: m.astype(np.int32))),
}


@pytest.mark.parametrize('damage', sorted(_DAMAGE))
def test_damaged_checkpoint_is_refused_and_nothing_changes(config, blobs,
                                                           tmp_path, damage):
  config.num_rounds = 3
  workdir = str(tmp_path)
  path = os.path.join(workdir, loop.CHECKPOINT)
  original = checkpoint.atomic_write

  def stop_after_round_1(path_, data):
    original(path_, data)
    if path_.endswith(loop.RESULTS) and data.count(b'\n') == 2:
      raise _Killed()

  checkpoint.atomic_write = stop_after_round_1
  try:
    with pytest.raises(_Killed):
      loop.run(config, workdir, dataset=blobs)
  finally:
    checkpoint.atomic_write = original
  _DAMAGE[damage](path)
  before = files.snapshot(workdir)
  outcome = []
  worker = threading.Thread(target=lambda: outcome.append(_raised(
      lambda: loop.run(config, workdir, dataset=blobs))), daemon=True)
  worker.start()
  worker.join(timeout=120)
  assert outcome, f'resuming with {damage} hung'
  assert isinstance(outcome[0], errors.CheckpointError), outcome[0]
  assert loop.CHECKPOINT in str(outcome[0])
  assert len(str(outcome[0]).splitlines()) == 1
  assert files.snapshot(workdir) == before


def _raised(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return e
  return None


def test_checkpoint_of_another_experiment_of_the_same_shapes_is_refused(
    config, blobs, tmp_path):
  loop.run(config, str(tmp_path / 'a'), dataset=blobs)
  config.learning_rate = 0.01
  os.makedirs(tmp_path / 'b')
  os.replace(tmp_path / 'a' / loop.CHECKPOINT,
             tmp_path / 'b' / loop.CHECKPOINT)
  with pytest.raises(errors.CheckpointError, match='another experiment'):
    loop.run(config, str(tmp_path / 'b'), dataset=blobs)


@pytest.mark.parametrize('damage', ['truncated', 'not an object', 'a directory'])
def test_damaged_config_json_is_refused(config, blobs, tmp_path, damage):
  loop.run(config, str(tmp_path), dataset=blobs)
  path = tmp_path / loop.CONFIG
  if damage == 'a directory':
    path.unlink()
    path.mkdir()
  else:
    path.write_text({'truncated': path.read_text()[:40],
                     'not an object': '[1, 2]'}[damage])
  before = files.snapshot(tmp_path)
  with pytest.raises(errors.CheckpointError, match=loop.CONFIG):
    loop.run(config, str(tmp_path), dataset=blobs)
  assert files.snapshot(tmp_path) == before
