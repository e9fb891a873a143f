"""Hostile benchmark grids: stale cells reused, and grid config mistakes.

Class 2: a cell holding results of other settings is never counted as done;
the grid stops before any work, naming the cell and the fields. Class 9:
every field of a benchmark config is checked up front, and list fields can be
set from the command line as comma-separated values. Finished cells are
written by hand with `jal.workdir`'s own writers, so nothing here trains.
"""

import os
import subprocess
import sys

from absl import flags
import ml_collections
from ml_collections import config_flags
import pytest

from jal import config as config_lib
from jal import errors
from jal import loop
from jal import study
from jal import workdir as workdir_lib
from tests import files
from jal.data import tfds_source

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _bench(**fields):
  """2 strategies × 2 seeds on digits; `fields` replace the bench's."""
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.num_epochs = 2
  base.initial_size = 20
  base.query_size = 10
  base.num_rounds = 3
  bench.base = base
  fields = dict(dict(datasets=('digits',), strategies='random,entropy',
                     seeds=(0, 1)), **fields)
  for name, value in fields.items():
    bench[name] = value
  return bench


def _finish(directory, config, summary_config=None):
  """Writes a finished cell as `loop.run` leaves it, for `config`."""
  text = workdir_lib.open_workdir(config, directory)
  records = [dict(round=0, num_labeled=20, test_accuracy=0.5),
             dict(round=1, num_labeled=30, test_accuracy=0.6)]
  workdir_lib.write_results(directory, records)
  if summary_config is not None:
    text = workdir_lib.config_json(summary_config)
  workdir_lib.write_summary(directory, records, text)


def _finished_grid(workdir, bench):
  """Every cell of `bench` finished under `workdir`, and its grid.json."""
  cells = study.expand(bench)
  for cell in cells:
    _finish(os.path.join(workdir, cell.path), study.cell_config(bench, cell))
  study.write_grid(workdir, cells)
  return cells


# Class 2: stale results are not reused.


def test_rerun_with_the_same_settings_skips_every_finished_cell(tmp_path):
  bench = _bench()
  _finished_grid(tmp_path, bench)
  before = files.snapshot(tmp_path)
  lines = []
  study.run_grid(bench, str(tmp_path), log=lines.append)
  assert lines == [f'4 cells, 4 already done, 0 to run in {tmp_path}']
  assert files.snapshot(tmp_path) == before


def _changed_base(bench):
  bench.base.num_epochs = 3
  bench.base.learning_rate = 0.01


def _fewer_vmapped(bench):
  bench.vmap_trials = False  # cells then train with the base's loop


@pytest.mark.parametrize('change, fields', [
    (_changed_base, 'learning_rate, num_epochs'),
    (_fewer_vmapped, 'train_loop'),
], ids=['base_fields', 'vmap_trials'])
def test_finished_cells_of_other_settings_stop_the_grid(tmp_path, change,
                                                        fields):
  _finished_grid(tmp_path, _bench())
  before = files.snapshot(tmp_path)
  bench = _bench()
  change(bench)
  with pytest.raises(errors.CheckpointError) as raised:
    study.run_grid(bench, str(tmp_path), log=lambda line: None)
  message = str(raised.value)
  assert os.path.join(str(tmp_path), 'digits', 'random', 'seed0') in message
  assert f'fields that differ: {fields}' in message
  assert 'new work directory' in message and 'delete' in message
  assert "of the grid's 4 cells cannot be reused" in message
  assert files.snapshot(tmp_path) == before  # grid.json not rewritten either


def test_summary_of_other_settings_is_not_reused(tmp_path):
  bench = _bench(seeds=(0,))
  cell = study.expand(bench)[0]
  other = study.cell_config(bench, cell)
  other.num_epochs = 9
  _finish(os.path.join(tmp_path, cell.path), study.cell_config(bench, cell),
          summary_config=other)
  with pytest.raises(errors.CheckpointError,
                     match=r'summary\.json; fields that differ: num_epochs'):
    study.run_grid(bench, str(tmp_path))


