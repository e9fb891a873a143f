"""A comparative study: a grid of experiments, run and resumed cell by cell.

A benchmark config (`configs/benchmark_*.py`) has:

- `base`: an experiment config (`jal.config.default()` with changes);
- `datasets`: dataset names;
- `strategies`: strategy names, or 'all' for every strategy registered when
  the grid runs;
- `seeds`: the trials (integers >= 0);
- optional ablation axes `query_sizes` and `epochs` (positive integers; empty
  or absent means the base value only) and `budget` (final labeled-set size:
  when set, each cell's `num_rounds` is `(budget - initial_size) //
  query_size`, so that cells with different query sizes cover the same
  budget; it must leave every cell at least one query; 0 or absent: the
  base's `num_rounds`);
- optional `vmap_trials` (default True): run the seeds of a cell group as one
  vmapped program (`jal.trials`) where the strategy allows it, and
  `vmap_trials_except_needs` (default none): run strategies needing any of
  these predictions seed by seed anyway (on a small CPU, MC-dropout passes
  vmapped over seeds measured slower than one seed at a time).

The list fields (`datasets`, `strategies`, `seeds`, `query_sizes`, `epochs`,
`vmap_trials_except_needs`) take a list, a tuple, a comma-separated string or
a single value (a list of one: `seeds = 3` is the one seed 3). The configs in
`configs/` write them as tuples or strings, which the command line can set:
`--config.seeds=0,1,2 --config.datasets=digits,mnist`. `validate` checks every
field before any cell runs: types, empty lists, repeated values, names and
fields nobody registered.

A cell is one (dataset, strategy, query size, epochs, seed) experiment with its
own work directory `WORKDIR/<dataset>/<strategy>[/b<query size>][/e<epochs>]
/seed<seed>`, written by `jal.loop.run` or `jal.trials.run`. Running the grid
again skips cells holding `summary.json` and resumes the others from their
checkpoints, so nothing finished is recomputed; a cell whose stored config
differs from the one the grid now asks for, or a `grid.json` listing cells
the grid lacks, stops the grid before any work (`check_reuse`).
"""

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable

import ml_collections
import numpy as np

from jal import acquisition
from jal import checkpoint
from jal import config as config_lib
from jal import data
from jal import errors
from jal import loop
from jal import trials
from jal import workdir as workdir_lib
from jal.data import catalog
from jal.data import tfds_source

GRID = 'grid.json'
FIELDS = ('base', 'datasets', 'strategies', 'seeds', 'query_sizes', 'epochs',
          'budget', 'vmap_trials', 'vmap_trials_except_needs')


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


def _items(bench: ml_collections.ConfigDict, field: str) -> list:
  """A list field's items: from a list, tuple, comma-separated string or one."""
  value = bench.get(field, None)
  if value is None:
    return []
  items = []
  for part in value if isinstance(value, (list, tuple)) else [value]:
    if isinstance(part, str):
      items += [p.strip() for p in part.split(',') if p.strip()]
    else:
      items.append(part)
  return items


def _checked_list(field: str, items: list, noun: str | None) -> list:
  """`items`, refused if empty (when `noun` names what it needs) or repeated."""
  if not items and noun:
    raise errors.ConfigError(
        f'config.{field} is empty; a benchmark needs at least one {noun}.')
  for i, item in enumerate(items):
    if item in items[:i]:
      raise errors.ConfigError(
          f'config.{field} lists {item!r} twice ({items}); drop the '
          'repeat.')
  return items


def _names(bench, field: str, noun: str | None = None) -> list[str]:
  items = _items(bench, field)
  for item in items:
    if not isinstance(item, str):
      raise errors.ConfigError(
          f'config.{field} must hold names (strings), got {item!r}; write '
          f'them as a tuple or a comma-separated string.')
  return _checked_list(field, items, noun)


def _ints(bench, field: str, minimum: int, noun: str | None = None
          ) -> list[int]:
  values = []
  for item in _items(bench, field):
    if isinstance(item, str) and re.fullmatch(r'[+-]?\d+', item):
      item = int(item)
    if (not isinstance(item, (int, np.integer)) or isinstance(item, bool)
        or item < minimum):
      raise errors.ConfigError(
          f'config.{field} must hold integers >= {minimum}, got {item!r} '
          f'(e.g. --config.{field}={minimum},{minimum + 1}).')
    values.append(int(item))
  return _checked_list(field, values, noun)


def datasets(bench: ml_collections.ConfigDict) -> list[str]:
  """The grid's dataset names; refused if not a dataset jal can load."""
  names = _names(bench, 'datasets', 'dataset')
  known = data.available()
  for name in names:
    base = name.removesuffix(catalog.IMBALANCED_SUFFIX)
    if base not in known and not tfds_source.installed():
      raise errors.UnknownNameError(
          f'config.datasets: unknown dataset {name!r}'
          f'{config_lib.did_you_mean(base, known)}. Valid names: {", ".join(known)}, '
          f'each also with the suffix {catalog.IMBALANCED_SUFFIX!r}.')
  return names


