"""The study report: `write(workdir)` assembles `workdir/report.md`.

It reads every finished cell of a study directory (see `jal.report.runs`)
and writes the report with PNG figures beside it:

- The protocol the cells ran with, read from their stored `config.json`
  (a field that differs between cells reads "varies"), and the jal commit
  that wrote the report.
- AUBC and F-acc, mean ± std over seeds, per task × strategy (DeepAL+
  Table 1), the best mean of each task in bold. A task is a dataset, or a
  (dataset, query size, epochs) setting when the grid has ablation axes.
  For `-imb` datasets, balanced accuracy's AUBC and final value beside them.
  A full-training row (`jal.full_training`) when the directory has one.
- Win–tie–loss over all ordered pairs of strategies and all tasks, and the
  ranking it gives (DeepAL+ Table 3).
- A paired one-sided t-test over seeds of each strategy's AUBC against
  `random` per task, and the number of tasks where it is significantly
  better.
- With targets (`write(targets=...)`): the labels each strategy needs to
  reach each target accuracy, mean ± std and median over seeds, and a paired
  test against `random` on the seeds where both reach it.
- Accuracy–budget curves per task (DeepAL+ Figure 2) as small multiples,
  one panel per strategy family (`jal.report.families`) with `random` and
  full training as reference lines; balanced accuracy too for `-imb`.
- The gain over `random` at each labeled count, as a heatmap and a table.
- Mean training, test and query seconds per round per strategy.
- With query-size or epoch axes: AUBC against each axis (DeepAL+ Figure 3)
  and a grid of accuracy–budget curves (Figure 4).
- Diagnostics, where the records hold them: the test ECE and how
  unevenly the queried labels spread over the classes; accuracy against
  the cumulative label cost when labels are priced (`config.label_costs`).
- Stopping criteria (`jal.stopping`), where `summary.json` holds them: for
  each, the round at which it fired, the labels used and saved against the
  whole budget, and the accuracy there against the full-budget accuracy.

The numbers come from `jal.report.stats` and the figures from
`jal.report.figures`; this module only lays them out.
"""

import io
import os
import re
import subprocess
from collections.abc import Mapping, Sequence

import numpy as np

import jal
from jal import checkpoint
from jal import errors
from jal import full_training
from jal import stopping
from jal.data import catalog
from jal.report import families
from jal.report import figures
from jal.report import runs
from jal.report import stats

REPORT = 'report.md'
BASELINE = families.BASELINE
FULL_ROW = 'full training (whole pool)'

Names = dict[runs.Task, str]
# full[task] = the full-training entries of the task's dataset and epochs.
Full = dict[runs.Task, list[dict]]


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


def imbalanced(task: runs.Task) -> bool:
  """Whether the task's dataset is an `-imb` one (balanced accuracy shown)."""
  return task[0].endswith(catalog.IMBALANCED_SUFFIX)


def _metrics(task: runs.Task) -> list[tuple[str, str]]:
  """The table's (Run attribute, column name) pairs of a task."""
  found = [('aubc', 'AUBC'), ('final_accuracy', 'F-acc')]
  if imbalanced(task):
    found += [('balanced_aubc', 'bal. AUBC'),
              ('final_balanced_accuracy', 'bal. F-acc')]
  return found


# The full-training entry's value standing for each final-value metric.
_FULL_VALUES = {'final_accuracy': 'test_accuracy',
                'final_balanced_accuracy': 'test_balanced_accuracy'}


def _full_row(full: Full, grouped: runs.Grouped,
              num_seeds: int) -> list[str] | None:
  """The full-training row: final values only; None with no entry."""
  if not any(full.get(task) for task in grouped):
    return None
  row = [FULL_ROW]
  for task in grouped:
    for metric, _ in _metrics(task):
      key = _FULL_VALUES.get(metric)
      values = [e[key] for e in full.get(task, ()) if key and key in e]
      row.append(_mean_std_cell(values, False, num_seeds) if values else '—')
  return row


