"""A comparative study: a grid of experiments, run and resumed cell by cell.

A benchmark config (`configs/benchmark_*.py`) has:

- `base`: an experiment config (`jal.config.default()` with changes);
- `datasets`: dataset names;
- `strategies`: strategy names (a list or a comma-separated string), or
  'all' for every strategy registered when the grid runs;
- `seeds`: the trials;
- optional ablation axes `query_sizes` and `epochs` (lists; empty or absent
  means the base value only) and `budget` (final labeled-set size: when set,
  each cell's `num_rounds` is `(budget - initial_size) // query_size`, so that
  cells with different query sizes cover the same budget);
- optional `vmap_trials` (default True): run the seeds of a cell group as one
  vmapped program (`jal.trials`) where the strategy allows it, and
  `vmap_trials_except_needs` (default none): run strategies needing any of
  these predictions seed by seed anyway (on a small CPU, MC-dropout passes
  vmapped over seeds measured slower than one seed at a time).

A cell is one (dataset, strategy, query size, epochs, seed) experiment with its
own work directory `WORKDIR/<dataset>/<strategy>[/b<query size>][/e<epochs>]
/seed<seed>`, written by `jal.loop.run` or `jal.trials.run`. Running the grid
again skips cells holding `summary.json` and resumes the others from their
checkpoints, so nothing finished is recomputed.
"""

import dataclasses
import itertools
import json
import logging
import os
import time
from collections.abc import Callable

import ml_collections

from jal import acquisition
from jal import checkpoint
from jal import config as config_lib
from jal import errors
from jal import loop
from jal import trials

GRID = 'grid.json'


@dataclasses.dataclass(frozen=True)
class Cell:
  """One experiment of the grid."""
  dataset: str
  strategy: str
  seed: int
  query_size: int | None = None  # None: the base config's
  num_epochs: int | None = None  # None: the base config's

  @property
  def group(self) -> tuple:
    """The cell without its seed: the cells whose seeds may share a program."""
    return (self.dataset, self.strategy, self.query_size, self.num_epochs)

  @property
  def path(self) -> str:
    parts = [self.dataset, self.strategy]
    if self.query_size is not None:
      parts.append(f'b{self.query_size}')
    if self.num_epochs is not None:
      parts.append(f'e{self.num_epochs}')
    parts.append(f'seed{self.seed}')
    return os.path.join(*parts)


def strategies(bench: ml_collections.ConfigDict) -> list[str]:
  """The grid's strategy names.

  `bench.strategies` is a list of names, a comma-separated string of names
  (handy on the command line: `--config.strategies=random,entropy`), or
  'all': every strategy registered when the grid runs.
  """
  names = bench.strategies
  if isinstance(names, str):
    if names == 'all':
      return acquisition.names()
    names = [n.strip() for n in names.split(',') if n.strip()]
  for name in names:
    acquisition.get(name)
  return list(names)


def _axis(bench, field):
  values = bench.get(field, None)
  return list(values) if values else [None]


def expand(bench: ml_collections.ConfigDict) -> list[Cell]:
  """The cells of a benchmark config, seeds innermost."""
  if not bench.datasets or not bench.seeds:
    raise errors.ConfigError('A benchmark needs at least one dataset and one '
                             f'seed; got datasets={list(bench.datasets)}, '
                             f'seeds={list(bench.seeds)}.')
  return [Cell(d, s, int(seed), q, e) for d, s, q, e, seed in
          itertools.product(bench.datasets, strategies(bench),
                            _axis(bench, 'query_sizes'),
                            _axis(bench, 'epochs'), bench.seeds)]


def uses_vmapped_trials(bench: ml_collections.ConfigDict, cell: Cell) -> bool:
  """Whether `cell`'s seeds run as one vmapped program (see `jal.trials`)."""
  if not bench.get('vmap_trials', True):
    return False
  needs = acquisition.get(cell.strategy).needs
  if set(needs) & set(bench.get('vmap_trials_except_needs', None) or ()):
    return False
  config = ml_collections.ConfigDict(bench.base.to_dict())
  config.strategy = cell.strategy
  return trials.fast_under_vmap(config)


