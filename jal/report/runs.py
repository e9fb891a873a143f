"""A study directory's finished cells and what their rounds recorded.

A study directory holds one `jal.loop.run` work directory per `study.Cell`.
The cells are read from the `grid.json` that `study.run_grid` writes; a study
directory without one (written before it existed, or assembled by hand) is
walked for the `config.json` of each cell instead. A cell is finished when it
holds `summary.json`. A missing directory raises `errors.NoResultsError`, a
file that cannot be read `errors.CorruptResultsError` naming it (and, for a
record, its line).
"""

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping

import numpy as np

from jal import errors
from jal import loop
from jal import metrics
from jal import study
from jal import trials

# A task: the cells that differ only in strategy and seed.
Task = tuple[str, int | None, int | None]  # dataset, query size, epochs


@dataclasses.dataclass(frozen=True)
class Run:
  """A finished cell and its per-round measurements, rounds 0…R."""
  cell: study.Cell
  num_labeled: tuple[int, ...]
  accuracies: tuple[float, ...]
  train_seconds: tuple[float, ...]
  test_seconds: tuple[float, ...] | None  # None: records predating the field
  query_seconds: tuple[float, ...]
  vmapped: bool  # its seeds ran as one program: its times are amortized
  # None: records predating the field.
  balanced_accuracies: tuple[float, ...] | None = None
  # The cell's stored experiment config (`config.json`); None if absent.
  config: Mapping | None = dataclasses.field(default=None, compare=False,
                                             repr=False)
  # Diagnostics; None: records predating them. Test ECE per round; the
  # cost of the labeled set each round's model trained on; the queried
  # labels' class histogram [C] summed over rounds.
  eces: tuple[float, ...] | None = None
  label_costs: tuple[float, ...] | None = None
  queried_counts: tuple[int, ...] | None = None
  # {stopping criterion: first firing round or None} (`summary.json`).
  stopping: Mapping | None = dataclasses.field(default=None, compare=False)

  @property
  def task(self) -> Task:
    return (self.cell.dataset, self.cell.query_size, self.cell.num_epochs)

  @property
  def aubc(self) -> float:
    return metrics.aubc(self.num_labeled, self.accuracies)

  @property
  def final_accuracy(self) -> float:
    return metrics.final_accuracy(self.accuracies)

  @property
  def balanced_aubc(self) -> float | None:
    if self.balanced_accuracies is None:
      return None
    return metrics.aubc(self.num_labeled, self.balanced_accuracies)

  @property
  def final_balanced_accuracy(self) -> float | None:
    if self.balanced_accuracies is None:
      return None
    return metrics.final_accuracy(self.balanced_accuracies)


# grouped[task][strategy]: the runs of one setting, as `group` gives them.
Grouped = dict[Task, dict[str, list[Run]]]


def _corrupt(path: str, what: str) -> errors.CorruptResultsError:
  return errors.CorruptResultsError(
      f'{path}: {what}. Delete it, or the cell directory holding it, and run '
      'experiments/benchmark.py again to recompute what it held.')


def _read_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise _corrupt(path, f'cannot be read as JSON ({e})') from None


def _cell(fields, path: str) -> study.Cell:
  """The cell named by a `grid.json` entry or a cell's `config.json`."""
  try:
    return study.Cell(**{f.name: fields[f.name]
                         for f in dataclasses.fields(study.Cell)})
  except (KeyError, TypeError) as e:
    raise _corrupt(path, f'names no study cell (missing {e})') from None


def find_cells(workdir: str) -> list[tuple[study.Cell, str]]:
  """The study's cells with their directories relative to `workdir`."""
  if not os.path.isdir(workdir):
    raise errors.NoResultsError(
        f'{workdir} is not a directory: give the --workdir of '
        'experiments/benchmark.py.')
  grid = os.path.join(workdir, study.GRID)
  if os.path.exists(grid):
    entries = _read_json(grid)
    try:
      return [(_cell(entry, grid), entry['path'])
              for entry in entries['cells']]
    except (KeyError, TypeError) as e:
      raise _corrupt(grid, f'lists no cells (missing {e})') from None
  found = []
  for root, _, files in sorted(os.walk(workdir)):
    if loop.CONFIG in files:
      path = os.path.join(root, loop.CONFIG)
      found.append((_cell(_read_json(path), path),
                    os.path.relpath(root, workdir)))
  return found