def performance_table(grouped: runs.Grouped, names: Names,
                      full: Full | None = None) -> list[str]:
  """DeepAL+ Table 1: AUBC and F-acc per task (columns) and strategy (rows).

  `-imb` tasks add balanced accuracy's AUBC and final value. Cells over
  fewer seeds than the grid's most say how many (n=…); '—': no result (or,
  for balanced accuracy, records predating it). With `full`, a last row
  gives the full-training accuracy (its F-acc columns; it has no curve).
  """
  num_seeds = max(len(found) for per in grouped.values()
                  for found in per.values())
  values = {}
  for task, per in grouped.items():
    for metric, _ in _metrics(task):
      per_metric = {s: [getattr(r, metric) for r in found] for s, found in
                    per.items()}
      values[(task, metric)] = {s: v for s, v in per_metric.items()
                                if None not in v}
  bold = {key: stats.best({s: np.mean(v) for s, v in per.items()})
          if per else set() for key, per in values.items()}
  header = ['strategy'] + [f'{names[t]} {column}' for t in grouped
                           for _, column in _metrics(t)]
  rows = [[name] + [_mean_std_cell(values[key][name], name in bold[key],
                                   num_seeds)
                    if name in values[key] else '—' for key in values]
          for name in _strategies(grouped)]
  full_row = _full_row(full or {}, grouped, num_seeds)
  return _table(header, rows + ([full_row] if full_row else []))


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


def _labels_cell(counts: Sequence[int | None], budget: int) -> str:
  reached = [c for c in counts if c is not None]
  if not reached:
    return f'> {budget} (0/{len(counts)})'
  mean, std = stats.mean_std(reached)
  text = f'{mean:.0f} ± {std:.0f} (median {np.median(reached):.0f})'
  if len(reached) < len(counts):
    text += f', {len(reached)}/{len(counts)} reach it'
  return text


def _paired_labels(counts: Mapping[int, int | None],
                   baseline: Mapping[int, int | None]) -> str:
  both = {seed for seed in counts.keys() & baseline.keys()
          if counts[seed] is not None and baseline[seed] is not None}
  if len(both) < 2:
    return 'n/a'
  # Fewer labels is better: test the negated counts for "better".
  test = stats.paired_test({s: -counts[s] for s in both},
                           {s: -baseline[s] for s in both})
  return (f'{-test.mean_difference:+.0f}, p={test.p_better:.3f} '
          f'{test.verdict} (n={test.num_seeds})')


def labels_to_targets(grouped: runs.Grouped, names: Names,
                      targets: Sequence[float]) -> list[str]:
  """The labels needed to reach each target test accuracy."""
  out = ['', '## Labels to reach a target accuracy', '',
         'Per strategy: the labeled count at which a run first reaches the '
         'target test accuracy, mean ± std and median over the seeds that '
         'reach it within the budget ("> B": none does). Against '
         f'`{BASELINE}`: the mean difference in labels (strategy − '
         f'{BASELINE}) over the seeds where both reach it, the one-sided '
         'paired t-test p-value for "fewer labels", and the verdict at '
         f'α = {stats.ALPHA}.']
  for task, per in grouped.items():
    found = [r for rs in per.values() for r in rs]
    budget = max(r.num_labeled[-1] for r in found)
    out += ['', f'### {names[task]}', '']
    header = ['strategy']
    for target in targets:
      header += [f'labels to {target:.1%}', f'vs {BASELINE}']
    rows = []
    for name in _strategies(grouped):
      if name not in per:
        continue
      row = [name]
      for target in targets:
        counts = {r.cell.seed: stats.labels_to_reach(r.num_labeled,
                                                     r.accuracies, target)
                  for r in per[name]}
        row.append(_labels_cell(list(counts.values()), budget))
        if name == BASELINE or BASELINE not in per:
          row.append('—')
          continue
        baseline = {r.cell.seed: stats.labels_to_reach(
            r.num_labeled, r.accuracies, target) for r in per[BASELINE]}
        row.append(_paired_labels(counts, baseline))
      rows.append(row)
    out += _table(header, rows)
  return out


