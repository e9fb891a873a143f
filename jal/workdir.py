"""An experiment's work directory: its config, records, checkpoint, summary.

`config.json` is written once the config has passed every check;
`checkpoint.npz` (state and records) and then `results.jsonl` (one JSON
record per round) are rewritten atomically after every round, and
`summary.json` at the end. On resume, once the checkpoint has passed its
checks, `results.jsonl` and `summary.json` are rewritten from its records, so
a kill between two writes never leaves them behind.
"""

import hashlib
import json
import os

import ml_collections

from jal import checkpoint
from jal import config as config_lib
from jal import errors
from jal import metrics
from jal import stopping

CHECKPOINT = 'checkpoint.npz'
RESULTS = 'results.jsonl'
SUMMARY = 'summary.json'
CONFIG = 'config.json'


def config_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(sort_keys=True, indent=2)


def fingerprint(config_text: str) -> str:
  """A short hash of an experiment's config, stored in its checkpoints."""
  return hashlib.sha256(config_text.encode()).hexdigest()[:16]


def _differences(old, new, prefix='', defaults=None):
  """Dotted names of the fields whose values differ.

  With `defaults` (a config as JSON), a field `old` lacks counts as equal
  when `new` holds its default: `old` was written before the field existed.
  """
  if isinstance(old, dict) and isinstance(new, dict):
    defaults = defaults if isinstance(defaults, dict) else None
    return [d for k in sorted(set(old) | set(new))
            if not (defaults is not None and k not in old and k in defaults
                    and new.get(k) == defaults[k])
            for d in _differences(old.get(k), new.get(k), f'{prefix}{k}.',
                                  defaults and defaults.get(k))]
  return [] if old == new else [prefix.rstrip('.')]


def open_workdir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Creates `workdir` with `config.json`, or checks the one it holds.

  Returns:
    The config as JSON.

  Raises:
    CheckpointError: `workdir` belongs to an experiment with another config,
      or cannot be used.
  """
  text = config_json(config)
  path = os.path.join(workdir, CONFIG)
  try:
    os.makedirs(workdir, exist_ok=True)
    if not os.path.exists(path):
      checkpoint.atomic_write(path, text.encode())
      return text
    with open(path) as f:
      stored = json.load(f)
  except OSError as e:
    raise errors.CheckpointError(
        f'Cannot use work directory {workdir!r} ({e}). Pick another '
        '--workdir.') from None
  except ValueError as e:
    raise errors.CheckpointError(
        f'{path} is damaged ({e}). Delete the work directory (or that file, '
        'to start the experiment over) or use a new one.') from None
  if not isinstance(stored, dict):
    raise errors.CheckpointError(
        f'{path} is not a jal config (it holds a JSON '
        f'{type(stored).__name__}). Use a new work directory, or delete that '
        'one to start over.')
  changed = _differences(stored, json.loads(text))
  if changed:
    raise errors.CheckpointError(
        f'{workdir} holds an experiment with a different config ({path}; '
        f'fields that differ: {", ".join(changed)}). Use a new work '
        'directory, or delete that one to start over.')
  return text


def _read_json(path: str, workdir: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise errors.CheckpointError(
        f'Cannot read {path} ({e}). Delete {workdir} to run that experiment '
        'again, or use a new work directory.') from None


def check_stored(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Checks that the configs `workdir` holds, if any, are `config`.

  Compares `config.json` (written when the run started) and the config in
  `summary.json` (what a finished run reports) with `config`, so that a
  finished run is reused only for the experiment it ran. Fields added to jal
  after a run was stored count as equal when `config` holds their defaults.

  Raises:
    CheckpointError: either file holds another config or cannot be read.
  """
  wanted = json.loads(config_json(config))
  for name in (CONFIG, SUMMARY):
    path = os.path.join(workdir, name)
    if not os.path.lexists(path):
      continue
    stored = _read_json(path, workdir)
    if name == SUMMARY and isinstance(stored, dict):
      stored = stored.get('config')
    changed = (_differences(stored, wanted, defaults=json.loads(config_json(
        config_lib.default()))) if isinstance(stored, dict)
               else ['(no config stored)'])
    if changed:
      raise errors.CheckpointError(
          f'{workdir} holds an experiment with a different config ({path}; '
          f'fields that differ: {", ".join(changed)}). Use a new work '
          f'directory, or delete {workdir} to run it again.')


def save_round(workdir: str, state, records: list[dict],
               config_text: str) -> None:
  """Checkpoints the state after a round, then rewrites `results.jsonl`."""
  checkpoint.save(os.path.join(workdir, CHECKPOINT), state, records,
                  fingerprint(config_text))
  write_results(workdir, records)


def write_results(workdir: str, records: list[dict]) -> None:
  checkpoint.atomic_write(
      os.path.join(workdir, RESULTS),
      ''.join(json.dumps(r) + '\n' for r in records).encode())


def restore(workdir: str, like, config_text: str):
  """`(state, records)` from the checkpoint, or `(like, [])` if none.

  The caller checks them, then rewrites `results.jsonl` (`write_results`).
  """
  path = os.path.join(workdir, CHECKPOINT)
  if not os.path.lexists(path):
    return like, []
  return checkpoint.restore(path, like, fingerprint(config_text))


def write_summary(workdir: str, records: list[dict], config_text: str) -> dict:
  """Writes and returns `summary.json`: AUBC, final accuracy, the round at
  which each stopping criterion first fired (`jal.stopping.evaluate`),
  config."""
  summary = summarize(records)
  config = json.loads(config_text)
  if isinstance(config, dict) and 'stopping' in config:
    summary['stopping'] = stopping.evaluate(records, config)
  summary['config'] = config
  checkpoint.atomic_write(os.path.join(workdir, SUMMARY),
                          json.dumps(summary, indent=2).encode())
  return summary


def summarize(records: list[dict]) -> dict:
  """AUBC and final accuracy of a run's per-round records."""
  num_labeled = [r['num_labeled'] for r in records]
  accuracies = [r['test_accuracy'] for r in records]
  return dict(aubc=metrics.aubc(num_labeled, accuracies),
              final_accuracy=metrics.final_accuracy(accuracies),
              num_labeled=num_labeled, test_accuracy=accuracies)
