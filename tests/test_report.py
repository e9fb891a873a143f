"""The study report: its numbers against plain computations on synthetic runs.

The statistics are checked as pure functions against numpy, scipy and hand
computations; the report as a whole against the same on run directories;
the figures through the lines they draw.
"""

import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sklearn_metrics

from jal import acquisition
from jal import config as config_lib
from jal import data
from jal import errors
from jal import full_training
from jal import loop
from jal import report
from jal import study
from jal import trials
from jal import workdir as workdir_lib
from jal.report import families
from tests.synthetic import make_blobs_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STRATEGIES = ('entropy', 'margin', 'random')
SEEDS = (0, 1, 2)


def _write_run(root, dataset, strategy, seed, accuracies, query_size=10,
               num_epochs=3, initial=20, finished=True, train_seconds=0.5,
               query_seconds=0.1, test_seconds=None, balanced=None,
               config=None):
  workdir = os.path.join(root, dataset, strategy, f'b{query_size}',
                         f'e{num_epochs}', f'seed{seed}')
  os.makedirs(workdir)
  config = dict(config or {}, dataset=dataset, strategy=strategy, seed=seed,
                query_size=query_size, num_epochs=num_epochs)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config, f)
  rounds = len(accuracies)
  with open(os.path.join(workdir, 'results.jsonl'), 'w') as f:
    for r, accuracy in enumerate(accuracies):
      record = dict(round=r, num_labeled=initial + r * query_size,
                    test_accuracy=float(accuracy),
                    train_seconds=train_seconds * (r + 1),
                    query_seconds=query_seconds if r < rounds - 1 else 0.0,
                    selected=[])
      if test_seconds is not None:  # records before test time had none
        record['test_seconds'] = test_seconds * (r + 1)
      if balanced is not None:  # nor balanced accuracy
        record['test_balanced_accuracy'] = float(balanced[r])
      f.write(json.dumps(record) + '\n')
  if finished:
    with open(os.path.join(workdir, 'summary.json'), 'w') as f:
      json.dump(dict(aubc=0.0), f)  # the report recomputes from records
  return workdir


def _plain_aubc(num_labeled, accuracies):
  n, a = np.asarray(num_labeled, float), np.asarray(accuracies, float)
  area = 0.0
  for i in range(1, len(n)):
    area += (n[i] - n[i - 1]) * (a[i] + a[i - 1]) / 2
  return area / (n[-1] - n[0])


@pytest.fixture
def grid(tmp_path):
  """2 datasets × 3 strategies × 3 seeds of random curves, 5 rounds each."""
  rng = np.random.default_rng(0)
  curves = {}
  for dataset, strategy, seed in itertools.product(
      ('blobs', 'digits'), STRATEGIES, SEEDS):
    accuracies = np.sort(rng.uniform(0.3, 0.95, 5))
    curves[(dataset, strategy, seed)] = accuracies
    _write_run(tmp_path, dataset, strategy, seed, accuracies)
  _write_run(tmp_path, 'digits', 'entropy', 7, [0.1, 0.2], finished=False)
  return tmp_path, curves


def _table_rows(text, heading):
  section = text.split(heading, 1)[1].split('\n## ', 1)[0]
  return [[c.strip() for c in line.strip('|').split('|')]
          for line in section.splitlines() if line.startswith('| ')]


def test_table_matches_plain_mean_and_std_and_marks_the_best(grid):
  root, curves = grid
  text = open(report.write(str(root))).read()
  rows = _table_rows(text, 'Table 1)')
  header, body = rows[0], {row[0]: row for row in rows[1:]}
  assert header == ['strategy', 'blobs AUBC', 'blobs F-acc', 'digits AUBC',
                    'digits F-acc']
  num_labeled = [20, 30, 40, 50, 60]
  for d, dataset in enumerate(('blobs', 'digits')):
    aubc = {s: [_plain_aubc(num_labeled, curves[(dataset, s, seed)])
                for seed in SEEDS] for s in STRATEGIES}
    final = {s: [curves[(dataset, s, seed)][-1] for seed in SEEDS]
             for s in STRATEGIES}
    for column, values in ((1 + 2 * d, aubc), (2 + 2 * d, final)):
      best = max(STRATEGIES, key=lambda s: np.mean(values[s]))
      for s in STRATEGIES:
        cell = body[s][column]
        mean, std = map(float, re.findall(r'[0-9.]+', cell))
        assert mean == pytest.approx(np.mean(values[s]), abs=1e-4)
        assert std == pytest.approx(np.std(values[s], ddof=1), abs=1e-4)
        assert cell.startswith('**') == (s == best)
  assert '1 unfinished runs are left out: digits/entropy/b10/e3/seed7' in text


