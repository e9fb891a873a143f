"""Hostile inputs to the three scripts: one line on stderr, not a traceback.

Every case runs a script as a subprocess and checks that it exits with status
1, prints exactly one line on stderr (`error: ...`) naming the file, flag or
field and what to do, and leaves the files already written byte for byte.
The cases fail before any training. A full disk and a read-only file system
are simulated in the subprocess (`_HARNESS`): `os.fsync` fails with ENOSPC,
or `os.mkdir` with EROFS under the given directory.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RUN = os.path.join(REPO, 'experiments', 'run.py')
BENCHMARK = os.path.join(REPO, 'experiments', 'benchmark.py')
REPORT = os.path.join(REPO, 'experiments', 'report.py')
TINY = ['--config.num_epochs=1', '--config.initial_size=20',
        '--config.query_size=10', '--config.num_rounds=1']
GRID = ['--config.strategies=random', '--config.seeds=0',
        '--compilation_cache=none']

_HARNESS = '''
import errno, os, runpy, sys
fault, under, script = sys.argv[1:4]
if fault == 'full':
  def fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  os.fsync = fsync
elif fault == 'readonly':
  mkdir = os.mkdir
  def readonly_mkdir(path, *args, **kwargs):
    if os.path.abspath(path).startswith(under):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    return mkdir(path, *args, **kwargs)
  os.mkdir = readonly_mkdir
sys.argv = sys.argv[3:]
runpy.run_path(script, run_name='__main__')
'''


def _run(script, *args, fault=None, under=''):
  """Runs `script` with `args` (under a simulated `fault`); the result."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [REPO, os.environ.get('PYTHONPATH', '')]))
  prefix = ([sys.executable, '-c', _HARNESS, fault, str(under)] if fault
            else [sys.executable])
  return subprocess.run([*prefix, script, *map(str, args)],
                        capture_output=True, text=True, cwd=REPO, env=env,
                        timeout=300)


def _assert_one_line_error(result, *names):
  """Exit status 1 and one `error:` line on stderr holding every name."""
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 1, result.stderr
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('error: '), lines[0]
  for name in names:
    assert str(name) in lines[0], (name, lines[0])
  return lines[0]


def _config_file(folder, name, text):
  path = folder / name
  path.write_text(text)
  return path


# run.py and benchmark.py: config files and overrides.


@pytest.mark.parametrize('script, text, names', [
    (RUN, None, ['does not exist', 'give the path']),
    (BENCHMARK, None, ['does not exist', 'give the path']),
    (RUN, 'def get_config(:\n  pass\n', ['line 1', 'invalid syntax', 'fix']),
    (RUN, 'CONFIG = {}\n', ['has no get_config() function', 'define one']),
    (RUN, 'def get_config():\n  return {}[0]\n',
     ['line 2', 'KeyError', 'fix']),
    (RUN, 'def get_config():\n  pass\n', ['returned NoneType', 'ConfigDict']),
], ids=['missing', 'missing_benchmark', 'syntax_error', 'no_get_config',
        'raises', 'returns_none'])
def test_broken_config_file(tmp_path, script, text, names):
  path = tmp_path / 'experiment.py'
  if text is not None:
    path.write_text(text)
  result = _run(script, f'--config={path}', f'--workdir={tmp_path / "w"}')
  _assert_one_line_error(result, path, *names)
  assert not os.path.exists(tmp_path / 'w')


@pytest.mark.parametrize('script, override, names', [
    (RUN, '--config.num_epoch=1',
     ["--config.num_epoch", "no field 'num_epoch'",
      "did you mean 'num_epochs'?"]),
    (RUN, '--config.hparams.entropyy.beta=2',
     ['--config.hparams.entropyy.beta', "config.hparams", "'entropyy'",
      'check the spelling']),
    (RUN, '--config.num_epochs=ten',
     ['--config.num_epochs=ten', "invalid literal for int()", '--help']),
    (RUN, '--config.num_epochs=0',
     ['config.num_epochs must be a positive integer, got 0']),
    (RUN, '--wrkdir=/tmp/x', ["Unknown command line flag 'wrkdir'"]),
    (BENCHMARK, '--config.stratgies=random',
     ["--config.stratgies", "did you mean 'strategies'?"]),
    (BENCHMARK, '--config.seeds=0,1,0', ['config.seeds lists 0 twice']),
    (BENCHMARK, '--config.budget=25',
     ['config.budget = 25 leaves no query of 20', 'at least 40']),
], ids=['typo', 'nested_typo', 'bad_value', 'out_of_range', 'unknown_flag',
        'grid_typo', 'repeated_seed', 'budget_below_one_query'])