def _full_accuracy(entries: Sequence[dict], key: str) -> float | None:
  values = [e[key] for e in entries if key in e]
  return float(np.mean(values)) if values else None


def _curves(grouped: runs.Grouped, names: Names, full: Full,
            workdir: str) -> list[str]:
  out = [
      '', '## Accuracy–budget curves (DeepAL+ Figure 2)', '',
      'One panel per strategy family (at most '
      f'{families.MAX_LINES} strategies a panel; `jal.report.families` '
      'says which strategy goes where, unlisted ones under "other"). Each '
      f'curve is the mean over seeds with a ± std band, its mean AUBC in the '
      f'legend; `{BASELINE}` is the dashed grey line in every panel, and the '
      'model trained on the whole pool (when `experiments/full_training.py` '
      'has run) the dotted black one. Panels share both axes.', '']
  for task, per in grouped.items():
    entries = full.get(task, [])
    out += [_figure(
        figures.family_curves(per, names[task],
                              _full_accuracy(entries, 'test_accuracy')),
        workdir, f'curves_{_slug(names[task])}.png', names[task]), '']
    if imbalanced(task) and all(r.balanced_accuracies is not None
                                for found in per.values() for r in found):
      out += [_figure(
          figures.family_curves(
              per, f'{names[task]}: balanced accuracy',
              _full_accuracy(entries, 'test_balanced_accuracy'),
              balanced=True),
          workdir, f'curves_balanced_{_slug(names[task])}.png',
          f'{names[task]} balanced accuracy'), '']
  return out


def gains(per: Mapping[str, Sequence[runs.Run]]
          ) -> tuple[list[int], dict[str, np.ndarray]]:
  """A task's accuracy minus `random`'s at each labeled count.

  Returns:
    `random`'s labeled counts and gains[strategy] = [R+1] mean accuracy
    minus `random`'s mean (`stats.gain`), strategies by mean gain, best
    first. Strategies whose labeled counts differ from `random`'s are left
    out; ({}, []) without `random`.
  """
  if BASELINE not in per:
    return [], {}
  num_labeled = list(per[BASELINE][0].num_labeled)
  base = [r.accuracies for r in per[BASELINE]]
  found = {name: stats.gain([r.accuracies for r in runs_], base)
           for name, runs_ in per.items() if name != BASELINE and
           all(list(r.num_labeled) == num_labeled for r in runs_)}
  order = sorted(found, key=lambda name: (-np.mean(found[name]), name))
  return num_labeled, {name: found[name] for name in order}


def _gains(grouped: runs.Grouped, names: Names, workdir: str) -> list[str]:
  out = ['', f'## Gain over `{BASELINE}` at each labeled count', '']
  if not any(BASELINE in per for per in grouped.values()):
    return out + [f'The grid has no `{BASELINE}` runs; no gain.']
  out += [
      f'Mean test accuracy over seeds minus `{BASELINE}`\'s, in percentage '
      'points, at every labeled count; rows by mean gain, best first. A '
      'heatmap rather than gain curves: with many strategies the curves of '
      'one panel cross and hide each other, while the map shows where '
      '(which budget) and by how much each strategy gains or loses, and '
      'prints the number. Blue: above random, red: below.', '']
  for task, per in grouped.items():
    num_labeled, found = gains(per)
    if not found:
      continue
    out += [_figure(
        figures.gain_heatmap(found, num_labeled,
                             f'{names[task]}: accuracy − {BASELINE}'),
        workdir, f'gain_{_slug(names[task])}.png',
        f'{names[task]} gain over {BASELINE}'), '',
            '<details><summary>' + names[task] + ': the numbers '
            '(percentage points)</summary>', '']
    out += _table(['strategy', 'family'] + [str(n) for n in num_labeled] +
                  ['mean'],
                  [[name, families.family(name)] +
                   [f'{100 * g:+.2f}' for g in gain] +
                   [f'{100 * np.mean(gain):+.2f}']
                   for name, gain in found.items()])
    out += ['', '</details>', '']
  return out


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