def test_win_tie_loss_counts_against_a_plain_loop():
  means = {('a', 1, 1): dict(x=0.800, y=0.804, z=0.790),  # x–y tie, x–z win
           ('b', 1, 1): dict(x=0.700, y=0.710, z=0.7051),
           ('c', 1, 1): dict(x=0.5, y=0.5)}  # z has no result: not compared
  pairs, totals = report.win_tie_loss(means, margin=0.005)
  for a, b in itertools.permutations('xyz', 2):
    expected = [0, 0, 0]
    for per in means.values():
      if a in per and b in per:
        d = per[a] - per[b]
        expected[0 if d > 0.005 else 2 if d < -0.005 else 1] += 1
    assert pairs[(a, b)] == expected
    assert pairs[(b, a)] == expected[::-1]
  assert pairs[('x', 'z')] == [1, 0, 1]
  assert pairs[('y', 'z')] == [1, 1, 0]
  assert totals == {'x': [1, 2, 2], 'y': [2, 3, 0], 'z': [1, 1, 2]}
  assert report.ranking(totals) == ['y', 'x', 'z']


def test_win_tie_loss_section_of_the_report(grid):
  root, curves = grid
  text = open(report.write(str(root))).read()
  rows = _table_rows(text, 'Table 3)')
  num_labeled = [20, 30, 40, 50, 60]
  means = {d: {s: np.mean([_plain_aubc(num_labeled, curves[(d, s, seed)])
                           for seed in SEEDS]) for s in STRATEGIES}
           for d in ('blobs', 'digits')}
  for row in rows[1:]:
    name, total = row[1], row[2]
    w = sum(means[d][name] - means[d][o] > 0.005 for d in means
            for o in STRATEGIES if o != name)
    l = sum(means[d][name] - means[d][o] < -0.005 for d in means
            for o in STRATEGIES if o != name)
    assert total == f'{w}/{2 * 2 - w - l}/{l}'
    assert row[3] == str(w - l)
  net = [int(row[3]) for row in rows[1:]]
  assert net == sorted(net, reverse=True)


def test_paired_test_equals_the_t_formula():
  def runs(values):
    return dict(enumerate(values))  # AUBC by seed

  ours, base = [0.82, 0.85, 0.81, 0.86], [0.80, 0.81, 0.80, 0.82]
  test = report.paired_test(runs(ours), runs(base))
  d = np.subtract(ours, base)
  t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
  assert test.mean_difference == pytest.approx(d.mean())
  assert test.p_better == pytest.approx(stats.t.sf(t, len(d) - 1))
  assert test.p_worse == pytest.approx(stats.t.cdf(t, len(d) - 1))
  assert test.verdict == 'better'
  assert report.paired_test(runs(base), runs(ours)).verdict == 'worse'
  noisy = report.paired_test(runs([0.9, 0.7, 0.85]), runs([0.8, 0.8, 0.8]))
  assert noisy.verdict == 'n.s.'
  assert report.paired_test(runs([0.9]), runs([0.8])).verdict == 'n/a'


def test_report_counts_significant_wins_over_random(tmp_path):
  rng = np.random.default_rng(1)
  for dataset in ('d1', 'd2'):
    for seed in SEEDS:
      base = np.sort(rng.uniform(0.4, 0.8, 4))
      _write_run(tmp_path, dataset, 'random', seed, base)
      # 'good' is 0.05 above random on d1 (every seed), equal on d2.
      lift = 0.05 + 0.001 * seed if dataset == 'd1' else 0.0
      _write_run(tmp_path, dataset, 'good', seed, base + lift)
  text = open(report.write(str(tmp_path))).read()
  rows = _table_rows(text, 'paired t-test over seeds')
  assert rows[0] == ['strategy', 'd1', 'd2', 'tasks significantly better']
  good = rows[1]
  assert good[0] == 'good' and good[1].endswith('better')
  assert good[2].endswith('n.s.') and good[3] == '1 / 2'


def test_timing_table_and_figures(grid):
  root, _ = grid
  text = open(report.write(str(root))).read()
  rows = _table_rows(text, '## Time per round')
  # Train seconds are 0.5 × (r + 1) in rounds 0–4, query 0.1 in rounds
  # 0–3; round 0 (compilation) is left out: train (1 + 1.5 + 2 + 2.5) / 4.
  # These records predate the test time: '—'.
  assert rows[0][1:4] == ['blobs train s', 'blobs test s', 'blobs query s']
  assert rows[1][1:] == ['1.750', '—', '0.100'] * 2
  for dataset in ('blobs', 'digits'):
    path = os.path.join(root, f'curves_{dataset}.png')
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert f'(curves_{dataset}.png)' in text
  assert 'Ablations' not in text


