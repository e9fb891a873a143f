"""The active learning loop run by several processes (`jal.distributed`).

Every process runs the same experiment: training and testing replicated
(the same config, data and keys give the same model in every process,
checked each round with a gathered checksum), the query sharded over the
pool (`jal.sharded.query_round`), the oracle's answers the same everywhere.
Only process 0 touches the work directory: it writes `config.json`, the
checkpoint and `results.jsonl` after each round and `summary.json` at the
end; the other processes wait at a barrier after each save. On resume,
process 0 restores the checkpoint and broadcasts the state and records, so
the other hosts need no access to the work directory. A run whose process
died (`experiments/launch.py` then stops the rest) is resumed by starting
every process again: the run ends with the labeled set and records of one
that never stopped, which are those of the one-process `jal.loop.run`.
"""

import json
import logging
from collections.abc import Callable

import ml_collections
import numpy as np

from jal import acquisition
from jal import config as config_lib
from jal import data as data_lib
from jal import distributed
from jal import loop
from jal import models
from jal import oracle as oracles
from jal import sharded
from jal import stopping
from jal import workdir as workdir_lib


class ShardedRoundFns(loop.RoundFns):
  """`loop.RoundFns` whose training checks that every process trained the
  same model and whose query is sharded over the processes."""

  def __init__(self, exp):
    super().__init__(exp)
    replicated_train = self.train

    def train(data, state):
      trained = replicated_train(data, state)
      distributed.check_replicated(
          trained.variables, f'The model trained in round {int(state.round)}')
      return trained

    self.train = train
    self.query = lambda data, trained, state: sharded.query_round(
        exp, data, trained, state)


def _summary(records: list[dict], config_text: str) -> dict:
  """What `workdir.write_summary` returns, without writing it."""
  summary = workdir_lib.summarize(records)
  config = json.loads(config_text)
  if isinstance(config, dict) and 'stopping' in config:
    summary['stopping'] = stopping.evaluate(records, config)
  summary['config'] = config
  return summary


def run(config: ml_collections.ConfigDict, workdir: str,
        dataset: data_lib.Dataset | None = None,
        on_round: Callable[[dict], None] | None = None, *,
        model: models.Model | None = None,
        strategy: acquisition.Strategy | None = None) -> dict:
  """Runs (or resumes) an experiment in `workdir` on every process.

  Call `distributed.initialize()` first; in one process this is
  `jal.loop.run` with the query going through `jal.sharded`. Every process
  must call it with the same config and dataset.

  Args:
    config: experiment config; its strategy must be score-based, kcenter or
      badge, without a state (`sharded.check_supported`).
    workdir: the experiment's directory, written by process 0 only.
    dataset: use this dataset instead of loading `config.dataset`.
    on_round: called in every process with each new round's record, once
      process 0 has saved the round.
    model: a user's `models.Model` instead of `config.model`.
    strategy: a user's `acquisition.Strategy` instead of `config.strategy`.

  The oracle is the simulated one of `jal.loop.run` (the pool's labels,
  noisy as the config says), which answers the same in every process.

  Returns:
    The summary (process 0 also writes it to `summary.json`).

  Raises:
    ConfigError: a bad config, or a strategy that cannot be sharded.
    ReplicationError: the processes were given different configs.
    CheckpointError: `workdir` belongs to another experiment or is damaged.
    ReplicationError: the processes trained different models or hold
      different labeled sets.
  """
  config_lib.validate(config)
  if dataset is None:
    dataset = loop.load_dataset(config)
  exp, data = loop.setup(config, dataset, model, strategy)
  sharded.check_experiment(exp)
  oracle = loop.simulated_oracle(config, dataset.pool_labels,
                                 dataset.num_classes)
  costs = oracles.label_costs(config.label_costs,
                              dataset.pool_labels.shape[0],
                              dataset.num_classes)
  true_labels = np.asarray(dataset.pool_labels)
  config_text = workdir_lib.config_json(config)
  distributed.check_replicated(
      np.frombuffer(config_text.encode(), np.uint8), 'The config')
  writer = distributed.is_writer()
  template = loop.init_state(exp, data, None)
  state, records = template, []
  if writer:
    config_text = workdir_lib.open_workdir(config, workdir)
    state, records = workdir_lib.restore(workdir, template, config_text)
    if records:
      loop.check_resumed(config, state, records, dataset.num_classes,
                         workdir)
      workdir_lib.write_results(workdir, records)
      logging.info('Resuming %s after round %d.', workdir, len(records) - 1)
  state = distributed.broadcast(state)
  records = distributed.broadcast_json(records)
  if not records:
    state = loop.reveal_initial(template, oracle)
  distributed.check_replicated((state.labeled_mask, state.labels),
                               'The labeled set')
  fns = ShardedRoundFns(exp)
  while int(state.round) <= config.num_rounds:
    state, record = loop.step(fns, data, state, oracle, costs=costs,
                              true_labels=true_labels,
                              previous=records[-1] if records else None)
    record['stopped_by'] = stopping.fired(records + [record], config)
    records.append(record)
    distributed.check_replicated(
        (state.labeled_mask, state.labels),
        f'The labeled set after round {record["round"]}')
    if writer:
      workdir_lib.save_round(workdir, state, records, config_text)
    distributed.barrier(f'jal_round_{record["round"]}_saved')
    if on_round is not None:
      on_round(record)
  if writer:
    summary = workdir_lib.write_summary(workdir, records, config_text)
  else:
    summary = _summary(records, config_text)
  distributed.barrier('jal_summary_saved')
  return summary