def test_unfinished_cell_of_other_settings_stops_before_any_work(tmp_path):
  bench = _bench()
  cells = study.expand(bench)
  config = study.cell_config(bench, cells[-1])
  config.learning_rate = 0.5
  workdir_lib.open_workdir(config, os.path.join(tmp_path, cells[-1].path))
  with pytest.raises(errors.CheckpointError, match='learning_rate'):
    study.run_grid(bench, str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ['digits']  # no grid.json, no cell
  assert study.status(os.path.join(tmp_path, cells[0].path)) == 'todo'


def test_damaged_summary_is_named(tmp_path):
  bench = _bench(seeds=(0,))
  cell = study.expand(bench)[0]
  _finish(os.path.join(tmp_path, cell.path), study.cell_config(bench, cell))
  summary = os.path.join(tmp_path, cell.path, workdir_lib.SUMMARY)
  with open(summary, 'w') as f:
    f.write('{"aubc": 0.5, "config"')
  with pytest.raises(errors.CheckpointError,
                     match=f'Cannot read {summary}.*Delete'):
    study.run_grid(bench, str(tmp_path))


def test_grid_json_of_a_larger_grid_is_refused(tmp_path):
  _finished_grid(tmp_path, _bench())
  before = files.snapshot(tmp_path)
  with pytest.raises(errors.CheckpointError,
                     match=r'grid\.json lists 2 cells this config lacks'):
    study.run_grid(_bench(seeds=(0,)), str(tmp_path))
  assert files.snapshot(tmp_path) == before


def test_damaged_grid_json_is_named(tmp_path):
  (tmp_path / study.GRID).write_text('{"cells": [')
  with pytest.raises(errors.CheckpointError, match=r'grid\.json.*Delete it'):
    study.run_grid(_bench(), str(tmp_path))


def test_a_grid_may_grow_over_finished_cells(tmp_path):
  _finished_grid(tmp_path, _bench(seeds=(0,)))
  bench = _bench(seeds=(0, 1))
  study.check_reuse(str(tmp_path), {cell: study.cell_config(bench, cell)
                                    for cell in study.expand(bench)})


def test_benchmark_script_refuses_cells_of_other_settings(tmp_path):
  config_file = tmp_path / 'grid_config.py'
  config_file.write_text(
      'from jal import config as config_lib\n'
      'import ml_collections\n\n\n'
      'def get_config():\n'
      '  bench = ml_collections.ConfigDict()\n'
      '  bench.base = config_lib.default()\n'
      '  bench.base.update(dict(num_epochs=2, initial_size=20, query_size=10,\n'
      '                         num_rounds=3))\n'
      "  bench.datasets = ('digits',)\n"
      "  bench.strategies = 'random,entropy'\n"
      '  bench.seeds = (0, 1)\n'
      '  return bench\n')
  workdir = tmp_path / 'grid'
  _finished_grid(workdir, config_lib.from_file(str(config_file)))
  before = files.snapshot(workdir)
  command = [sys.executable, os.path.join(REPO, 'experiments', 'benchmark.py'),
             f'--config={config_file}', f'--workdir={workdir}',
             '--compilation_cache=none']
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [REPO, os.environ.get('PYTHONPATH', '')]))
  changed = subprocess.run(
      command + ['--config.base.num_epochs=3',
                 '--config.base.learning_rate=0.01'],
      capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
  assert changed.returncode == 1
  lines = changed.stderr.strip().splitlines()
  assert len(lines) == 1, changed.stderr
  assert lines[0].startswith(f'error: {workdir}{os.sep}digits')
  assert 'fields that differ: learning_rate, num_epochs' in lines[0]
  assert 'already done' not in changed.stdout
  assert files.snapshot(workdir) == before
  same = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                        env=env, timeout=300)
  assert same.returncode == 0, same.stderr
  assert '4 cells, 4 already done, 0 to run' in same.stdout


# Class 9: grid mistakes are refused up front, naming the field.