def test_ablation_axes_give_figures_and_per_setting_tasks(tmp_path):
  rng = np.random.default_rng(2)
  for strategy, b, e, seed in itertools.product(('random', 'entropy'),
                                                (10, 20), (2, 4), (0, 1)):
    _write_run(tmp_path, 'digits', strategy, seed,
               np.sort(rng.uniform(0.3, 0.9, 3)), query_size=b,
               num_epochs=e)
  text = open(report.write(str(tmp_path))).read()
  header = _table_rows(text, 'Table 1)')[0]
  assert header[1:3] == ['digits b=10 e=2 AUBC', 'digits b=10 e=2 F-acc']
  assert len(header) == 1 + 2 * 4
  for name in ('ablation_digits.png', 'ablation_curves_digits.png',
               'curves_digits_b_10_e_4.png'):
    assert os.path.getsize(os.path.join(tmp_path, name)) > 1000
    assert f'({name})' in text


def test_empty_directory_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='No finished experiment'):
    report.write(str(tmp_path))


def test_mean_std_over_seeds_matches_numpy():
  rng = np.random.default_rng(3)
  values = rng.uniform(size=5)
  mean, std = report.mean_std(values)
  assert mean == pytest.approx(np.mean(values))
  assert std == pytest.approx(np.std(values, ddof=1))
  curves = rng.uniform(size=(3, 4))  # [seeds, rounds]
  mean, std = report.mean_std(curves)
  np.testing.assert_allclose(mean, curves.mean(axis=0))
  np.testing.assert_allclose(std, curves.std(axis=0, ddof=1))
  assert report.mean_std([0.7]) == (0.7, 0.0)
  mean, std = report.mean_std([[0.1, 0.2]])
  np.testing.assert_allclose(mean, [0.1, 0.2])
  np.testing.assert_array_equal(std, [0.0, 0.0])


def test_best_keeps_every_tied_name():
  assert report.best(dict(a=0.5, b=0.7, c=0.6)) == {'b'}
  assert report.best(dict(a=0.7, b=0.7, c=0.6)) == {'a', 'b'}


def test_ranking_breaks_ties_by_wins_then_name():
  totals = dict(a=[1, 0, 0], b=[3, 0, 2], c=[1, 2, 0], d=[0, 0, 2])
  # W − L: a 1, b 1, c 1, d −2; among the ones, b has most wins.
  assert report.ranking(totals) == ['b', 'a', 'c', 'd']


def test_paired_test_pairs_only_shared_seeds_and_handles_degenerate_cases():
  ours = {0: 0.82, 1: 0.85, 2: 0.81, 5: 0.99}
  base = {0: 0.80, 1: 0.81, 2: 0.80, 7: 0.10}
  test = report.paired_test(ours, base)
  expected = stats.ttest_rel([0.82, 0.85, 0.81], [0.80, 0.81, 0.80],
                             alternative='greater')
  assert test.num_seeds == 3
  assert test.mean_difference == pytest.approx((0.02 + 0.04 + 0.01) / 3)
  assert test.p_better == pytest.approx(expected.pvalue)
  # Every difference 0.25: the sign is certain though t is undefined.
  constant = report.paired_test({0: 0.75, 1: 0.5}, {0: 0.5, 1: 0.25})
  assert (constant.p_better, constant.p_worse) == (0.0, 1.0)
  assert constant.verdict == 'better'
  equal = report.paired_test({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5})
  assert (equal.p_better, equal.p_worse, equal.verdict) == (1.0, 1.0, 'n.s.')
  none = report.paired_test({0: 0.5}, {1: 0.5})
  assert none.num_seeds == 0 and np.isnan(none.mean_difference)
  assert none.verdict == 'n/a'


def test_steady_seconds_leaves_out_round_zero_and_the_last_query():
  assert report.steady_seconds([9.0, 1.0, 2.0, 3.0]) == 2.0
  assert report.steady_seconds([9.0, 1.0, 2.0, 0.0], skip_last=True) == 1.5
  # Too few rounds to leave any out: round 0's time.
  assert report.steady_seconds([9.0]) == 9.0
  assert report.steady_seconds([9.0, 0.0], skip_last=True) == 9.0