def strategies(bench: ml_collections.ConfigDict) -> list[str]:
  """The grid's strategy names.

  `bench.strategies` is a list of names, a comma-separated string of names
  (handy on the command line: `--config.strategies=random,entropy`), or
  'all': every strategy registered when the grid runs.
  """
  names = _names(bench, 'strategies', 'strategy')
  if names == ['all']:
    return acquisition.names()
  if 'all' in names:
    raise errors.ConfigError(
        f"config.strategies: 'all' stands alone, got {names}.")
  for name in names:
    try:
      acquisition.get(name)
    except errors.UnknownNameError as e:
      raise errors.UnknownNameError(f'config.strategies: {e}') from None
  return names


def seeds(bench: ml_collections.ConfigDict) -> list[int]:
  """The grid's seeds."""
  return _ints(bench, 'seeds', 0, 'seed')


def _axis(bench, field: str) -> list[int | None]:
  """An ablation axis' values; [None] (the base's value) when empty."""
  return _ints(bench, field, 1) or [None]


@contextlib.contextmanager
def _base_fields():
  """Names the experiment fields in ConfigErrors `config.base.<field>`."""
  try:
    yield
  except errors.ConfigError as e:
    raise type(e)(re.sub(r'(?<![\w.])config\.', 'config.base.', str(e))
                  ) from None


def _check_base(bench: ml_collections.ConfigDict) -> None:
  base = bench.get('base', None)
  if not isinstance(base, ml_collections.ConfigDict):
    raise errors.ConfigError(
        'config.base must be an experiment config (jal.config.default() with '
        f'changes), got {type(base).__name__}.')
  with _base_fields():
    config_lib.validate(base)


def _check_budget(bench: ml_collections.ConfigDict) -> None:
  budget = bench.get('budget', None)
  if budget is None or (budget == 0 and not isinstance(budget, bool)):
    return
  if (not isinstance(budget, (int, np.integer)) or isinstance(budget, bool)
      or budget < 0):
    raise errors.ConfigError(
        f'config.budget must be an integer (labels at the end; 0: the base\'s '
        f'num_rounds), got {budget!r}.')
  initial = bench.base.initial_size
  for query_size in _axis(bench, 'query_sizes'):
    query_size = query_size or bench.base.query_size
    if budget < initial + query_size:
      raise errors.ConfigError(
          f'config.budget = {budget} leaves no query of {query_size} after '
          f'config.base.initial_size = {initial}: it must be at least '
          f'{initial + query_size}. Raise it, or set it to 0 to run '
          'config.base.num_rounds rounds.')


def validate(bench: ml_collections.ConfigDict) -> None:
  """Checks every field of a benchmark config, before any cell runs.

  Raises:
    ConfigError: a field is unknown, of the wrong type, empty where a value
      is needed, repeats a value, or names nothing registered; the message
      names the field (`config.<field>`, `config.base.<field>`).
  """
  if not isinstance(bench, ml_collections.ConfigDict):
    raise errors.ConfigError(
        'A benchmark config must be a ConfigDict with the fields '
        f'{", ".join(FIELDS)}; got {type(bench).__name__}.')
  unknown = sorted(set(bench) - set(FIELDS))
  if unknown:
    raise errors.ConfigError(
        f'config.{unknown[0]} is not a benchmark field'
        f'{config_lib.did_you_mean(unknown[0], FIELDS)}; the fields are '
        f'{", ".join(FIELDS)}.')
  _check_base(bench)
  datasets(bench)
  strategies(bench)
  seeds(bench)
  _axis(bench, 'query_sizes')
  _axis(bench, 'epochs')
  _check_budget(bench)
  if not isinstance(bench.get('vmap_trials', True), bool):
    raise errors.ConfigError(
        f'config.vmap_trials must be True or False, got {bench.vmap_trials!r}.')
  for need in _names(bench, 'vmap_trials_except_needs'):
    if need not in acquisition.PREDICTIONS:
      raise errors.ConfigError(
          f'config.vmap_trials_except_needs: unknown prediction {need!r}'
          f'{config_lib.did_you_mean(need, acquisition.PREDICTIONS)}; they are '
          f'{", ".join(acquisition.PREDICTIONS)}.')