def test_bad_override(tmp_path, script, override, names):
  result = _run(script, f'--workdir={tmp_path / "w"}', override)
  _assert_one_line_error(result, *names)
  assert not os.path.exists(tmp_path / 'w')


def test_list_field_of_a_user_config_names_the_fix(tmp_path):
  path = _config_file(tmp_path, 'grid.py', (
      'from jal import config as config_lib\n'
      'import ml_collections\n\n\n'
      'def get_config():\n'
      '  return ml_collections.ConfigDict(dict(\n'
      "      base=config_lib.default(), datasets=['digits'],\n"
      "      strategies='random', seeds=[0, 1]))\n"))
  result = _run(BENCHMARK, f'--config={path}', f'--workdir={tmp_path / "w"}',
                '--config.seeds=2,3')
  _assert_one_line_error(result, '--config.seeds', 'is a list in', path,
                         'make it a tuple')


def test_a_config_missing_fields_or_an_extra_argument_is_named(tmp_path):
  path = _config_file(tmp_path, 'partial.py', (
      'import ml_collections\n\n\n'
      'def get_config():\n'
      '  return ml_collections.ConfigDict(dict(num_epochs=1))\n'))
  result = _run(RUN, f'--config={path}', f'--workdir={tmp_path / "w"}')
  _assert_one_line_error(result, 'config lacks', 'jal.config.default()')
  result = _run(RUN, f'--workdir={tmp_path / "w"}', 'num_epochs=1')
  _assert_one_line_error(result, "unexpected argument 'num_epochs=1'")
  assert not os.path.exists(tmp_path / 'w')


# run.py and benchmark.py: work directories.


@pytest.mark.parametrize('script, workdir, names', [
    (RUN, None, ['--workdir is missing', 'give the directory']),
    (RUN, '', ['--workdir is empty', 'give the directory']),
    (RUN, 'a_file',
     ['a_file is a file, not a directory', 'give another path']),
    (BENCHMARK, 'a_file', ['a_file is a file, not a directory']),
    (RUN, 'a_file/below', ['a_file, which is a file', 'give another path']),
], ids=['missing', 'empty', 'file', 'file_benchmark', 'below_a_file'])
def test_unusable_workdir(tmp_path, script, workdir, names):
  (tmp_path / 'a_file').write_bytes(b'precious')
  args = [] if workdir is None else [
      f'--workdir={tmp_path / workdir if workdir else ""}']
  result = _run(script, *args)
  _assert_one_line_error(result, *names)
  assert files.snapshot(tmp_path) == {'a_file': b'precious'}


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes read-only folders')
def test_read_only_parent_of_workdir(tmp_path):
  os.chmod(tmp_path, 0o555)
  try:
    result = _run(RUN, f'--workdir={tmp_path / "w"}', *TINY)
  finally:
    os.chmod(tmp_path, 0o755)
  _assert_one_line_error(result, tmp_path, 'not writable')


@pytest.mark.parametrize('script, names', [
    (RUN, ['Cannot use work directory', 'Read-only file system',
           'Pick another --workdir']),
    (BENCHMARK, ['Read-only file system', 'write elsewhere']),
], ids=['run', 'benchmark'])
def test_read_only_file_system(tmp_path, script, names):
  workdir = tmp_path / 'w'
  args = TINY if script == RUN else GRID
  result = _run(script, f'--workdir={workdir}', *args, fault='readonly',
                under=tmp_path)
  _assert_one_line_error(result, workdir, *names)
  assert not os.path.exists(workdir)