def test_timing_table_shows_test_seconds_where_recorded(tmp_path):
  for strategy, test_seconds in (('entropy', 0.2), ('random', None)):
    for seed in SEEDS:
      _write_run(tmp_path, 'digits', strategy, seed, [0.5, 0.6, 0.7],
                 test_seconds=test_seconds)
  text = open(report.write(str(tmp_path))).read()
  rows = {row[0]: row[1:] for row in _table_rows(text, '## Time per round')}
  assert rows['strategy'] == ['digits train s', 'digits test s',
                              'digits query s']
  # Train seconds 0.5 × (r + 1), test 0.2 × (r + 1) in rounds 0–2; round 0
  # is left out: train (1 + 1.5) / 2, test (0.4 + 0.6) / 2.
  assert rows['entropy'] == ['1.250', '0.500', '0.100']
  assert rows['random'] == ['1.250', '—', '0.100']


def test_cells_come_from_grid_json_when_the_study_wrote_one(tmp_path):
  cells = [study.Cell('digits', s, seed, 10, 3)
           for s in ('random', 'entropy') for seed in (0, 1)]
  for cell in cells[:3]:
    workdir = _write_run(tmp_path, cell.dataset, cell.strategy, cell.seed,
                         [0.5, 0.6, 0.7])
    assert workdir == os.path.join(tmp_path, cell.path)
  with open(os.path.join(workdir, trials.TRIALS), 'w') as f:
    json.dump(dict(vmapped_seeds=[0, 1]), f)
  # A cell of an older grid, no longer in grid.json: not reported.
  _write_run(tmp_path, 'digits', 'margin', 0, [0.5, 0.6, 0.7])
  with open(os.path.join(tmp_path, study.GRID), 'w') as f:
    json.dump(dict(cells=[dataclasses.asdict(c) | dict(path=c.path)
                          for c in cells]), f)
  found, unfinished = report.load_runs(str(tmp_path))
  assert [r.cell for r in found] == cells[:3]
  assert unfinished == [cells[3].path]  # in the grid, not run yet
  assert [r.vmapped for r in found] == [False, False, True]
  text = open(report.write(str(tmp_path))).read()
  assert '| margin |' not in text
  rows = {row[0]: row[1:] for row in _table_rows(text, '## Time per round')}
  assert rows['entropy'][0].endswith('†') and '†' not in rows['random'][0]


def test_import_and_write_leave_the_pyplot_backend_alone(grid):
  root, _ = grid
  code = ('import sys, matplotlib\n'
          'before = matplotlib.get_backend()\n'
          'from jal import report\n'
          'imported = matplotlib.get_backend()\n'
          'report.write(sys.argv[1])\n'
          'print(before, imported, matplotlib.get_backend(),\n'
          '      "matplotlib.pyplot" in sys.modules)\n')
  result = subprocess.run(
      [sys.executable, '-c', code, str(root)], cwd=REPO, check=True,
      capture_output=True, text=True, env=dict(os.environ, MPLBACKEND='svg'))
  assert result.stdout.split() == ['svg', 'svg', 'svg', 'False']
  assert os.path.getsize(os.path.join(root, 'curves_blobs.png')) > 1000


def _run(strategy, seed, accuracies, initial=20, query_size=10):
  """A finished run of 'mnist' without files, for the figure functions."""
  rounds = len(accuracies)
  return report.Run(
      cell=study.Cell('mnist', strategy, seed),
      num_labeled=tuple(initial + r * query_size for r in range(rounds)),
      accuracies=tuple(float(a) for a in accuracies),
      train_seconds=(0.0,) * rounds, test_seconds=None,
      query_seconds=(0.0,) * rounds, vmapped=False)


def test_family_panels_hold_every_strategy_once_with_random_in_each():
  rng = np.random.default_rng(4)
  names = acquisition.names() + ['someones_method']  # the last: unlisted
  by_strategy = {name: [_run(name, seed, np.sort(rng.uniform(0.3, 0.9, 4)))
                        for seed in SEEDS] for name in names}
  fig = report.figures.family_curves(by_strategy, 'mnist',
                                     full_accuracy=0.97)
  panels = [ax for ax in fig.axes if ax.axison]
  drawn = []
  for ax in panels:
    lines = {line.get_label().split(' (')[0]: line for line in ax.get_lines()}
    assert len(lines) == len(ax.get_lines())  # no strategy twice in a panel
    assert lines['random'].get_linestyle() == '--'
    assert lines['random'].get_color() == report.figures.RANDOM_STYLE['color']
    assert list(lines['full training'].get_ydata()) == [0.97, 0.97]
    strategies = sorted(set(lines) - {'random', 'full training'})
    assert 1 <= len(strategies) <= report.families.MAX_LINES
    drawn += strategies
  assert sorted(drawn) == sorted(set(names) - {'random'})  # each exactly once
  titles = [ax.get_title() for ax in panels]
  assert titles[-1] == 'other' and len(titles) == len(set(titles))
  other = [line.get_label().split(' (')[0] for line in panels[-1].get_lines()]
  assert 'someones_method' in other
  # The mean curve and its AUBC, against numpy and the trapezoid rule.
  uncertainty = panels[titles.index('uncertainty')]
  entropy = next(line for line in uncertainty.get_lines()
                 if line.get_label().startswith('entropy ('))
  curves = np.array([r.accuracies for r in by_strategy['entropy']])
  np.testing.assert_allclose(entropy.get_ydata(), curves.mean(axis=0))
  aubc = np.mean([_plain_aubc([20, 30, 40, 50], c) for c in curves])
  assert entropy.get_label() == f'entropy ({aubc:.3f})'