@pytest.mark.parametrize('fields, error, match', [
    (dict(strategies=[]), errors.ConfigError,
     'config.strategies is empty; a benchmark needs at least one strategy'),
    (dict(strategies=''), errors.ConfigError, 'config.strategies is empty'),
    (dict(strategies='random,random'), errors.ConfigError,
     "config.strategies lists 'random' twice"),
    (dict(strategies=['random', 'no_such_strategy']), errors.UnknownNameError,
     "config.strategies: Unknown strategy 'no_such_strategy'"),
    (dict(strategies='all,random'), errors.ConfigError,
     "config.strategies: 'all' stands alone"),
    (dict(datasets=()), errors.ConfigError,
     'config.datasets is empty; a benchmark needs at least one dataset'),
    (dict(datasets=('digits', 'digits')), errors.ConfigError,
     "config.datasets lists 'digits' twice"),
    (dict(datasets=(3,)), errors.ConfigError,
     'config.datasets must hold names'),
    (dict(seeds=(0, 1, 0)), errors.ConfigError,
     'config.seeds lists 0 twice'),
    (dict(seeds=()), errors.ConfigError, 'config.seeds is empty'),
    (dict(seeds=('',)), errors.ConfigError, 'config.seeds is empty'),
    (dict(seeds=(0, 'one')), errors.ConfigError,
     "config.seeds must hold integers >= 0, got 'one'"),
    (dict(seeds=(-1,)), errors.ConfigError,
     'config.seeds must hold integers >= 0, got -1'),
    (dict(seeds=(1.5,)), errors.ConfigError,
     'config.seeds must hold integers >= 0, got 1.5'),
    (dict(seeds=(True,)), errors.ConfigError,
     'config.seeds must hold integers >= 0, got True'),
    (dict(query_sizes=(10, 10)), errors.ConfigError,
     'config.query_sizes lists 10 twice'),
    (dict(query_sizes=(0,)), errors.ConfigError,
     'config.query_sizes must hold integers >= 1, got 0'),
    (dict(epochs='x'), errors.ConfigError,
     "config.epochs must hold integers >= 1, got 'x'"),
    (dict(budget=10), errors.ConfigError,
     'config.budget = 10 leaves no query of 10 .* at least 30'),
    (dict(budget=25), errors.ConfigError, 'config.budget = 25'),
    (dict(budget=35, query_sizes=(10, 20)), errors.ConfigError,
     'config.budget = 35 leaves no query of 20 .* at least 40'),
    (dict(budget=-5), errors.ConfigError, 'config.budget must be an integer'),
    (dict(budget=40.5), errors.ConfigError,
     'config.budget must be an integer'),
    (dict(vmap_trials='yes'), errors.ConfigError,
     'config.vmap_trials must be True or False'),
    (dict(vmap_trials_except_needs=('mc_logprobs',)), errors.ConfigError,
     "config.vmap_trials_except_needs: unknown prediction 'mc_logprobs' "
     r"\(did you mean 'mc_log_probs'\?\)"),
    (dict(stratgies='random'), errors.ConfigError,
     r"config.stratgies is not a benchmark field \(did you mean "
     r"'strategies'\?\)"),
    (dict(base=None), errors.ConfigError,
     'config.base must be an experiment config'),
], ids=lambda value: None if not isinstance(value, dict) else
    '-'.join(f'{k}={v!r}' for k, v in value.items()))
def test_grid_mistakes_are_refused_naming_the_field(fields, error, match):
  bench = _bench(**fields)
  with pytest.raises(error, match=match):
    study.validate(bench)
  with pytest.raises(error, match=match):
    study.run_grid(bench, '/nonexistent/never/written')


@pytest.mark.parametrize('field, value, match', [
    ('num_epoch', 3, r"config.base.num_epoch is not an experiment field "
                     r"\(did you mean 'num_epochs'\?\)"),
    ('num_epochs', 0, 'config.base.num_epochs must be a positive integer'),
    ('learning_rate', -1.0, 'config.base.learning_rate must lie in'),
])
def test_base_mistakes_name_the_base_field(field, value, match):
  bench = _bench()
  bench.base[field] = value
  with pytest.raises(errors.ConfigError, match=match):
    study.expand(bench)


def test_base_hyperparameter_mistake_names_the_base_field():
  bench = _bench(strategies='cluster_margin', vmap_trials=False)
  bench.base.hparams.cluster_margin.distance_threshold = 'far'
  cell = study.Cell('digits', 'cluster_margin', 0)
  with pytest.raises(errors.ConfigError,
                     match='config.base.hparams.cluster_margin'):
    study.cell_config(bench, cell)


