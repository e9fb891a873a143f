"""The report of a comparative study (DeepAL+ §3): tables, tests and figures.

`write(workdir)` reads every finished cell under a grid's directory (each a
`loop.run` work directory: `config.json`, `results.jsonl`, `summary.json`)
and writes `workdir/report.md` with PNG figures beside it:

- AUBC and F-acc, mean ± std over seeds, per task × strategy (DeepAL+
  Table 1), the best mean of each task in bold. A task is a dataset, or a
  (dataset, query size, epochs) setting when the grid has ablation axes.
- Win–tie–loss over all ordered pairs of strategies and all tasks (DeepAL+
  Table 3): on a task, A wins against B when A's mean AUBC exceeds B's by more
  than the margin (0.5% = 0.005 of accuracy, absolute), loses when it is
  lower by more than the margin, and ties otherwise. Strategies are ranked by
  wins − losses (DeepAL+ does not state its key; its text has LPL rank low
  despite many wins because of its losses), then by wins.
- A paired one-sided t-test over seeds of each strategy's AUBC against
  `random` per task (seeds pair naturally: the same seed gives the same data
  split and initial labeled set), and the number of tasks where it is
  significantly better.
- Accuracy–budget curves per task, mean ± std band, AUBC in the legend
  (DeepAL+ Figure 2).
- Mean training and query seconds per round per strategy.
- With query-size or epoch axes: AUBC against each axis (DeepAL+ Figure 3)
  and a grid of accuracy–budget curves (Figure 4).

std is the sample standard deviation over seeds (ddof=1; 0 for one seed).
"""

import collections
import dataclasses
import json
import os
import re

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from scipy import stats

from jal import loop
from jal import metrics

REPORT = 'report.md'
MARGIN = 0.005  # DeepAL+'s 0.5% win–tie–loss margin, in accuracy units.
ALPHA = 0.05
BASELINE = 'random'


@dataclasses.dataclass(frozen=True)
class Run:
  """One finished cell: its setting and per-round records."""
  dataset: str
  strategy: str
  seed: int
  query_size: int
  num_epochs: int
  num_labeled: tuple[int, ...]
  accuracies: tuple[float, ...]
  train_seconds: tuple[float, ...]
  query_seconds: tuple[float, ...]
  vmapped: bool

  @property
  def aubc(self) -> float:
    return metrics.aubc(self.num_labeled, self.accuracies)

  @property
  def final_accuracy(self) -> float:
    return metrics.final_accuracy(self.accuracies)


def load_runs(workdir: str) -> tuple[list[Run], list[str]]:
  """Finished runs under `workdir`, and the directories of unfinished ones."""
  runs, unfinished = [], []
  for root, _, files in sorted(os.walk(workdir)):
    if loop.CONFIG not in files:
      continue
    if loop.SUMMARY not in files:
      unfinished.append(os.path.relpath(root, workdir))
      continue
    with open(os.path.join(root, loop.CONFIG)) as f:
      config = json.load(f)
    with open(os.path.join(root, loop.RESULTS)) as f:
      records = [json.loads(line) for line in f if line.strip()]
    runs.append(Run(
        dataset=config['dataset'], strategy=config['strategy'],
        seed=config['seed'], query_size=config['query_size'],
        num_epochs=config['num_epochs'],
        num_labeled=tuple(r['num_labeled'] for r in records),
        accuracies=tuple(r['test_accuracy'] for r in records),
        train_seconds=tuple(r['train_seconds'] for r in records),
        query_seconds=tuple(r['query_seconds'] for r in records),
        vmapped=os.path.exists(os.path.join(root, 'trials.json'))))
  return runs, unfinished


Task = tuple[str, int, int]  # dataset, query size, epochs