def test_a_family_larger_than_a_panel_is_split_evenly():
  names = ['random', 'margin', 'entropy', 'least_confidence', 'ceal',
           'var_ratio_deepalplus', 'kcenter', 'zzz']
  assert report.families.panels(names, max_lines=2) == [
      ('uncertainty (1/3)', ['entropy', 'margin']),
      ('uncertainty (2/3)', ['least_confidence', 'ceal']),
      ('uncertainty (3/3)', ['var_ratio_deepalplus']),
      ('diversity / clustering', ['kcenter']),
      ('other', ['zzz'])]
  listed = [n for members in report.families.FAMILIES.values()
            for n in members]
  assert len(listed) == len(set(listed))  # one family per strategy
  assert 'random' not in listed


def test_gain_over_random_is_the_difference_of_mean_curves(tmp_path):
  rng = np.random.default_rng(5)
  curves = {(s, seed): np.sort(rng.uniform(0.3, 0.9, 5))
            for s in STRATEGIES for seed in SEEDS}
  for (strategy, seed), accuracies in curves.items():
    _write_run(tmp_path, 'digits', strategy, seed, accuracies)
  text = open(report.write(str(tmp_path))).read()
  mean = {s: np.mean([curves[(s, seed)] for seed in SEEDS], axis=0)
          for s in STRATEGIES}
  expected = {s: mean[s] - mean['random'] for s in ('entropy', 'margin')}
  found, _ = report.load_runs(str(tmp_path))
  num_labeled, gains = report.gains(report.group(found)[('digits', 10, 3)])
  assert num_labeled == [20, 30, 40, 50, 60]
  for name, gain in expected.items():
    np.testing.assert_allclose(gains[name], gain, atol=1e-12)
  np.testing.assert_allclose(report.gain([[0.5, 0.7], [0.6, 0.9]],
                                         [[0.4, 0.4]]), [0.15, 0.4])
  rows = _table_rows(text, '## Gain over')
  assert rows[0] == ['strategy', 'family', '20', '30', '40', '50', '60',
                     'mean']
  order = sorted(expected, key=lambda s: -np.mean(expected[s]))
  assert [row[0] for row in rows[1:]] == order
  for row in rows[1:]:
    gain = expected[row[0]]
    assert row[1] == 'uncertainty'
    assert row[2:] == [f'{100 * g:+.2f}' for g in gain] + [
        f'{100 * np.mean(gain):+.2f}']
  assert '(gain_digits.png)' in text
  assert os.path.getsize(os.path.join(tmp_path, 'gain_digits.png')) > 1000


def _protocol(text):
  return {row[0]: row[1] for row in _table_rows(text, '## Protocol')[1:]}


def _stored_config(**changes):
  config = config_lib.default()
  for name, value in changes.items():
    setattr(config, name, value)
  return json.loads(workdir_lib.config_json(config))


def test_protocol_block_reads_the_stored_configs(tmp_path):
  for strategy, seed in itertools.product(('random', 'entropy'), (0, 1)):
    lr = 0.01 if (strategy, seed) == ('entropy', 1) else 0.001
    config = _stored_config(model='lenet', optimizer='sgd', learning_rate=lr,
                            momentum=0.5, weight_decay=5e-4, batch_size=64,
                            augment=True, posterior='ensemble',
                            ensemble_size=4, pool_size=20000,
                            initial_size=30)
    _write_run(tmp_path, 'mnist', strategy, seed, [0.5, 0.6], config=config)
  fields = _protocol(open(report.write(str(tmp_path))).read())
  assert fields['datasets'] == 'mnist'
  assert fields['model'] == 'lenet, dropout rate 0.2'
  assert fields['optimizer'] == (
      'varies: sgd, lr 0.001, momentum 0.5, weight decay 0.0005; '
      'sgd, lr 0.01, momentum 0.5, weight decay 0.0005')
  # _write_run stores query size 10 and 3 epochs; the rest is the config's.
  assert fields['epochs per round'] == '3'
  assert fields['batch size'] == '64'
  assert fields['model per round'] == 'fresh initialization'
  assert fields['augmentation'].startswith('random crop')
  assert fields['initial labeled set'] == '30 (uniform)'
  assert (fields['query size'], fields['rounds']) == ('10', '10')
  assert fields['final budget'] == str(30 + 10 * 10)
  assert fields['posterior (strategies needing K predictions)'] == (
      'ensemble, M = 4 members')
  assert fields['pool'] == 'first 20000 training images'
  assert fields['seeds'] == '0, 1'
  assert fields['strategies'] == '2: entropy, random'
  try:
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                          capture_output=True, text=True).stdout.strip()
  except OSError:
    head = ''
  assert fields['jal commit (of this report)'] == (head or 'unknown')
  assert 'pool size (examples)' not in fields  # no full training to say it


