"""The study report: `write(workdir)` assembles `workdir/report.md`.

It reads every finished cell of a study directory (see `jal.report.runs`)
and writes the report with PNG figures beside it:

- AUBC and F-acc, mean ± std over seeds, per task × strategy (DeepAL+
  Table 1), the best mean of each task in bold. A task is a dataset, or a
  (dataset, query size, epochs) setting when the grid has ablation axes.
- Win–tie–loss over all ordered pairs of strategies and all tasks, and the
  ranking it gives (DeepAL+ Table 3).
- A paired one-sided t-test over seeds of each strategy's AUBC against
  `random` per task, and the number of tasks where it is significantly
  better.
- Accuracy–budget curves per task (DeepAL+ Figure 2).
- Mean training, test and query seconds per round per strategy.
- With query-size or epoch axes: AUBC against each axis (DeepAL+ Figure 3)
  and a grid of accuracy–budget curves (Figure 4).

The numbers come from `jal.report.stats` and the figures from
`jal.report.figures`; this module only lays them out.
"""

import io
import os
import re
from collections.abc import Sequence

import numpy as np

from jal import checkpoint
from jal import errors
from jal.report import figures
from jal.report import runs
from jal.report import stats

REPORT = 'report.md'
BASELINE = 'random'

Names = dict[runs.Task, str]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  return (['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' for _ in header) + '|'] +
          ['| ' + ' | '.join(row) + ' |' for row in rows])


def _strategies(grouped: runs.Grouped) -> list[str]:
  return sorted({s for per in grouped.values() for s in per})


def _mean_aubc(
    grouped: runs.Grouped) -> dict[runs.Task, dict[str, float]]:
  return {task: {s: float(np.mean([r.aubc for r in found]))
                 for s, found in per.items()}
          for task, per in grouped.items()}