def task_names(runs: list[Run]) -> dict[Task, str]:
  """Readable task names: the dataset, plus the axes that vary within it."""
  tasks = sorted({(r.dataset, r.query_size, r.num_epochs) for r in runs})
  names = {}
  for task in tasks:
    same = [t for t in tasks if t[0] == task[0]]
    name = task[0]
    if len({t[1] for t in same}) > 1:
      name += f' b={task[1]}'
    if len({t[2] for t in same}) > 1:
      name += f' e={task[2]}'
    names[task] = name
  return names


def group(runs: list[Run]) -> dict[Task, dict[str, list[Run]]]:
  """runs[task][strategy] = that setting's runs, sorted by seed."""
  grouped = collections.defaultdict(lambda: collections.defaultdict(list))
  for run in sorted(runs, key=lambda r: r.seed):
    grouped[(run.dataset, run.query_size, run.num_epochs)][
        run.strategy].append(run)
  return {t: dict(s) for t, s in sorted(grouped.items())}


def mean_std(values) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
  values = np.asarray(values, np.float64)
  std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
  return float(np.mean(values)), std


def win_tie_loss(means: dict[Task, dict[str, float]], margin: float = MARGIN):
  """DeepAL+ Table 3: pairwise win–tie–loss counts over tasks.

  Args:
    means: means[task][strategy] = mean AUBC over seeds.
    margin: A wins on a task when mean_A − mean_B > margin, loses when
      mean_A − mean_B < −margin, ties otherwise. Pairs where one of the two
      has no result on a task are not compared there.

  Returns:
    (pairs, totals): pairs[(a, b)] = [wins, ties, losses] of a against b;
    totals[a] = the sums over b.
  """
  names = sorted({s for per_task in means.values() for s in per_task})
  pairs = {(a, b): [0, 0, 0] for a in names for b in names if a != b}
  for per_task in means.values():
    for (a, b), counts in pairs.items():
      if a in per_task and b in per_task:
        difference = per_task[a] - per_task[b]
        counts[0 if difference > margin else
               2 if difference < -margin else 1] += 1
  totals = {a: [sum(pairs[(a, b)][i] for b in names if b != a)
                for i in range(3)] for a in names}
  return pairs, totals


def ranking(totals: dict[str, list[int]]) -> list[str]:
  """Names by wins − losses, then wins, then name."""
  return sorted(totals, key=lambda a: (-(totals[a][0] - totals[a][2]),
                                       -totals[a][0], a))


@dataclasses.dataclass(frozen=True)
class PairedTest:
  """A strategy's AUBC against the baseline's on the same seeds."""
  num_seeds: int
  mean_difference: float
  p_better: float  # one-sided paired t-test, H1: strategy > baseline
  p_worse: float  # one-sided, H1: strategy < baseline

  @property
  def verdict(self) -> str:
    if self.num_seeds < 2:
      return 'n/a'
    if self.p_better < ALPHA:
      return 'better'
    if self.p_worse < ALPHA:
      return 'worse'
    return 'n.s.'


def paired_test(runs: list[Run], baseline: list[Run]) -> PairedTest:
  """Paired t-test of AUBC over the seeds both have."""
  base = {r.seed: r.aubc for r in baseline}
  pairs = [(r.aubc, base[r.seed]) for r in runs if r.seed in base]
  if not pairs:
    return PairedTest(0, float('nan'), float('nan'), float('nan'))
  x, y = (np.array(v) for v in zip(*pairs))
  difference = float(np.mean(x - y))
  if len(pairs) < 2:
    return PairedTest(len(pairs), difference, float('nan'), float('nan'))
  if np.all(x - y == (x - y)[0]):  # zero variance: t is undefined
    better = 0.0 if difference > 0 else 1.0
    worse = 0.0 if difference < 0 else 1.0
  else:
    better = float(stats.ttest_rel(x, y, alternative='greater').pvalue)
    worse = float(stats.ttest_rel(x, y, alternative='less').pvalue)
  return PairedTest(len(pairs), difference, better, worse)


