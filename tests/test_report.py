"""The study report: its numbers against plain computations on synthetic runs.

The statistics are checked as pure functions against numpy, scipy and hand
computations; the report as a whole against the same on run directories.
"""

import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from jal import report
from jal import study
from jal import trials

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STRATEGIES = ('entropy', 'margin', 'random')
SEEDS = (0, 1, 2)


def _write_run(root, dataset, strategy, seed, accuracies, query_size=10,
               num_epochs=3, initial=20, finished=True, train_seconds=0.5,
               query_seconds=0.1, test_seconds=None):
  workdir = os.path.join(root, dataset, strategy, f'b{query_size}',
                         f'e{num_epochs}', f'seed{seed}')
  os.makedirs(workdir)
  config = dict(dataset=dataset, strategy=strategy, seed=seed,
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