def test_protocol_fields_a_config_lacks_and_a_missing_git(grid, monkeypatch):
  root, _ = grid

  def no_git(*args, **kwargs):
    raise FileNotFoundError('git')

  monkeypatch.setattr(report.markdown.subprocess, 'run', no_git)
  fields = _protocol(open(report.write(str(root))).read())
  assert fields['jal commit (of this report)'] == 'unknown'
  assert fields['model'] == 'not recorded'  # configs of cell fields only
  assert fields['query size'] == '10'
  assert fields['datasets'] == 'blobs, digits'


def _write_full(root, dataset, accuracies, balanced=None, epochs=3):
  entries = [dict(seed=seed, epochs=epochs, num_epochs=epochs,
                  pool_size=500, test_accuracy=a, train_seconds=1.0)
             | ({} if balanced is None else
                dict(test_balanced_accuracy=balanced[seed]))
             for seed, a in enumerate(accuracies)]
  with open(full_training.path(str(root), dataset), 'w') as f:
    json.dump(dict(runs=entries), f)


def test_full_training_row_when_present_and_absent(grid):
  root, _ = grid
  text = open(report.write(str(root))).read()
  assert report.FULL_ROW not in text  # absent: no row, no error
  _write_full(root, 'blobs', [0.97, 0.95, 0.96])
  _write_full(root, 'digits', [0.9], epochs=5)  # another epochs setting
  text = open(report.write(str(root))).read()
  rows = _table_rows(text, 'Table 1)')
  assert rows[-1] == [report.FULL_ROW, '—',
                      f'0.9600 ± {np.std([0.97, 0.95, 0.96], ddof=1):.4f}',
                      '—', '—']
  assert _protocol(text)['pool size (examples)'] == 'blobs 500, digits 500'


def test_full_training_trains_on_the_whole_pool_once(tiny_config, tmp_path):
  bench = ml_collections.ConfigDict(dict(
      base=tiny_config, datasets='digits', strategies='random', seeds=0))
  logs = []
  found = full_training.run(bench, str(tmp_path), log=logs.append)
  [entry] = found['digits']
  assert (entry['seed'], entry['epochs'], entry['num_epochs']) == (0, None, 3)
  assert entry['pool_size'] == 1297  # digits' whole pool
  assert entry['test_accuracy'] > 0.85  # 3 epochs on 1297 labels, not 20
  assert len(logs) == 1
  assert full_training.run(bench, str(tmp_path), log=logs.append) == found
  assert len(logs) == 1  # stored: not trained again


def test_balanced_accuracy_shown_only_for_imbalanced_datasets(tmp_path):
  rng = np.random.default_rng(6)
  balanced = {}
  for dataset, strategy, seed in itertools.product(
      ('digits', 'digits-imb'), ('random', 'entropy'), SEEDS):
    accuracies = np.sort(rng.uniform(0.4, 0.9, 4))
    balanced[(dataset, strategy, seed)] = accuracies - rng.uniform(0, .1, 4)
    _write_run(tmp_path, dataset, strategy, seed, accuracies,
               balanced=balanced[(dataset, strategy, seed)])
  _write_full(tmp_path, 'digits-imb', [0.9, 0.8, 0.85], [0.7, 0.6, 0.65])
  text = open(report.write(str(tmp_path))).read()
  rows = _table_rows(text, 'Table 1)')
  assert rows[0] == ['strategy', 'digits AUBC', 'digits F-acc',
                     'digits-imb AUBC', 'digits-imb F-acc',
                     'digits-imb bal. AUBC', 'digits-imb bal. F-acc']
  body = {row[0]: row for row in rows[1:]}
  for strategy in ('random', 'entropy'):
    curves = [balanced[('digits-imb', strategy, seed)] for seed in SEEDS]
    aubc = [_plain_aubc([20, 30, 40, 50], c) for c in curves]
    final = [c[-1] for c in curves]
    for column, values in ((5, aubc), (6, final)):
      mean, std = map(float, re.findall(r'[0-9.]+', body[strategy][column]))
      assert mean == pytest.approx(np.mean(values), abs=1e-4)
      assert std == pytest.approx(np.std(values, ddof=1), abs=1e-4)
  assert body[report.FULL_ROW][3:] == [
      '—', '0.8500 ± 0.0500', '—', '0.6500 ± 0.0500']
  assert '(curves_balanced_digits-imb.png)' in text
  assert not os.path.exists(tmp_path / 'curves_balanced_digits.png')