def _slug(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def _curve(runs: list[Run]):
  """Mean and std accuracy over runs at each budget ([R+1] each)."""
  accuracies = np.array([r.accuracies for r in runs])
  std = (accuracies.std(axis=0, ddof=1) if len(runs) > 1
         else np.zeros(accuracies.shape[1]))
  return np.array(runs[0].num_labeled), accuracies.mean(axis=0), std


def _colors(names):
  cmap = plt.get_cmap('tab20' if len(names) > 10 else 'tab10')
  return {name: cmap(i % cmap.N) for i, name in enumerate(sorted(names))}


def plot_curves(by_strategy: dict[str, list[Run]], title: str, path: str,
                ax=None) -> None:
  """Accuracy–budget curves, mean ± std band, AUBC in the legend."""
  own = ax is None
  if own:
    fig, ax = plt.subplots(figsize=(8, 5.5))
  colors = _colors(by_strategy)
  for name, runs in sorted(by_strategy.items()):
    n, mean, std = _curve(runs)
    aubc_mean, aubc_std = mean_std([r.aubc for r in runs])
    ax.plot(n, mean, color=colors[name], lw=1.4,
            label=f'{name} ({aubc_mean:.4f} ± {aubc_std:.4f})')
    ax.fill_between(n, mean - std, mean + std, color=colors[name], alpha=0.15)
  ax.set_title(title)
  ax.set_xlabel('labeled examples')
  ax.set_ylabel('test accuracy')
  ax.grid(alpha=0.3)
  if own:
    ax.legend(fontsize=7, ncol=2 if len(by_strategy) > 10 else 1,
              title='strategy (AUBC mean ± std)', title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ablation(dataset: str, grouped: dict, path: str) -> None:
  """AUBC against query size and against epochs (DeepAL+ Figure 3)."""
  tasks = [t for t in grouped if t[0] == dataset]
  axes_values = {'query size': sorted({t[1] for t in tasks}),
                 'training epochs': sorted({t[2] for t in tasks})}
  varying = [a for a, v in axes_values.items() if len(v) > 1]
  fig, axes = plt.subplots(1, len(varying), figsize=(6 * len(varying), 4.5),
                           squeeze=False)
  strategies = sorted({s for t in tasks for s in grouped[t]})
  colors = _colors(strategies)
  for ax, axis in zip(axes[0], varying):
    position, other = (1, 2) if axis == 'query size' else (2, 1)
    others = sorted({t[other] for t in tasks})
    styles = ['-', '--', ':', '-.']
    for name in strategies:
      for k, fixed in enumerate(others):
        xs, ms, ss = [], [], []
        for value in axes_values[axis]:
          task = [t for t in tasks if t[position] == value and
                  t[other] == fixed]
          if task and name in grouped[task[0]]:
            m, s = mean_std([r.aubc for r in grouped[task[0]][name]])
            xs.append(value), ms.append(m), ss.append(s)
        if xs:
          other_name = 'e' if axis == 'query size' else 'b'
          label = name + (f' {other_name}={fixed}' if len(others) > 1 else '')
          ax.errorbar(xs, ms, yerr=ss, color=colors[name], capsize=3,
                      ls=styles[k % len(styles)], marker='o', ms=3,
                      label=label)
    ax.set_xlabel(axis)
    ax.set_ylabel('AUBC')
    ax.set_title(f'{dataset}: AUBC against {axis}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_ablation_curves(dataset: str, grouped: dict, path: str) -> None:
  """Accuracy–budget curves for each (epochs, query size) (DeepAL+ Fig. 4)."""
  tasks = [t for t in grouped if t[0] == dataset]
  sizes = sorted({t[1] for t in tasks})
  epochs = sorted({t[2] for t in tasks})
  fig, axes = plt.subplots(len(epochs), len(sizes), squeeze=False,
                           figsize=(3.6 * len(sizes), 2.8 * len(epochs)))
  for i, e in enumerate(epochs):
    for j, b in enumerate(sizes):
      ax = axes[i][j]
      if (dataset, b, e) in grouped:
        plot_curves(grouped[(dataset, b, e)], f'b={b}, e={e}', '', ax=ax)
        ax.legend(fontsize=5)
      else:
        ax.set_axis_off()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
  return '\n'.join(lines)


def _cell(values, best: bool, num_seeds: int) -> str:
  m, s = mean_std(values)
  text = f'{m:.4f} ± {s:.4f}'
  text = f'**{text}**' if best else text
  return text if len(values) == num_seeds else f'{text} (n={len(values)})'


def performance_table(grouped, names) -> str:
  """DeepAL+ Table 1: AUBC and F-acc per task (columns) and strategy (rows).

  Cells over fewer seeds than the grid's most say how many (n=…).
  """
  strategies = sorted({s for per in grouped.values() for s in per})
  num_seeds = max(len(runs) for per in grouped.values()
                  for runs in per.values())
  header = ['strategy'] + [f'{names[t]} {m}' for t in grouped
                           for m in ('AUBC', 'F-acc')]
  best = {}
  for task, per in grouped.items():
    for metric in ('aubc', 'final_accuracy'):
      means = {s: np.mean([getattr(r, metric) for r in runs])
               for s, runs in per.items()}
      top = max(means.values())
      best[(task, metric)] = {s for s, m in means.items() if m == top}
  rows = []
  for name in strategies:
    row = [name]
    for task, per in grouped.items():
      for metric in ('aubc', 'final_accuracy'):
        row.append(_cell([getattr(r, metric) for r in per[name]],
                         name in best[(task, metric)], num_seeds)
                   if name in per else '—')
    rows.append(row)
  return _table(header, rows)


def write(workdir: str, margin: float = MARGIN) -> str:
  """Writes `workdir/report.md` and its figures; returns the report's path."""
  runs, unfinished = load_runs(workdir)
  if not runs:
    raise FileNotFoundError(
        f'No finished experiment (summary.json) under {workdir}. Run '
        'experiments/benchmark.py with --workdir pointing there first.')
  grouped = group(runs)
  names = task_names(runs)
  seeds = sorted({r.seed for r in runs})
  out = [f'# Comparative study: {workdir}', '',
         f'{len(runs)} finished runs: {len(grouped)} tasks, '
         f'{len({r.strategy for r in runs})} strategies, seeds {seeds}.']
  if unfinished:
    out.append(f'{len(unfinished)} unfinished runs are left out: '
               + ', '.join(unfinished[:10])
               + (' …' if len(unfinished) > 10 else '') + '.')

  out += ['', '## AUBC and final accuracy (DeepAL+ Table 1)', '',
          'Mean ± sample std over seeds; the best mean of each column in '
          'bold.', '', performance_table(grouped, names)]

  means = {t: {s: float(np.mean([r.aubc for r in runs_]))
               for s, runs_ in per.items()} for t, per in grouped.items()}
  pairs, totals = win_tie_loss(means, margin)
  order = ranking(totals)
  out += ['', '## Win–tie–loss (DeepAL+ Table 3)', '',
          f'On each task, the row strategy wins against the column strategy '
          f'when its mean AUBC is higher by more than {margin:g} '
          f'({100 * margin:g}% accuracy, absolute), loses when lower by more '
          'than that, and ties otherwise. Entries are wins/ties/losses summed '
          f'over the {len(grouped)} task(s); rows in rank order (wins − '
          'losses, then wins).', '']
  header = ['rank', 'strategy', 'total W/T/L', 'W − L'] + order
  rows = []
  for rank, a in enumerate(order, 1):
    w, t, l = totals[a]
    rows.append([str(rank), a, f'{w}/{t}/{l}', str(w - l)] +
                ['·' if a == b else '/'.join(map(str, pairs[(a, b)]))
                 for b in order])
  out.append(_table(header, rows))

  out += ['', f'## Against `{BASELINE}`: paired t-test over seeds', '']
  if not any(BASELINE in per for per in grouped.values()):
    out.append(f'The grid has no `{BASELINE}` runs; no test.')
  else:
    out.append(
        f'Per task: mean AUBC difference (strategy − {BASELINE}) over the '
        'seeds both have, the one-sided paired t-test p-value for "better", '
        f'and the verdict at α = {ALPHA} (better, worse, or n.s. = not '
        'significant). No correction for multiple comparisons. '
        f'With {len(seeds)} seed(s) the test has {max(len(seeds) - 1, 0)} '
        'degree(s) of freedom and little power: n.s. does not mean equal, '
        'and with 2 or 3 seeds only large, consistent gains reach '
        'significance (a Wilcoxon signed-rank test could not: its smallest '
        f'one-sided p with {len(seeds)} pairs is '
        f'{0.5 ** max(len(seeds), 1):.3f}).')
    out.append('')
    strategies = sorted({s for per in grouped.values() for s in per}
                        - {BASELINE})
    header = ['strategy'] + [names[t] for t in grouped] + [
        'tasks significantly better']
    rows = []
    for name in strategies:
      row, better, tested = [name], 0, 0
      for task, per in grouped.items():
        if name not in per or BASELINE not in per:
          row.append('—')
          continue
        test = paired_test(per[name], per[BASELINE])
        tested += 1
        better += test.verdict == 'better'
        row.append(f'{test.mean_difference:+.4f}, p={test.p_better:.3f} '
                   f'{test.verdict}')
      rows.append(row + [f'{better} / {tested}'])
    out.append(_table(header, rows))

  out += ['', '## Accuracy–budget curves (DeepAL+ Figure 2)', '',
          'Mean over seeds with a ± std band; the legend gives AUBC mean ± '
          'std.', '']
  for task, per in grouped.items():
    figure = f'curves_{_slug(names[task])}.png'
    plot_curves(per, names[task], os.path.join(workdir, figure))
    out.append(f'![{names[task]}]({figure})')

  out += ['', '## Time per round', '',
          'Mean seconds per round over seeds: training and query, leaving '
          'out round 0, whose time includes compilation, and the last '
          'round\'s query (there is none). † marks runs whose seeds ran as one '
          'vmapped program: their times are that program\'s wall time '
          'divided by the number of seeds (amortized), so they are not '
          'comparable with one-by-one runs.', '']
  strategies = sorted({s for per in grouped.values() for s in per})
  header = ['strategy'] + [f'{names[t]} {k}' for t in grouped
                           for k in ('train s', 'query s')]
  rows = []
  for name in strategies:
    row = [name]
    for per in grouped.values():
      if name not in per:
        row += ['—', '—']
        continue
      mark = '†' if any(r.vmapped for r in per[name]) else ''
      train = np.mean([np.mean(r.train_seconds[1:] or r.train_seconds)
                       for r in per[name]])
      query = np.mean([np.mean(r.query_seconds[1:-1] or r.query_seconds[:1])
                       for r in per[name]])
      row += [f'{train:.3f}{mark}', f'{query:.3f}{mark}']
    rows.append(row)
  out.append(_table(header, rows))

  datasets = sorted({t[0] for t in grouped})
  ablated = [d for d in datasets
             if len({(t[1], t[2]) for t in grouped if t[0] == d}) > 1]
  if ablated:
    out += ['', '## Ablations: query size and training epochs '
            '(DeepAL+ Figures 3 and 4)', '']
    for dataset in ablated:
      figure = f'ablation_{_slug(dataset)}.png'
      plot_ablation(dataset, grouped, os.path.join(workdir, figure))
      curves = f'ablation_curves_{_slug(dataset)}.png'
      plot_ablation_curves(dataset, grouped, os.path.join(workdir, curves))
      out += [f'![{dataset} AUBC by axis]({figure})', '',
              f'![{dataset} curves by setting]({curves})', '']

  path = os.path.join(workdir, REPORT)
  with open(path, 'w') as f:
    f.write('\n'.join(out) + '\n')
  return path