def _largest_share(counts: Sequence[int]) -> float:
  total = sum(counts)
  return max(counts) / total if total else float('nan')


def _diagnostics(grouped: runs.Grouped, names: Names,
                 workdir: str) -> list[str]:
  """ECE and queried-class balance per strategy; cost curves if priced."""
  if not any(r.eces is not None for per in grouped.values()
             for found in per.values() for r in found):
    return []
  out = ['', '## Calibration and queried classes', '',
         'Test ECE (15 equal-width confidence bins) of the last round\'s '
         'model and its mean over rounds, mean ± std over seeds; and the '
         'largest class\'s share of all labels the strategy queried, mean '
         'over seeds (1/C when it queried every class alike; — : records '
         'predating these fields).', '']
  rows = []
  for name in _strategies(grouped):
    row = [name]
    for per in grouped.values():
      found = [r for r in per.get(name, ()) if r.eces is not None]
      counted = [r for r in per.get(name, ()) if r.queried_counts]
      shares = [_largest_share(r.queried_counts) for r in counted]
      row += [_mean_std_cell([r.eces[-1] for r in found], False, len(found))
              if found else '—',
              _mean_std_cell([np.mean(r.eces) for r in found], False,
                             len(found)) if found else '—',
              f'{np.mean(shares):.3f}' if counted else '—']
    rows.append(row)
  header = ['strategy'] + [f'{names[t]} {k}' for t in grouped
                           for k in ('final ECE', 'mean ECE',
                                     'largest class share')]
  out += _table(header, rows)
  for task, per in grouped.items():
    priced = [r for found in per.values() for r in found]
    if not all(r.label_costs is not None for r in priced) or all(
        tuple(r.label_costs) == tuple(map(float, r.num_labeled))
        for r in priced):
      continue
    out += ['', f'Accuracy against the cumulative label cost, {names[task]} '
            '(mean over seeds of each round\'s cost and accuracy):', '',
            _figure(figures.cost_curves(per, f'{names[task]}: accuracy '
                                        'against label cost'),
                    workdir, f'cost_{_slug(names[task])}.png',
                    f'{names[task]} accuracy against cost'), '']
  return out


def _stopping(grouped: runs.Grouped, names: Names) -> list[str]:
  """Each stopping criterion scored against the full-budget run."""
  if not any(r.stopping for per in grouped.values()
             for found in per.values() for r in found):
    return []
  out = ['', '## Stopping criteria', '',
         'Each run went on to its whole budget; `jal.stopping` says at which '
         'round each criterion would have stopped it (the model of that '
         'round kept). Means over the seeds where it fired (fired: in how '
         'many): the round, the labels used then, the labels saved against '
         'the whole budget, the test accuracy there, and the accuracy given '
         'up against the full-budget run (positive: lost). Target accuracy '
         'and plateau read a validation set (`config.validation_size`), '
         'stabilizing predictions a stop set of unlabeled pool points.', '']
  for task, per in grouped.items():
    rows = []
    for name in _strategies(grouped):
      found = [r for r in per.get(name, ()) if r.stopping]
      if not found:
        continue
      for criterion in stopping.CRITERIA:
        scores = [stopping.score(
            [dict(round=i, num_labeled=n, test_accuracy=a)
             for i, (n, a) in enumerate(zip(r.num_labeled, r.accuracies))],
            {criterion: r.stopping.get(criterion)})[criterion]
                  for r in found]
        fired = [s for s in scores if s is not None]
        row = [name, criterion, f'{len(fired)}/{len(found)}']
        if fired:
          row += [f'{np.mean([s[k] for s in fired]):{spec}}' for k, spec in (
              ('round', '.1f'), ('num_labeled', '.0f'),
              ('labels_saved', '.0f'), ('accuracy', '.4f'),
              ('final_accuracy', '.4f'), ('accuracy_lost', '+.4f'))]
        else:
          row += ['—'] * 6
        rows.append(row)
    out += ['', f'### {names[task]}', ''] + _table(
        ['strategy', 'criterion', 'fired', 'round', 'labels used',
         'labels saved', 'accuracy there', 'full-budget accuracy',
         'given up'], rows)
  return out


