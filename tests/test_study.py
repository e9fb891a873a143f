"""The benchmark grid: cells, configs, and a killed-and-rerun grid end to end."""

import json
import os
import signal
import subprocess
import sys
import time

import ml_collections
import pytest

from jal import acquisition
from jal import config as config_lib
from jal import errors
from jal import loop
from jal import report
from jal import study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(**fields):
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.num_epochs = 2
  base.initial_size = 20
  base.query_size = 10
  base.num_rounds = 3
  bench.base = base
  bench.datasets = ['digits']
  bench.strategies = fields.pop('strategies', ['random', 'entropy'])
  bench.seeds = [0, 1]
  for name, value in fields.items():
    bench[name] = value
  return bench


def test_expand_gives_every_cell_once_with_its_config():
  bench = _bench(datasets=['digits', 'digits-imb'], query_sizes=[10, 20],
                 epochs=[1, 3], budget=80)
  cells = study.expand(bench)
  assert len(cells) == 2 * 2 * 2 * 2 * 2
  assert len({c.path for c in cells}) == len(cells)
  cell = study.Cell('digits-imb', 'entropy', 1, 20, 3)
  assert cell in cells
  assert cell.path == os.path.join('digits-imb', 'entropy', 'b20', 'e3',
                                   'seed1')
  config = study.cell_config(bench, cell)
  assert (config.dataset, config.strategy, config.seed, config.query_size,
          config.num_epochs) == ('digits-imb', 'entropy', 1, 20, 3)
  assert config.num_rounds == (80 - 20) // 20  # the same budget for all b
  assert study.cell_config(bench, study.Cell('digits', 'random', 0, 10,
                                             1)).num_rounds == 6
  assert bench.base.seed == 0 and bench.base.num_rounds == 3  # not mutated


def test_cells_without_axes_keep_the_base_values_and_paths_are_short():
  bench = _bench(vmap_trials=False)
  cells = study.expand(bench)
  assert [c.path for c in cells] == [
      os.path.join('digits', s, f'seed{seed}')
      for s in ('random', 'entropy') for seed in (0, 1)]
  config = study.cell_config(bench, cells[0])
  assert config.query_size == 10 and config.num_epochs == 2
  assert config.train_loop == 'auto'  # one by one: the base's loop
  assert study.cell_config(_bench(), cells[0]).train_loop == 'jit'
  bench = _bench(strategies=['random', 'var_ratio'],
                 vmap_trials_except_needs=['mc_log_probs'])
  loops = {c.strategy: study.cell_config(bench, c).train_loop
           for c in study.expand(bench)}
  assert loops == {'random': 'jit', 'var_ratio': 'auto'}


def test_per_strategy_hyperparameters_reach_only_that_strategy():
  bench = _bench(strategies=['random', 'power_entropy'])
  bench.base.hparams.power_entropy.beta = 2.0
  configs = {c.strategy: study.cell_config(bench, c)
             for c in study.expand(bench)}
  assert configs['power_entropy'].hparams.power_entropy.beta == 2.0
  # What each cell's experiment runs with: its own strategy's hyperparameters.
  used = {name: acquisition.check_hparams(
      acquisition.get(name), dict(config.hparams[name]))
          for name, config in configs.items()}
  assert used == {'power_entropy': {'beta': 2.0}, 'random': {}}
  assert config_lib.default().hparams.power_entropy.beta == 1.0


def test_hyperparameters_a_strategy_does_not_take_are_refused():
  bench = _bench()
  bench.base.hparams.entropy.beta = 2.0  # entropy takes none
  with pytest.raises(errors.ConfigError, match="'entropy' does not take"):
    [study.cell_config(bench, c) for c in study.expand(bench)]
  bench = _bench(strategies=['cluster_margin'], vmap_trials=False)
  bench.base.hparams.cluster_margin.distance_threshold = 'far'
  with pytest.raises(errors.ConfigError,
                     match='hparams.cluster_margin.distance_threshold'):
    [study.cell_config(bench, c) for c in study.expand(bench)]


def test_all_means_every_strategy_registered_at_run_time(monkeypatch):
  registry = dict(acquisition.REGISTRY)
  registry['late_arrival'] = registry['entropy']._replace(name='late_arrival')
  monkeypatch.setattr(acquisition, 'REGISTRY', registry)
  assert study.strategies(_bench(strategies='all')) == sorted(registry)
  assert study.strategies(_bench(strategies='margin, random')) == [
      'margin', 'random']
  with pytest.raises(errors.UnknownNameError, match='no_such_strategy'):
    study.expand(_bench(strategies=['random', 'no_such_strategy']))
  with pytest.raises(errors.ConfigError, match='at least one dataset'):
    study.expand(_bench(datasets=[]))