def test_full_disk_while_starting_a_run(tmp_path):
  workdir = tmp_path / 'w'
  result = _run(RUN, f'--workdir={workdir}', *TINY, fault='full')
  _assert_one_line_error(result, workdir / 'config.json.tmp',
                         'No space left on device', 'Pick another --workdir')
  assert os.listdir(workdir) == []  # no half-written file left behind


def test_full_disk_keeps_the_old_grid_file(tmp_path):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'grid.json').write_text(json.dumps(dict(cells=[dict(
      dataset='digits', strategy='random', seed=0, query_size=None,
      num_epochs=None, path='digits/random/seed0')])))
  before = files.snapshot(workdir)
  result = _run(BENCHMARK, f'--workdir={workdir}', *GRID, fault='full')
  _assert_one_line_error(result, workdir / 'grid.json.tmp',
                         'No space left on device', 'free some disk space')
  assert files.snapshot(workdir) == before


# report.py


def _write_cell(root, strategy, seed, accuracies):
  path = f'digits/{strategy}/seed{seed}'
  folder = root / path
  folder.mkdir(parents=True)
  with open(folder / 'results.jsonl', 'w') as f:
    for r, accuracy in enumerate(accuracies):
      f.write(json.dumps(dict(round=r, num_labeled=20 + 10 * r,
                              test_accuracy=accuracy, train_seconds=0.1,
                              test_seconds=0.01, query_seconds=0.01)) + '\n')
  (folder / 'summary.json').write_text('{}')
  return dict(dataset='digits', strategy=strategy, seed=seed,
              query_size=None, num_epochs=None, path=path)


@pytest.fixture
def study_dir(tmp_path):
  """A finished study by hand: 2 strategies × 2 seeds, 3 rounds each."""
  root = tmp_path / 'study'
  cells = [_write_cell(root, strategy, seed, [0.5 + seed / 10, 0.6, 0.7])
           for strategy in ('random', 'entropy') for seed in (0, 1)]
  (root / 'grid.json').write_text(json.dumps(dict(cells=cells)))
  return root


_RESULTS = 'digits/entropy/seed1/results.jsonl'


def _insert_line(relative, line, at):
  def damage(root):
    lines = (root / relative).read_text().splitlines(keepends=True)
    lines.insert(at, line + '\n')
    (root / relative).write_text(''.join(lines))
  return damage


def _replace(relative, text):
  def damage(root):
    if text is None:
      (root / relative).unlink()
    else:
      (root / relative).write_text(text)
  return damage


@pytest.mark.parametrize('damage, names', [
    (_insert_line(_RESULTS, '{"round": 0, "num_labeled": 20', 1),
     [_RESULTS, 'line 2 is not a JSON record', 'Delete it']),
    (_replace('digits/random/seed0/results.jsonl', None),
     ['digits/random/seed0/results.jsonl', 'cannot be read']),
    (_replace('grid.json', '[1, 2'), ['grid.json', 'cannot be read as JSON']),
], ids=['garbage_line', 'no_results', 'grid_not_json'])
def test_report_on_damaged_study(study_dir, damage, names):
  damage(study_dir)
  before = files.snapshot(study_dir)
  result = _run(REPORT, study_dir)
  _assert_one_line_error(result, study_dir, *names)
  assert files.snapshot(study_dir) == before  # no report.md, no figure


def test_report_on_a_missing_directory(tmp_path):
  result = _run(REPORT, tmp_path / 'missing')
  _assert_one_line_error(result, tmp_path / 'missing', 'is not a directory',
                         'give the --workdir of experiments/benchmark.py')
  assert not os.listdir(tmp_path)


def test_report_usage():
  _assert_one_line_error(_run(REPORT, 'a', 'b'), 'usage:', 'BENCHMARK_DIR')


def test_full_disk_keeps_the_old_report(study_dir):
  (study_dir / 'report.md').write_text('# The report of an earlier run\n')
  (study_dir / 'curves_digits.png').write_bytes(b'an earlier figure')
  before = files.snapshot(study_dir)
  result = _run(REPORT, study_dir, fault='full')
  _assert_one_line_error(result, study_dir / 'curves_digits.png.tmp',
                         'No space left on device', 'free some disk space')
  assert files.snapshot(study_dir) == before