def jal_commit() -> str:
  """`git rev-parse --short HEAD` of the checkout jal is imported from.

  'unknown' when jal is not in a git checkout or git cannot run.
  """
  directory = os.path.dirname(os.path.abspath(jal.__file__))
  try:
    result = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                            cwd=directory, capture_output=True, text=True,
                            timeout=10, check=False)
  except (OSError, subprocess.SubprocessError):
    return 'unknown'
  commit = result.stdout.strip()
  return commit if result.returncode == 0 and commit else 'unknown'


def _describe(configs: Sequence[Mapping], show) -> str:
  """`show(config)` if every config gives the same text, else 'varies: …'.

  A config lacking a field `show` reads counts as not recorded.
  """
  texts = []
  for config in configs:
    try:
      texts.append(show(config))
    except (KeyError, TypeError, ValueError):
      texts.append(None)
  distinct = sorted({t for t in texts if t is not None})
  if not distinct:
    return 'not recorded'
  if None in texts:
    distinct.append('not recorded')
  return distinct[0] if len(distinct) == 1 else 'varies: ' + '; '.join(
      distinct)


def _pool(config: Mapping) -> str:
  size = config['pool_size']
  return 'whole training split' if size is None else (
      f'first {size} training images')


def _optimizer(config: Mapping) -> str:
  momentum = f'momentum {config["momentum"]:g}'
  if config['optimizer'] != 'sgd':
    momentum += ' (unused)'
  return (f'{config["optimizer"]}, lr {config["learning_rate"]:g}, '
          f'{momentum}, weight decay {config["weight_decay"]:g}')


def _initial(config: Mapping) -> str:
  per_class = config.get('initial_per_class') or 0
  return str(config['initial_size']) + (
      f' ({per_class} per class)' if per_class else ' (uniform)')


def _posterior(config: Mapping) -> str:
  if config['posterior'] == 'ensemble':
    return f'ensemble, M = {config["ensemble_size"]} members'
  return f'{config["posterior"]}, K = {config["posterior_samples"]} samples'


# (field, how a config shows it), in the order the block lists them.
_PROTOCOL = (
    ('model', lambda c: f'{c["model"]}, dropout rate {c["dropout_rate"]:g}'),
    ('optimizer', _optimizer),
    ('epochs per round', lambda c: str(c['num_epochs'])),
    ('batch size', lambda c: str(c['batch_size'])),
    ('model per round', lambda c: 'warm start from the last round'
     if c['warm_start'] else 'fresh initialization'),
    ('augmentation', lambda c: 'random crop (padding 4) and horizontal flip'
     if c['augment'] else 'none'),
    ('initial labeled set', _initial),
    ('query size', lambda c: str(c['query_size'])),
    ('rounds', lambda c: str(c['num_rounds'])),
    ('final budget', lambda c: str(c['initial_size'] +
                                   c['num_rounds'] * c['query_size'])),
    ('posterior (strategies needing K predictions)', _posterior),
    ('pool', _pool),
)


def protocol(found: Sequence[runs.Run], full: Mapping[str, list[dict]]
             ) -> list[str]:
  """The protocol block: what the cells ran with, from their configs.

  Args:
    found: the finished runs; their `config` (the stored `config.json`).
    full: full[dataset] = full-training entries, which give the pool's size
      after subsampling.
  """
  configs = [r.config for r in found if r.config is not None]
  datasets = sorted({r.cell.dataset for r in found})
  rows = [['datasets', ', '.join(datasets)]]
  rows += [[field, _describe(configs, show)] for field, show in _PROTOCOL]
  sizes = {d: sorted({e['pool_size'] for e in full.get(d, [])
                      if 'pool_size' in e}) for d in datasets}
  if any(sizes.values()):
    rows.append(['pool size (examples)', ', '.join(
        f'{d} {"/".join(map(str, sizes[d]))}' for d in datasets
        if sizes[d])])
  if any(d.endswith(catalog.IMBALANCED_SUFFIX) for d in datasets):
    rows.append(['-imb datasets', 'pool subsampled to class ratios 1:2:…:C;'
                 ' the test set is not subsampled'])
  strategies = sorted({r.cell.strategy for r in found})
  rows += [['seeds', ', '.join(map(str, sorted({r.cell.seed
                                                 for r in found})))],
           ['strategies', f'{len(strategies)}: ' + ', '.join(strategies)],
           ['jal commit (of this report)', jal_commit()]]
  return ['', '## Protocol', '',
          f'Read from the {len(configs)} finished cells\' `config.json`; '
          '"varies" lists the values of a field that differs between cells. '
          'The commit is the jal checkout that wrote this report.', ''
          ] + _table(['field', 'value'], rows)


