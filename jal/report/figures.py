"""The figures of a study report, drawn with matplotlib's object-oriented API.

Each function returns a `matplotlib.figure.Figure`, which `fig.savefig`
writes as PNG through a canvas chosen by the file type. Nothing here uses
pyplot or selects a backend, so importing `jal.report` and writing a report
leave the process's pyplot backend (e.g. a notebook's inline one) alone.

- `curves`: accuracy–budget curves, mean ± std band over seeds, AUBC in the
  legend (DeepAL+ Figure 2).
- `family_curves`: the same as small multiples, one panel per strategy
  family (`families.panels`), each with `random` as a dashed grey
  reference and the full-training accuracy as a dotted line when known.
- `gain_heatmap`: accuracy minus `random`'s, strategies × labeled counts.
- `ablation`: AUBC against query size and against training epochs (DeepAL+
  Figure 3).
- `ablation_curves`: a grid of accuracy–budget curves, one panel per
  (epochs, query size) setting (DeepAL+ Figure 4).
- `cost_curves`: accuracy against the cumulative label cost (a noisy or
  priced oracle, `jal.oracle`).
"""

import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence

import matplotlib
from matplotlib import axes as mpl_axes
from matplotlib import figure as mpl_figure

import numpy as np

from jal.report import families
from jal.report import runs
from jal.report import stats

ByStrategy = Mapping[str, Sequence[runs.Run]]
# The ablation axes by their index in a task: (label, short name).
_AXES = {1: ('query size', 'b'), 2: ('training epochs', 'e')}
_STYLES = ('-', '--', ':', '-.')


def _colors(names: Iterable[str]) -> dict[str, tuple]:
  names = sorted(names)
  cmap = matplotlib.colormaps['tab20' if len(names) > 10 else 'tab10']
  return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _draw_curves(ax: mpl_axes.Axes, by_strategy: ByStrategy) -> None:
  colors = _colors(by_strategy)
  for name, found in sorted(by_strategy.items()):
    mean, std = stats.mean_std([r.accuracies for r in found])
    aubc_mean, aubc_std = stats.mean_std([r.aubc for r in found])
    num_labeled = found[0].num_labeled
    ax.plot(num_labeled, mean, color=colors[name], lw=1.4,
            label=f'{name} ({aubc_mean:.4f} ± {aubc_std:.4f})')
    ax.fill_between(num_labeled, mean - std, mean + std, color=colors[name],
                    alpha=0.15)
  ax.set_xlabel('labeled examples')
  ax.set_ylabel('test accuracy')
  ax.grid(alpha=0.3)


def curves(by_strategy: ByStrategy, title: str) -> mpl_figure.Figure:
  """One task's accuracy–budget curves, one per strategy."""
  fig = mpl_figure.Figure(figsize=(8, 5.5), dpi=110, layout='tight')
  ax = fig.subplots()
  _draw_curves(ax, by_strategy)
  ax.set_title(title)
  ax.legend(fontsize=7, ncol=2 if len(by_strategy) > 10 else 1,
            title='strategy (AUBC mean ± std)', title_fontsize=7)
  return fig


# The reference lines of `family_curves`, by label.
RANDOM_STYLE = dict(color='0.45', ls='--', lw=1.3)
FULL_LABEL = 'full training'
FULL_STYLE = dict(color='black', ls=':', lw=1.2)


def _curve(found: Sequence[runs.Run], balanced: bool):
  """[R+1] labeled counts, mean and std over seeds, and the mean AUBC."""
  values = [r.balanced_accuracies if balanced else r.accuracies
            for r in found]
  mean, std = stats.mean_std(values)
  aubc = np.mean([r.balanced_aubc if balanced else r.aubc for r in found])
  return np.asarray(found[0].num_labeled), mean, std, aubc