def expand(bench: ml_collections.ConfigDict) -> list[Cell]:
  """The cells of a benchmark config, seeds innermost.

  Raises:
    ConfigError: `validate` refuses the config.
  """
  validate(bench)
  return [Cell(d, s, seed, q, e) for d, s, q, e, seed in
          itertools.product(datasets(bench), strategies(bench),
                            _axis(bench, 'query_sizes'),
                            _axis(bench, 'epochs'), seeds(bench))]


def uses_vmapped_trials(bench: ml_collections.ConfigDict, cell: Cell) -> bool:
  """Whether `cell`'s seeds run as one vmapped program (see `jal.trials`)."""
  if not bench.get('vmap_trials', True):
    return False
  needs = acquisition.get(cell.strategy).needs
  if set(needs) & set(_names(bench, 'vmap_trials_except_needs')):
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
  with _base_fields():
    config_lib.validate(config)
  return config


def _records_agree(workdir: str) -> bool:
  """Whether `results.jsonl` holds the curve `summary.json` sums up."""
  try:
    with open(os.path.join(workdir, loop.SUMMARY)) as f:
      expected = json.load(f)['test_accuracy']
    with open(os.path.join(workdir, loop.RESULTS)) as f:
      found = [json.loads(line)['test_accuracy'] for line in f]
  except (OSError, ValueError, KeyError, TypeError):
    return False
  return found == expected


def status(workdir: str) -> str:
  """'done' (summary and records written), 'partial' or 'todo'.

  A finished cell whose `results.jsonl` was damaged or emptied is
  'partial': resuming it rewrites the records from its checkpoint.
  """
  if (os.path.exists(os.path.join(workdir, loop.SUMMARY)) and
      _records_agree(workdir)):
    return 'done'
  if os.path.exists(os.path.join(workdir, loop.CHECKPOINT)):
    return 'partial'
  return 'todo'


def _check_grid_file(workdir: str, cells: list[Cell]) -> None:
  """Checks that `workdir`'s `grid.json`, if any, lists no cell beyond `cells`.

  Rewriting it for a smaller grid would hide the other cells from the report.
  """
  path = os.path.join(workdir, GRID)
  if not os.path.lexists(path):
    return
  try:
    with open(path) as f:
      listed = {entry['path'] for entry in json.load(f)['cells']}
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.CheckpointError(
        f'Cannot read {path} ({type(e).__name__}: {e}). Delete it (the grid '
        'writes it again) or use a new --workdir.') from None
  dropped = sorted(listed - {cell.path for cell in cells})
  if dropped:
    raise errors.CheckpointError(
        f'{workdir} holds another grid: {path} lists {len(dropped)} cells '
        f'this config lacks (e.g. {dropped[0]}). Use a new --workdir, or '
        'give the config that wrote it (more cells are fine).')


def write_grid(workdir: str, cells: list[Cell]) -> None:
  """Writes `workdir/grid.json`: the cells, for `jal.report`."""
  checkpoint.atomic_write(os.path.join(workdir, GRID), json.dumps(
      dict(cells=[dataclasses.asdict(c) | dict(path=c.path) for c in cells]),
      indent=1).encode())


def check_reuse(workdir: str, configs: dict[Cell, ml_collections.ConfigDict]
                ) -> None:
  """Checks that what `workdir` holds was run for this grid.

  A cell directory is reused (skipped when finished, resumed otherwise) only
  if its `config.json` and `summary.json` hold the config the grid now asks
  for (`workdir.check_stored`), and `grid.json` lists no other cells.

  Raises:
    CheckpointError: naming the first cell directory that differs and the
      fields, or `grid.json`.
  """
  _check_grid_file(workdir, list(configs))
  stale = []
  for cell, config in configs.items():
    try:
      workdir_lib.check_stored(os.path.join(workdir, cell.path), config)
    except errors.CheckpointError as e:
      stale.append(e)
  if stale:
    raise errors.CheckpointError(
        f'{stale[0]} ({len(stale)} of the grid\'s {len(configs)} cells '
        'cannot be reused.)')


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

  Finished cells (`status` 'done') are skipped; the others start or resume
  from their checkpoints. The seeds of one (dataset, strategy, query size, epochs)
  group run as one vmapped program where `uses_vmapped_trials`, else one by
  one with `loop.run`. Nothing is written before the config and what
  `workdir` holds pass their checks.

  Args:
    bench: a benchmark config (see the module docstring).
    workdir: the grid's directory.
    log: receives one progress line per finished cell group.

  Returns:
    The grid's cells.

  Raises:
    ConfigError: `validate` refuses the config.
    CheckpointError: `workdir` holds cells of other settings (`check_reuse`).
    OSError: `workdir` cannot be written.
  """
  cells = expand(bench)
  configs = {cell: cell_config(bench, cell) for cell in cells}
  check_reuse(workdir, configs)
  os.makedirs(workdir, exist_ok=True)
  write_grid(workdir, cells)
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