def _slug(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def _figure(fig, workdir: str, name: str, alt: str) -> str:
  """Saves `fig` as `workdir/name` (atomically); returns its markdown image."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png')
  checkpoint.atomic_write(os.path.join(workdir, name), buffer.getvalue())
  return f'![{alt}]({name})'


def _mean_std_cell(values: Sequence[float], bold: bool,
                   num_seeds: int) -> str:
  mean, std = stats.mean_std(values)
  text = f'{mean:.4f} ± {std:.4f}'
  text = f'**{text}**' if bold else text
  return text if len(values) == num_seeds else f'{text} (n={len(values)})'


def performance_table(grouped: runs.Grouped, names: Names) -> list[str]:
  """DeepAL+ Table 1: AUBC and F-acc per task (columns) and strategy (rows).

  Cells over fewer seeds than the grid's most say how many (n=…).
  """
  metrics = ('aubc', 'final_accuracy')
  num_seeds = max(len(found) for per in grouped.values()
                  for found in per.values())
  values = {(task, metric): {s: [getattr(r, metric) for r in found]
                             for s, found in per.items()}
            for task, per in grouped.items() for metric in metrics}
  bold = {key: stats.best({s: np.mean(v) for s, v in per.items()})
          for key, per in values.items()}
  header = ['strategy'] + [f'{names[t]} {m}' for t in grouped
                           for m in ('AUBC', 'F-acc')]
  rows = [[name] + [_mean_std_cell(values[key][name], name in bold[key],
                                   num_seeds)
                    if name in values[key] else '—' for key in values]
          for name in _strategies(grouped)]
  return _table(header, rows)


def _win_tie_loss(grouped: runs.Grouped, margin: float) -> list[str]:
  pairs, totals = stats.win_tie_loss(_mean_aubc(grouped), margin)
  order = stats.ranking(totals)
  rows = []
  for rank, a in enumerate(order, 1):
    w, t, l = totals[a]
    rows.append([str(rank), a, f'{w}/{t}/{l}', str(w - l)] +
                ['·' if a == b else '/'.join(map(str, pairs[(a, b)]))
                 for b in order])
  return [
      '', '## Win–tie–loss (DeepAL+ Table 3)', '',
      'On each task, the row strategy wins against the column strategy when '
      f'its mean AUBC is higher by more than {margin:g} ({100 * margin:g}% '
      'accuracy, absolute), loses when lower by more than that, and ties '
      'otherwise. Entries are wins/ties/losses summed over the '
      f'{len(grouped)} task(s); rows in rank order (wins − losses, then '
      'wins).', ''] + _table(['rank', 'strategy', 'total W/T/L', 'W − L'] +
                            order, rows)


def _against_baseline(grouped: runs.Grouped, names: Names,
                      num_seeds: int) -> list[str]:
  out = ['', f'## Against `{BASELINE}`: paired t-test over seeds', '']
  if not any(BASELINE in per for per in grouped.values()):
    return out + [f'The grid has no `{BASELINE}` runs; no test.']
  out += [
      f'Per task: mean AUBC difference (strategy − {BASELINE}) over the '
      'seeds both have, the one-sided paired t-test p-value for "better", '
      f'and the verdict at α = {stats.ALPHA} (better, worse, or n.s. = not '
      'significant). No correction for multiple comparisons. '
      f'With {num_seeds} seed(s) the test has {max(num_seeds - 1, 0)} '
      'degree(s) of freedom and little power: n.s. does not mean equal, and '
      'with 2 or 3 seeds only large, consistent gains reach significance (a '
      'Wilcoxon signed-rank test could not: its smallest one-sided p with '
      f'{num_seeds} pairs is {0.5 ** max(num_seeds, 1):.3f}).', '']
  rows = []
  for name in _strategies(grouped):
    if name == BASELINE:
      continue
    row, better, tested = [name], 0, 0
    for per in grouped.values():
      if name not in per or BASELINE not in per:
        row.append('—')
        continue
      test = stats.paired_test({r.cell.seed: r.aubc for r in per[name]},
                               {r.cell.seed: r.aubc for r in per[BASELINE]})
      tested += 1
      better += test.verdict == 'better'
      row.append(f'{test.mean_difference:+.4f}, p={test.p_better:.3f} '
                 f'{test.verdict}')
    rows.append(row + [f'{better} / {tested}'])
  header = (['strategy'] + [names[t] for t in grouped] +
            ['tasks significantly better'])
  return out + _table(header, rows)


def _curves(grouped: runs.Grouped, names: Names,
            workdir: str) -> list[str]:
  return ['', '## Accuracy–budget curves (DeepAL+ Figure 2)', '',
          'Mean over seeds with a ± std band; the legend gives AUBC mean ± '
          'std.', ''] + [
              _figure(figures.curves(per, names[task]), workdir,
                      f'curves_{_slug(names[task])}.png', names[task])
              for task, per in grouped.items()]


def _seconds_cell(found: Sequence[runs.Run], column: str,
                  skip_last: bool = False) -> str:
  """Mean over runs of their steady seconds per round; '—' if unrecorded."""
  timed = [getattr(r, column) for r in found
           if getattr(r, column) is not None]
  if not timed:
    return '—'
  mean = np.mean([stats.steady_seconds(s, skip_last) for s in timed])
  return f'{mean:.3f}' + ('†' if any(r.vmapped for r in found) else '')


def _timing(grouped: runs.Grouped, names: Names) -> list[str]:
  rows = []
  for name in _strategies(grouped):
    row = [name]
    for per in grouped.values():
      found = per.get(name)
      row += ([_seconds_cell(found, 'train_seconds'),
               _seconds_cell(found, 'test_seconds'),
               _seconds_cell(found, 'query_seconds', skip_last=True)]
              if found else ['—'] * 3)
    rows.append(row)
  header = ['strategy'] + [f'{names[t]} {k}' for t in grouped
                           for k in ('train s', 'test s', 'query s')]
  return [
      '', '## Time per round', '',
      'Mean seconds per round over seeds: training, testing and query, '
      'leaving out round 0, whose time includes compilation, and the last '
      'round\'s query (there is none). — in test s: the records predate a '
      'separate test time, and their training time includes testing. † '
      'marks runs whose seeds ran as one vmapped program: their times are '
      'that program\'s wall time divided by the number of seeds (amortized), '
      'so they are not comparable with one-by-one runs.', ''] + _table(
          header, rows)


def _ablations(grouped: runs.Grouped, workdir: str) -> list[str]:
  datasets = sorted({t[0] for t in grouped})
  ablated = [d for d in datasets
             if len({(t[1], t[2]) for t in grouped if t[0] == d}) > 1]
  if not ablated:
    return []
  out = ['', '## Ablations: query size and training epochs (DeepAL+ Figures '
         '3 and 4)', '']
  for dataset in ablated:
    slug = _slug(dataset)
    out += [_figure(figures.ablation(dataset, grouped), workdir,
                    f'ablation_{slug}.png', f'{dataset} AUBC by axis'), '',
            _figure(figures.ablation_curves(dataset, grouped), workdir,
                    f'ablation_curves_{slug}.png',
                    f'{dataset} curves by setting'), '']
  return out


def write(workdir: str, margin: float = stats.MARGIN) -> str:
  """Writes `workdir/report.md` and its figures; returns the report's path.

  Raises:
    NoResultsError: `workdir` is missing or holds no finished cell.
    CorruptResultsError: a cell's files cannot be read (the message names
      the file).
  """
  found, unfinished = runs.load_runs(workdir)
  if not found:
    raise errors.NoResultsError(
        f'No finished experiment (summary.json) under {workdir}. Run '
        'experiments/benchmark.py with --workdir pointing there first.')
  grouped = runs.group(found)
  names = runs.task_names(grouped)
  seeds = sorted({r.cell.seed for r in found})
  out = [f'# Comparative study: {workdir}', '',
         f'{len(found)} finished runs: {len(grouped)} tasks, '
         f'{len(_strategies(grouped))} strategies, seeds {seeds}.']
  if unfinished:
    out.append(f'{len(unfinished)} unfinished runs are left out: '
               + ', '.join(unfinished[:10])
               + (' …' if len(unfinished) > 10 else '') + '.')
  out += ['', '## AUBC and final accuracy (DeepAL+ Table 1)', '',
          'Mean ± sample std over seeds; the best mean of each column in '
          'bold.', '']
  out += performance_table(grouped, names)
  out += _win_tie_loss(grouped, margin)
  out += _against_baseline(grouped, names, len(seeds))
  out += _curves(grouped, names, workdir)
  out += _timing(grouped, names)
  out += _ablations(grouped, workdir)
  path = os.path.join(workdir, REPORT)
  checkpoint.atomic_write(path, ('\n'.join(out) + '\n').encode())
  return path
