"""A study directory's finished cells and what their rounds recorded.

A study directory holds one `jal.loop.run` work directory per `study.Cell`.
The cells are read from the `grid.json` that `study.run_grid` writes; a study
directory without one (written before it existed, or assembled by hand) is
walked for the `config.json` of each cell instead. A cell is finished when it
holds `summary.json`.
"""

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping

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

  @property
  def task(self) -> Task:
    return (self.cell.dataset, self.cell.query_size, self.cell.num_epochs)

  @property
  def aubc(self) -> float:
    return metrics.aubc(self.num_labeled, self.accuracies)

  @property
  def final_accuracy(self) -> float:
    return metrics.final_accuracy(self.accuracies)


# grouped[task][strategy]: the runs of one setting, as `group` gives them.
Grouped = dict[Task, dict[str, list[Run]]]


def _cell(fields: Mapping) -> study.Cell:
  """The cell named by a `grid.json` entry or a cell's `config.json`."""
  return study.Cell(**{f.name: fields[f.name]
                       for f in dataclasses.fields(study.Cell)})


def find_cells(workdir: str) -> list[tuple[study.Cell, str]]:
  """The study's cells with their directories relative to `workdir`."""
  grid = os.path.join(workdir, study.GRID)
  if os.path.exists(grid):
    with open(grid) as f:
      return [(_cell(entry), entry['path']) for entry in json.load(f)['cells']]
  found = []
  for root, _, files in sorted(os.walk(workdir)):
    if loop.CONFIG in files:
      with open(os.path.join(root, loop.CONFIG)) as f:
        found.append((_cell(json.load(f)), os.path.relpath(root, workdir)))
  return found


def _column(records: list[dict], key: str) -> tuple:
  return tuple(record[key] for record in records)


def read_run(cell: study.Cell, directory: str) -> Run:
  """The run of `cell` from its finished work directory."""
  with open(os.path.join(directory, loop.RESULTS)) as f:
    records = [json.loads(line) for line in f if line.strip()]
  timed_tests = all('test_seconds' in r for r in records)
  return Run(cell=cell, num_labeled=_column(records, 'num_labeled'),
             accuracies=_column(records, 'test_accuracy'),
             train_seconds=_column(records, 'train_seconds'),
             test_seconds=(_column(records, 'test_seconds') if timed_tests
                           else None),
             query_seconds=_column(records, 'query_seconds'),
             vmapped=os.path.exists(os.path.join(directory, trials.TRIALS)))


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