def _full_by_task(workdir: str, grouped: runs.Grouped
                  ) -> tuple[dict[str, list[dict]], Full]:
  """The full-training entries by dataset, and by task (same epochs)."""
  by_dataset = {d: full_training.read(workdir, d)
                for d in sorted({t[0] for t in grouped})}
  by_task = {task: [e for e in by_dataset[task[0]]
                    if e.get('epochs') == task[2]] for task in grouped}
  return by_dataset, by_task


def write(workdir: str, margin: float = stats.MARGIN,
          targets: Sequence[float] = ()) -> str:
  """Writes `workdir/report.md` and its figures; returns the report's path.

  Args:
    workdir: the study directory (`experiments/benchmark.py --workdir`).
    margin: the win–tie–loss margin, in accuracy.
    targets: test accuracies in (0, 1]; the report then gives the labels
      each strategy needs to reach each.

  Raises:
    NoResultsError: `workdir` is missing or holds no finished cell.
    CorruptResultsError: a cell's files cannot be read (the message names
      the file).
  """
  for target in targets:
    if not 0 < target <= 1:
      raise errors.ConfigError(
          f'Target accuracy {target!r} is not in (0, 1]; give accuracies as '
          'fractions, e.g. 0.9,0.95.')
  found, unfinished = runs.load_runs(workdir)
  if not found:
    raise errors.NoResultsError(
        f'No finished experiment (summary.json) under {workdir}. Run '
        'experiments/benchmark.py with --workdir pointing there first.')
  grouped = runs.group(found)
  names = runs.task_names(grouped)
  seeds = sorted({r.cell.seed for r in found})
  full_by_dataset, full = _full_by_task(workdir, grouped)
  out = [f'# Comparative study: {workdir}', '',
         f'{len(found)} finished runs: {len(grouped)} tasks, '
         f'{len(_strategies(grouped))} strategies, seeds {seeds}.']
  if unfinished:
    out.append(f'{len(unfinished)} unfinished runs are left out: '
               + ', '.join(unfinished[:10])
               + (' …' if len(unfinished) > 10 else '') + '.')
  out += protocol(found, full_by_dataset)
  out += ['', '## AUBC and final accuracy (DeepAL+ Table 1)', '',
          'Mean ± sample std over seeds; the best mean of each column in '
          'bold. For `-imb` datasets, balanced accuracy (the mean of the '
          'per-class recalls on the test set) too.' + (
              f' "{FULL_ROW}": the same protocol trained on every pool '
              'example (`experiments/full_training.py`), in the F-acc '
              'columns.' if any(full.values()) else ''), '']
  out += performance_table(grouped, names, full)
  out += _win_tie_loss(grouped, margin)
  out += _against_baseline(grouped, names, len(seeds))
  if targets:
    out += labels_to_targets(grouped, names, targets)
  out += _curves(grouped, names, full, workdir)
  out += _gains(grouped, names, workdir)
  out += _timing(grouped, names)
  out += _ablations(grouped, workdir)
  out += _diagnostics(grouped, names, workdir)
  out += _stopping(grouped, names)
  path = os.path.join(workdir, REPORT)
  checkpoint.atomic_write(path, ('\n'.join(out) + '\n').encode())
  return path