def _column(records: list[dict], key: str) -> tuple:
  return tuple(record[key] for record in records)


_NUMBERS = ('num_labeled', 'test_accuracy', 'train_seconds', 'query_seconds')


def _record(line: str, path: str, number: int) -> dict:
  """One round's record, a line of `results.jsonl`."""
  where = f'line {number}'
  try:
    record = json.loads(line)
  except ValueError as e:
    raise _corrupt(path, f'{where} is not a JSON record ({e})') from None
  if not isinstance(record, dict):
    raise _corrupt(path, f'{where} is not a JSON object')
  for key in _NUMBERS:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise _corrupt(path, f'{where} has no number {key!r} (got {value!r})')
  return record


def read_records(directory: str) -> list[dict]:
  """The per-round records of a finished work directory (`results.jsonl`).

  Raises:
    CorruptResultsError: the file is missing, empty, or a line is not a
      record; the message names the file and the line.
  """
  path = os.path.join(directory, loop.RESULTS)
  try:
    with open(path) as f:
      lines = list(f)
  except (OSError, UnicodeDecodeError) as e:
    raise _corrupt(path, f'cannot be read ({e})') from None
  records = [_record(line, path, number)
             for number, line in enumerate(lines, 1) if line.strip()]
  if not records:
    raise _corrupt(path, 'holds no round although the cell has finished')
  return records


def _numbers(records: list[dict], key: str) -> tuple | None:
  """The records' `key` column, or None unless every record has a number."""
  if not all(isinstance(r.get(key), (int, float)) and
             not isinstance(r.get(key), bool) for r in records):
    return None
  return _column(records, key)


def _queried_counts(records: list[dict]) -> tuple[int, ...] | None:
  counts = [r.get('queried_class_counts') for r in records]
  if not all(isinstance(c, list) for c in counts) or len(
      {len(c) for c in counts}) != 1:
    return None
  return tuple(int(v) for v in np.sum(counts, axis=0))


def read_run(cell: study.Cell, directory: str) -> Run:
  """The run of `cell` from its finished work directory."""
  records = read_records(directory)
  timed_tests = all('test_seconds' in r for r in records)
  balanced = all(isinstance(r.get('test_balanced_accuracy'), (int, float))
                 for r in records)
  config_path = os.path.join(directory, loop.CONFIG)
  config = (_read_json(config_path) if os.path.exists(config_path)
            else None)
  summary_path = os.path.join(directory, loop.SUMMARY)
  summary = (_read_json(summary_path) if os.path.exists(summary_path)
             else None)
  stopping = summary.get('stopping') if isinstance(summary, dict) else None
  return Run(cell=cell, num_labeled=_column(records, 'num_labeled'),
             accuracies=_column(records, 'test_accuracy'),
             train_seconds=_column(records, 'train_seconds'),
             test_seconds=(_column(records, 'test_seconds') if timed_tests
                           else None),
             query_seconds=_column(records, 'query_seconds'),
             vmapped=os.path.exists(os.path.join(directory, trials.TRIALS)),
             balanced_accuracies=(_column(records, 'test_balanced_accuracy')
                                  if balanced else None),
             config=config if isinstance(config, dict) else None,
             eces=_numbers(records, 'test_ece'),
             label_costs=_numbers(records, 'cumulative_label_cost'),
             queried_counts=_queried_counts(records),
             stopping=stopping if isinstance(stopping, dict) else None)


def load_runs(workdir: str) -> tuple[list[Run], list[str]]:
  """The finished runs under `workdir`, and the directories of the others."""
  finished, unfinished = [], []
  for cell, path in find_cells(workdir):
    directory = os.path.join(workdir, path)
    if os.path.exists(os.path.join(directory, loop.SUMMARY)):
      finished.append(read_run(cell, directory))
    else:
      unfinished.append(path)
  return finished, unfinished


def group(found: Iterable[Run]) -> Grouped:
  """grouped[task][strategy]: that setting's runs, by seed; tasks sorted."""
  grouped = collections.defaultdict(lambda: collections.defaultdict(list))
  for run in sorted(found, key=lambda r: r.cell.seed):
    grouped[run.task][run.cell.strategy].append(run)
  return {task: dict(per) for task, per in sorted(grouped.items())}


def task_names(tasks: Iterable[Task]) -> dict[Task, str]:
  """Readable names: the dataset, plus the axes that vary within it."""
  tasks = sorted(set(tasks))
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