def test_unknown_dataset_is_named_when_no_tfds(monkeypatch):
  monkeypatch.setattr(tfds_source, 'installed', lambda: False)
  with pytest.raises(errors.UnknownNameError,
                     match=r"config.datasets: unknown dataset 'digit' "
                           r"\(did you mean 'digits'\?\)"):
    study.validate(_bench(datasets='digit'))


@pytest.mark.parametrize('fields, cells', [
    # A name is one dataset, not letters; a comma-separated string is a list.
    (dict(datasets='digits'), [('digits', 0), ('digits', 1)]),
    (dict(datasets='digits, digits-imb', seeds=3),
     [('digits', 3), ('digits-imb', 3)]),
    (dict(seeds='2,0'), [('digits', 2), ('digits', 0)]),
    (dict(seeds=[4]), [('digits', 4)]),
    # What config_flags makes of --config.datasets=digits,digits-imb on a
    # tuple field: one string.
    (dict(datasets=('digits,digits-imb',), seeds=(0,)),
     [('digits', 0), ('digits-imb', 0)]),
])
def test_list_fields_take_strings_and_single_values(fields, cells):
  bench = _bench(strategies='random', **fields)
  assert [(c.dataset, c.seed) for c in study.expand(bench)] == cells


def _parse(argv):
  """The config that benchmark.py's flags make of `argv`."""
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file(
      'config', None, flag_values=values, sys_argv=argv)
  values(argv)
  return holder.value


def test_list_fields_are_settable_from_the_command_line():
  argv = ['benchmark.py',
          f'--config={os.path.join(REPO, "configs", "benchmark_digits.py")}',
          '--config.datasets=digits,digits-imb', '--config.seeds=3,1',
          '--config.strategies=random,margin', '--config.query_sizes=10,20',
          '--config.epochs=2', '--config.budget=60',
          '--config.vmap_trials_except_needs=mc_log_probs,embeddings']
  bench = _parse(argv)
  cells = study.expand(bench)
  assert len(cells) == 2 * 2 * 2 * 1 * 2
  assert {c.dataset for c in cells} == {'digits', 'digits-imb'}
  assert [c.seed for c in cells[:2]] == [3, 1]
  assert {(c.query_size, c.num_epochs) for c in cells} == {(10, 2), (20, 2)}
  config = study.cell_config(bench, cells[-1])
  assert (config.query_size, config.num_rounds) == (20, 2)


@pytest.mark.parametrize('name', ['benchmark_digits.py', 'benchmark_mnist.py',
                                  'benchmark_cifar10.py',
                                  'ablation_cifar10.py',
                                  'benchmark_deepalplus_mnist.py',
                                  'benchmark_deepalplus_mnist_resnet.py'])
def test_shipped_benchmark_configs_pass_and_take_list_overrides(name):
  if 'cifar' in name and not tfds_source.installed():
    pytest.skip('CIFAR10 loads through tensorflow-datasets only')
  path = os.path.join(REPO, 'configs', name)
  study.validate(config_lib.from_file(path))
  bench = _parse(['benchmark.py', f'--config={path}', '--config.seeds=5',
                  '--config.datasets=digits'])
  assert study.seeds(bench) == [5] and study.datasets(bench) == ['digits']


@pytest.mark.parametrize('damage', ['emptied', 'cut short'])
def test_a_finished_cell_with_damaged_records_is_restored(tmp_path, damage):
  bench = _bench(strategies='random', seeds=(0,), vmap_trials=False)
  bench.base.num_rounds = 1
  study.run_grid(bench, str(tmp_path))
  cell = os.path.join(tmp_path, study.expand(bench)[0].path)
  results = os.path.join(cell, loop.RESULTS)
  with open(results) as f:
    lines = f.readlines()
  with open(results, 'w') as f:
    f.writelines([] if damage == 'emptied' else lines[:1])
  assert study.status(cell) == 'partial'
  study.run_grid(bench, str(tmp_path))
  with open(results) as f:
    assert f.readlines() == lines
  assert study.status(cell) == 'done'