def family_curves(by_strategy: ByStrategy, title: str,
                  full_accuracy: float | None = None,
                  balanced: bool = False) -> mpl_figure.Figure:
  """A task's accuracy–budget curves, one panel per strategy family.

  Args:
    by_strategy: the task's runs by strategy.
    title: the figure's title.
    full_accuracy: the full-training test accuracy (mean over seeds), drawn
      as a dotted horizontal line in every panel; None: not drawn.
    balanced: draw balanced accuracy (every run must have recorded it).

  Returns:
    Panels in `families.panels` order, sharing both axes. Each draws its
    strategies (mean over seeds, ± std band, AUBC in the legend), `random`
    dashed grey with its band, and the full-training line.
  """
  layout = families.panels(by_strategy)
  if not layout:  # only the baseline: one panel with it alone
    layout = [(families.BASELINE, [])]
  columns = min(3, len(layout))
  rows = math.ceil(len(layout) / columns)
  fig = mpl_figure.Figure(figsize=(4.4 * columns, 3.3 * rows + 0.5),
                          dpi=110, layout='constrained')
  panels = fig.subplots(rows, columns, squeeze=False, sharex=True,
                        sharey=True)
  cmap = matplotlib.colormaps['tab10']
  baseline = by_strategy.get(families.BASELINE)
  for ax, (panel_title, names) in zip(panels.flat, layout):
    if baseline:
      n, mean, std, aubc = _curve(baseline, balanced)
      ax.plot(n, mean, label=f'{families.BASELINE} ({aubc:.3f})',
              zorder=3, **RANDOM_STYLE)
      ax.fill_between(n, mean - std, mean + std, color='0.6', alpha=0.15)
    if full_accuracy is not None:
      ax.axhline(full_accuracy, label=f'{FULL_LABEL} ({full_accuracy:.3f})',
                 **FULL_STYLE)
    for i, name in enumerate(names):
      n, mean, std, aubc = _curve(by_strategy[name], balanced)
      ax.plot(n, mean, color=cmap(i), lw=1.5, label=f'{name} ({aubc:.3f})')
      ax.fill_between(n, mean - std, mean + std, color=cmap(i), alpha=0.15)
    ax.set_title(panel_title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc='lower right', title='strategy (AUBC)',
              title_fontsize=6.5)
    ax.tick_params(labelsize=8)
  for ax in panels.flat[len(layout):]:
    ax.set_axis_off()
  fig.suptitle(title)
  fig.supxlabel('labeled examples', fontsize=9)
  fig.supylabel('test balanced accuracy' if balanced else 'test accuracy',
                fontsize=9)
  return fig


def gain_heatmap(gains: Mapping[str, Sequence[float]],
                 num_labeled: Sequence[int],
                 title: str) -> mpl_figure.Figure:
  """Accuracy minus the baseline's: strategies (rows) × labeled counts.

  Args:
    gains: gains[strategy] = [R+1] accuracy differences (fractions), rows
      drawn in the mapping's order.
    num_labeled: [R+1] the labeled counts (columns).
    title: the figure's title.

  Returns:
    A diverging map centred on 0 (blue: above the baseline, red: below),
    each cell annotated in percentage points.
  """
  names = list(gains)
  values = 100 * np.asarray([gains[name] for name in names], np.float64)
  limit = max(float(np.max(np.abs(values))), 0.5)
  fig = mpl_figure.Figure(
      figsize=(2.2 + 0.62 * len(num_labeled), 1.1 + 0.3 * len(names)),
      dpi=110, layout='constrained')
  ax = fig.subplots()
  image = ax.imshow(values, cmap='RdBu', vmin=-limit, vmax=limit,
                    aspect='auto')
  for (i, j), value in np.ndenumerate(values):
    ax.text(j, i, f'{value:+.1f}', ha='center', va='center', fontsize=6.5,
            color='white' if abs(value) > 0.6 * limit else 'black')
  ax.set_xticks(range(len(num_labeled)), [str(n) for n in num_labeled],
                fontsize=7, rotation=45 if len(num_labeled) > 8 else 0)
  ax.set_yticks(range(len(names)), names, fontsize=7.5)
  ax.set_xlabel('labeled examples', fontsize=8)
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, shrink=0.8).set_label(
      'accuracy − random (percentage points)', fontsize=7)
  return fig