def test_balanced_columns_of_records_predating_them(grid):
  root, _ = grid
  for path in ('blobs', 'digits'):
    os.rename(os.path.join(root, path), os.path.join(root, path + '-imb'))
  for name in ('config.json',):
    for directory, _, files in os.walk(root):
      if name in files:
        file = os.path.join(directory, name)
        config = json.load(open(file))
        config['dataset'] += '-imb'
        json.dump(config, open(file, 'w'))
  text = open(report.write(str(root))).read()
  rows = _table_rows(text, 'Table 1)')
  assert rows[0][3:5] == ['blobs-imb bal. AUBC', 'blobs-imb bal. F-acc']
  assert all(row[3:5] == ['—', '—'] for row in rows[1:])
  assert 'curves_balanced' not in text


def test_recorded_balanced_accuracy_matches_sklearn(tiny_config):
  blobs = make_blobs_dataset(num_test=90)
  # An imbalanced test set (class counts about 27, 9, 3) and some labels
  # flipped, so that balanced and plain accuracy differ.
  keep = np.concatenate([np.flatnonzero(blobs.test_labels == c)[:n]
                         for c, n in enumerate((27, 9, 3))])
  labels = blobs.test_labels[keep].copy()
  labels[::5] = (labels[::5] + 1) % 3
  dataset = data.Dataset(blobs.pool_images, blobs.pool_labels,
                         blobs.test_images[keep], labels, 3, 'blobs')
  exp, arrays = loop.setup(tiny_config, dataset)
  oracle = lambda idx: dataset.pool_labels[idx]
  state = loop.init_state(exp, arrays, oracle)
  # The last round: `step` trains and tests, and queries nothing.
  state = state._replace(round=state.round + tiny_config.num_rounds)
  fns = loop.RoundFns(exp)
  trained = fns.train(arrays, state)
  predicted = np.argmax(np.asarray(exp.posterior.test_log_probs(
      trained.variables, arrays.test_images)), axis=-1)
  accuracy, balanced = fns.test_metrics(arrays, trained)
  assert float(balanced) == pytest.approx(
      sklearn_metrics.balanced_accuracy_score(labels, predicted), abs=1e-6)
  assert float(accuracy) == pytest.approx(np.mean(predicted == labels))
  assert float(accuracy) == pytest.approx(float(fns.test(arrays, trained)))
  _, record = loop.step(fns, arrays, state, oracle)  # the same round
  assert record['selected'] == []
  assert record['test_balanced_accuracy'] == pytest.approx(float(balanced))


def test_every_registered_strategy_has_a_family():
  unmapped = [name for name in acquisition.names()
              if name != families.BASELINE and
              families.family(name) == families.OTHER]
  assert not unmapped, f'add {unmapped} to jal.report.families.FAMILIES'


def _add_diagnostics(workdir, eces, costs, counts, stopping_rounds):
  """Adds the diagnostics' keys to a written run, and its stopping rounds."""
  path = os.path.join(workdir, 'results.jsonl')
  with open(path) as f:
    records = [json.loads(line) for line in f]
  for record, ece, cost, count in zip(records, eces, costs, counts):
    record.update(test_ece=ece, cumulative_label_cost=cost,
                  queried_class_counts=count)
  with open(path, 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in records)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(dict(aubc=0.0, stopping=stopping_rounds), f)


