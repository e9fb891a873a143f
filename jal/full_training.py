"""The full-training reference of a study: the model trained on the whole pool.

DeepAL+ (§3, "full training") compares active learning's final accuracy with
the same network trained on every pool example. `train` does that with an
experiment config's protocol (model, optimizer, epochs, batch size,
augmentation, posterior for the test prediction): one `jal.rounds` round
whose labeled mask is all true, trained and tested by the loop's own
functions (`loop.RoundFns`), so nothing of training is re-implemented. The
strategy is `random`, which adds no objective or training rows.

`run(bench, workdir)` trains it for every dataset, epochs setting and seed of
a benchmark config and writes `WORKDIR/<dataset>/full_training.json`:

  {"runs": [{"seed": 0, "epochs": null, "num_epochs": 10,
             "pool_size": 20000, "test_accuracy": 0.99,
             "test_balanced_accuracy": 0.99, "train_seconds": 12.3}, ...]}

`epochs` is the cell's epochs axis value (null: the base config's), as in
`study.Cell.num_epochs`. Entries already in the file are kept and not
trained again. `jal.report` shows the reference when the file is there.
"""

import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from jal import checkpoint
from jal import data as data_lib
from jal import errors
from jal import loop
from jal import rounds
from jal import study

FILE = 'full_training.json'
STRATEGY = 'random'  # adds no objective (hook H4) and no training rows (H1)


def train(config: ml_collections.ConfigDict,
          dataset: data_lib.Dataset | None = None) -> dict:
  """Trains `config`'s model on its whole pool and tests it.

  Args:
    config: an experiment config; its strategy is replaced by `random`.
    dataset: use this dataset instead of loading `config.dataset`.

  Returns:
    The entry `run` stores (see the module docstring), without `epochs`.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.strategy = STRATEGY
  if dataset is None:
    dataset = loop.load_dataset(config)
  exp, data = loop.setup(config, dataset)
  pool_size = data.pool_labels.shape[0]
  _, warm_key, rounds_key = jax.random.split(jax.random.key(config.seed), 3)
  state = rounds.ALState(
      round=jnp.zeros((), jnp.int32),
      labeled_mask=jnp.ones((pool_size,), bool),
      labels=data.pool_labels, key=rounds_key, strategy_state=(),
      variables=(rounds.initial_variables(exp, warm_key)
                 if config.warm_start else ()))
  fns = loop.RoundFns(exp)
  start = time.perf_counter()
  trained = jax.block_until_ready(fns.train(data, state))
  seconds = time.perf_counter() - start
  accuracy, balanced = fns.test_metrics(data, trained)
  loop.check_accuracy(float(accuracy), config, 0)
  return dict(seed=int(config.seed), num_epochs=int(config.num_epochs),
              pool_size=int(pool_size), test_accuracy=float(accuracy),
              test_balanced_accuracy=float(balanced), train_seconds=seconds)


def path(workdir: str, dataset: str) -> str:
  return os.path.join(workdir, dataset, FILE)


def read(workdir: str, dataset: str) -> list[dict]:
  """The entries of `dataset`'s file under `workdir`; [] when there is none.

  Raises:
    CorruptResultsError: the file exists but holds no list of entries.
  """
  file = path(workdir, dataset)
  if not os.path.exists(file):
    return []
  try:
    with open(file) as f:
      entries = json.load(f)['runs']
    for entry in entries:
      float(entry['test_accuracy'])
      int(entry['seed'])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.CorruptResultsError(
        f'{file}: not a full-training record ({type(e).__name__}: {e}). '
        'Delete it and run experiments/full_training.py again.') from None
  return entries


def run(bench: ml_collections.ConfigDict, workdir: str,
        log: Callable[[str], None] = print) -> dict[str, list[dict]]:
  """Trains the full-pool reference for each dataset, epochs value and seed.

  Each entry is written as soon as it is trained; entries already stored
  are skipped.

  Returns:
    The entries by dataset.
  """
  study.validate(bench)
  epochs_axis = study._axis(bench, 'epochs')  # pylint: disable=protected-access
  found = {}
  for dataset in study.datasets(bench):
    entries = read(workdir, dataset)
    done = {(e.get('epochs'), e['seed']) for e in entries}
    for epochs in epochs_axis:
      for seed in study.seeds(bench):
        if (epochs, seed) in done:
          continue
        config = study.cell_config(
            bench, study.Cell(dataset, STRATEGY, seed, None, epochs))
        entry = dict(epochs=epochs) | train(config)
        entries.append(entry)
        os.makedirs(os.path.dirname(path(workdir, dataset)), exist_ok=True)
        checkpoint.atomic_write(path(workdir, dataset), json.dumps(
            dict(runs=entries), indent=1).encode())
        log(f'{dataset} e={entry["num_epochs"]} seed {seed}: full training '
            f'on {entry["pool_size"]} examples, test accuracy '
            f'{entry["test_accuracy"]:.4f} ({entry["train_seconds"]:.0f} s)')
    found[dataset] = entries
  return found