def _tasks(dataset: str, grouped: runs.Grouped) -> list[runs.Task]:
  return [task for task in grouped if task[0] == dataset]


def ablation(dataset: str, grouped: runs.Grouped) -> mpl_figure.Figure:
  """A dataset's AUBC against each axis that varies, mean ± std over seeds.

  Args:
    dataset: the dataset whose tasks are drawn.
    grouped: grouped[task][strategy] = runs, as `runs.group`.

  Returns:
    One panel per varying axis, with one line per strategy and value of the
    other axis.
  """
  tasks = _tasks(dataset, grouped)
  varying = [p for p in _AXES if len({t[p] for t in tasks}) > 1]
  fig = mpl_figure.Figure(figsize=(6 * len(varying), 4.5), dpi=110,
                          layout='tight')
  strategies = sorted({s for t in tasks for s in grouped[t]})
  colors = _colors(strategies)
  panels = fig.subplots(1, len(varying), squeeze=False)[0]
  for ax, position in zip(panels, varying):
    label = _AXES[position][0]
    other = 3 - position
    fixed_values = sorted({t[other] for t in tasks})
    for name in strategies:
      for style, fixed in zip(itertools.cycle(_STYLES), fixed_values):
        line = sorted((t for t in tasks if t[other] == fixed and
                       name in grouped[t]), key=operator.itemgetter(position))
        if not line:
          continue
        aubc = [stats.mean_std([r.aubc for r in grouped[t][name]])
                for t in line]
        ax.errorbar([t[position] for t in line], [m for m, _ in aubc],
                    yerr=[s for _, s in aubc], color=colors[name], capsize=3,
                    ls=style, marker='o', ms=3,
                    label=name + (f' {_AXES[other][1]}={fixed}'
                                  if len(fixed_values) > 1 else ''))
    ax.set_xlabel(label)
    ax.set_ylabel('AUBC')
    ax.set_title(f'{dataset}: AUBC against {label}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
  return fig


def ablation_curves(dataset: str,
                    grouped: runs.Grouped) -> mpl_figure.Figure:
  """A dataset's curves, epochs down and query sizes across (Figure 4)."""
  tasks = _tasks(dataset, grouped)
  sizes = sorted({t[1] for t in tasks})
  epochs = sorted({t[2] for t in tasks})
  fig = mpl_figure.Figure(figsize=(3.6 * len(sizes), 2.8 * len(epochs)),
                          dpi=100, layout='tight')
  panels = fig.subplots(len(epochs), len(sizes), squeeze=False)
  for i, e in enumerate(epochs):
    for j, b in enumerate(sizes):
      ax = panels[i][j]
      if (dataset, b, e) in grouped:
        _draw_curves(ax, grouped[(dataset, b, e)])
        ax.set_title(f'b={b}, e={e}')
        ax.legend(fontsize=5)
      else:
        ax.set_axis_off()
  return fig


def cost_curves(by_strategy: ByStrategy, title: str) -> mpl_figure.Figure:
  """A task's test accuracy against the cumulative label cost.

  Each strategy's curve is the mean over seeds of (cost, accuracy) at each
  round: the cost of the labeled set that round's model trained on. Every
  run must have recorded its costs (`Run.label_costs`).
  """
  fig = mpl_figure.Figure(figsize=(8, 5.5), dpi=110, layout='tight')
  ax = fig.subplots()
  colors = _colors(by_strategy)
  for name, found in sorted(by_strategy.items()):
    cost = np.mean([r.label_costs for r in found], axis=0)
    accuracy = np.mean([r.accuracies for r in found], axis=0)
    style = (RANDOM_STYLE if name == families.BASELINE else
             dict(color=colors[name], lw=1.4))
    ax.plot(cost, accuracy, marker='.', label=name, **style)
  ax.set_xlabel('cumulative label cost')
  ax.set_ylabel('test accuracy')
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2 if len(by_strategy) > 10 else 1)
  return fig