def test_status_of_a_cell_directory(tmp_path):
  assert study.status(str(tmp_path)) == 'todo'
  (tmp_path / loop.CHECKPOINT).write_bytes(b'')
  assert study.status(str(tmp_path)) == 'partial'
  (tmp_path / loop.SUMMARY).write_text('{"test_accuracy": [0.5, 0.75]}')
  assert study.status(str(tmp_path)) == 'partial'  # records lost
  (tmp_path / loop.RESULTS).write_text(
      '{"test_accuracy": 0.5}\n{"test_accuracy": 0.75}\n')
  assert study.status(str(tmp_path)) == 'done'
  (tmp_path / loop.RESULTS).write_text('{"test_accuracy": 0.5}\n')
  assert study.status(str(tmp_path)) == 'partial'  # records cut short


_TINY_GRID = '''
import ml_collections
from jal import config as config_lib


def get_config():
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.num_epochs = 2
  base.initial_size = 20
  base.query_size = 10
  base.num_rounds = 3
  bench.base = base
  bench.datasets = ['digits']
  bench.strategies = 'random,entropy'
  bench.seeds = [0, 1]
  bench.vmap_trials = {vmap}
  return bench
'''


def _summaries(workdir):
  found = {}
  for root, _, files in os.walk(workdir):
    if loop.SUMMARY in files:
      path = os.path.join(root, loop.SUMMARY)
      found[os.path.relpath(root, workdir)] = os.stat(path).st_mtime_ns
  return found


def _records(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return [json.loads(line) for line in f]


def test_grid_killed_midway_resumes_without_recomputing(tmp_path):
  vmap = True  # the seeds of a strategy run as one program (jal.trials)
  config_path = tmp_path / 'tiny_grid.py'
  config_path.write_text(_TINY_GRID.format(vmap=vmap))
  workdir = tmp_path / 'grid'
  command = [sys.executable, os.path.join(REPO, 'experiments', 'benchmark.py'),
             f'--config={config_path}', f'--workdir={workdir}']
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=REPO)
  deadline = time.time() + 180
  while time.time() < deadline and not _summaries(workdir):
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  before = _summaries(workdir)
  assert 1 <= len(before) < 4, 'the kill came too late to test'

  rerun = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                         check=True)
  assert f'4 cells, {len(before)} already done' in rerun.stdout
  assert '[4/4 cells]' in rerun.stdout and 'ETA' in rerun.stdout
  after = _summaries(workdir)
  assert len(after) == 4
  assert all(after[cell] == mtime for cell, mtime in before.items())

  # A resumed cell ends as an uninterrupted run of its config.
  bench = ml_collections.ConfigDict(dict(
      base=config_lib.default(), datasets=['digits'],
      strategies='random,entropy', seeds=[0, 1], vmap_trials=vmap))
  bench.base.update(dict(num_epochs=2, initial_size=20, query_size=10,
                         num_rounds=3))
  last = study.expand(bench)[-1]
  config = study.cell_config(bench, last)
  loop.run(config, str(tmp_path / 'reference'))
  resumed, reference = (_records(workdir / last.path),
                         _records(tmp_path / 'reference'))
  assert [r['num_labeled'] for r in resumed] == [20, 30, 40, 50]
  assert ([sorted(r['selected']) for r in resumed] ==
          [sorted(r['selected']) for r in reference])
  assert [r['test_accuracy'] for r in resumed] == pytest.approx(
      [r['test_accuracy'] for r in reference], abs=1e-6)

  printed = subprocess.run(
      [sys.executable, os.path.join(REPO, 'experiments', 'report.py'),
       str(workdir)], capture_output=True, text=True, check=True, cwd=REPO)
  assert printed.stdout.strip() == str(workdir / report.REPORT)
  text = (workdir / report.REPORT).read_text()
  for heading in ('Table 1', 'Win–tie–loss', 'paired t-test',
                  'Accuracy–budget curves', 'Time per round'):
    assert heading in text
  assert '| entropy |' in text and '| random |' in text
  assert (workdir / 'curves_digits.png').stat().st_size > 1000