def cell_config(bench: ml_collections.ConfigDict,
                cell: Cell) -> ml_collections.ConfigDict:
  """The experiment config of `cell`: the base with the cell's axes set.

  Cells whose seeds run vmapped train with `train_loop='jit'` (the loop the
  vmapped program uses), so that resuming one with `loop.run` continues it
  exactly.
  """
  config = ml_collections.ConfigDict(bench.base.to_dict())
  config.strategy = cell.strategy
  config.dataset = cell.dataset
  config.seed = cell.seed
  if cell.query_size is not None:
    config.query_size = cell.query_size
  if cell.num_epochs is not None:
    config.num_epochs = cell.num_epochs
  if bench.get('budget', None):
    config.num_rounds = (bench.budget - config.initial_size) // config.query_size
  if uses_vmapped_trials(bench, cell):
    config.train_loop = 'jit'
  config_lib.validate(config)
  return config


def status(workdir: str) -> str:
  """'done' (summary written), 'partial' (some rounds) or 'todo'."""
  if os.path.exists(os.path.join(workdir, loop.SUMMARY)):
    return 'done'
  if os.path.exists(os.path.join(workdir, loop.CHECKPOINT)):
    return 'partial'
  return 'todo'


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
  """Counts finished cells and estimates the time left from this session."""

  def __init__(self, total: int, done: int, log: Callable[[str], None]):
    self.total = total
    self.done = done
    self.skipped = done
    self.log = log
    self.start = time.perf_counter()

  def finished(self, cells: list[Cell]) -> None:
    self.done += len(cells)
    computed = self.done - self.skipped
    elapsed = time.perf_counter() - self.start
    eta = elapsed / computed * (self.total - self.done)
    names = ', '.join(cell.path for cell in cells)
    self.log(f'[{self.done}/{self.total} cells] {names}  '
             f'elapsed {_format_seconds(elapsed)}  ETA {_format_seconds(eta)}')


def run_grid(bench: ml_collections.ConfigDict, workdir: str,
             log: Callable[[str], None] = print) -> list[Cell]:
  """Runs every unfinished cell of `bench` under `workdir`.

  Cells holding `summary.json` are skipped; the others start or resume from
  their checkpoints. The seeds of one (dataset, strategy, query size, epochs)
  group run as one vmapped program where `uses_vmapped_trials`, else one by
  one with `loop.run`.

  Args:
    bench: a benchmark config (see the module docstring).
    workdir: the grid's directory.
    log: receives one progress line per finished cell group.

  Returns:
    The grid's cells.
  """
  cells = expand(bench)
  configs = {cell: cell_config(bench, cell) for cell in cells}
  os.makedirs(workdir, exist_ok=True)
  checkpoint.atomic_write(os.path.join(workdir, GRID), json.dumps(
      dict(cells=[dataclasses.asdict(c) | dict(path=c.path) for c in cells]),
      indent=1).encode())
  todo = [c for c in cells
          if status(os.path.join(workdir, c.path)) != 'done']
  progress = Progress(len(cells), len(cells) - len(todo), log)
  log(f'{len(cells)} cells, {len(cells) - len(todo)} already done, '
      f'{len(todo)} to run in {workdir}')
  groups: dict[tuple, list[Cell]] = {}
  for cell in todo:
    groups.setdefault(cell.group, []).append(cell)
  for group in groups.values():
    config = configs[group[0]]
    dirs = [os.path.join(workdir, c.path) for c in group]
    if len(group) > 1 and uses_vmapped_trials(bench, group[0]):
      trials.run(config, [c.seed for c in group], dirs)
      progress.finished(group)
    else:
      for cell, cell_dir in zip(group, dirs):
        loop.run(configs[cell], cell_dir)
        progress.finished([cell])
  logging.info('Grid %s finished.', workdir)
  return cells