def test_stopping_and_diagnostics_sections(tmp_path):
  accuracies = {0: [0.5, 0.7, 0.8, 0.85], 1: [0.4, 0.6, 0.7, 0.9]}
  fired = {0: dict(budget=3, plateau=2, stabilizing_predictions=None),
           1: dict(budget=3, plateau=1, stabilizing_predictions=None)}
  for seed in (0, 1):
    workdir = _write_run(tmp_path, 'digits', 'entropy', seed,
                         accuracies[seed])
    _add_diagnostics(workdir, [0.2, 0.1, 0.1, 0.05 + 0.05 * seed],
                     [20.0, 60.0, 100.0, 140.0],
                     [[3, 1], [9, 1], [4, 6], [0, 0]], fired[seed])
  _write_run(tmp_path, 'digits', 'random', 0, [0.5, 0.6, 0.7, 0.8])
  text = open(report.write(str(tmp_path))).read()
  rows = {(r[0], r[1]): r[2:] for r in _table_rows(text, '### digits')}
  # Plateau: rounds 2 and 1, 40 and 30 labels used of 50; accuracy there
  # 0.8 and 0.6 against 0.85 and 0.9 at the whole budget.
  assert rows[('entropy', 'plateau')] == [
      '2/2', '1.5', '35', '15', '0.7000', '0.8750', '+0.1750']
  assert rows[('entropy', 'budget')][:4] == ['2/2', '3.0', '50', '0']
  assert rows[('entropy', 'stabilizing_predictions')] == ['0/2'] + ['—'] * 6
  assert rows[('entropy', 'target_accuracy')][0] == '0/2'
  assert not any(name == 'random' for name, _ in rows)  # predates stopping
  calibration = {r[0]: r[1:] for r in _table_rows(
      text, '## Calibration and queried classes')}
  assert calibration['entropy'][0] == '0.0750 ± 0.0354'  # final ECE
  # 16 of 24 queried labels were class 0.
  assert calibration['entropy'][2] == f'{16 / 24:.3f}'
  assert calibration['random'] == ['—', '—', '—']
  assert 'cost_digits.png' not in text  # the random run has no costs


def test_accuracy_against_cost_figure_when_labels_are_priced(tmp_path):
  for strategy in ('entropy', 'random'):
    workdir = _write_run(tmp_path, 'digits', strategy, 0, [0.5, 0.7, 0.8])
    _add_diagnostics(workdir, [0.1] * 3, [25.0, 70.0, 90.0],
                     [[1, 1], [2, 0], [0, 0]], dict(budget=2))
  text = open(report.write(str(tmp_path))).read()
  assert '![digits accuracy against cost](cost_digits.png)' in text
  assert os.path.getsize(tmp_path / 'cost_digits.png') > 1000


def test_labels_to_reach_is_the_first_count_at_the_target():
  counts = [20, 30, 40, 50]
  assert report.stats.labels_to_reach(counts, [0.5, 0.9, 0.85, 0.95],
                                      0.9) == 30
  assert report.stats.labels_to_reach(counts, [0.5, 0.6, np.nan, 0.7],
                                      0.7) == 50
  assert report.stats.labels_to_reach(counts, [0.5, 0.6, np.nan, 0.7],
                                      0.8) is None


def test_labels_to_target_table_against_a_plain_count(tmp_path):
  # Labeled counts 20, 30, ..., 60. 'fast' reaches 0.9 ten labels before
  # random on seeds 0 and 1, twenty on seed 2; seed 2 of random never
  # reaches 0.95.
  curves = {
      ('random', 0): [0.5, 0.7, 0.9, 0.92, 0.96],
      ('random', 1): [0.5, 0.8, 0.91, 0.95, 0.96],
      ('random', 2): [0.5, 0.6, 0.8, 0.85, 0.94],
      ('fast', 0): [0.5, 0.9, 0.92, 0.95, 0.97],
      ('fast', 1): [0.6, 0.9, 0.95, 0.95, 0.97],
      ('fast', 2): [0.5, 0.7, 0.9, 0.96, 0.97],
  }
  for (strategy, seed), accuracies in curves.items():
    _write_run(tmp_path, 'digits', strategy, seed, accuracies)
  text = open(report.write(str(tmp_path), targets=(0.9, 0.95))).read()
  rows = {row[0]: row for row in _table_rows(text, 'target accuracy')}
  assert rows['strategy'] == ['strategy', 'labels to 90.0%', 'vs random',
                              'labels to 95.0%', 'vs random']
  # fast: 30, 30, 40 to 90%; random: 40, 40, 60.
  fast_90 = np.array([30, 30, 40])
  assert rows['fast'][1] == (f'{fast_90.mean():.0f} ± '
                             f'{fast_90.std(ddof=1):.0f} (median 30)')
  differences = fast_90 - np.array([40, 40, 60])
  t = differences.mean() / (differences.std(ddof=1) / np.sqrt(3))
  p = stats.t.cdf(t, df=2)  # H1: fewer labels
  assert p < 0.05 and rows['fast'][2] == f'-13, p={p:.3f} better (n=3)'
  # 95%: random reaches it on seeds 0 and 1 only (60, 50).
  assert rows['random'][3] == '55 ± 7 (median 55), 2/3 reach it'
  assert rows['fast'][4].endswith('(n=2)')
  with pytest.raises(errors.ConfigError, match='fractions'):
    report.write(str(tmp_path), targets=(90,))
