"""Independent trials (seeds) of one experiment as one vmapped program.

Every array of an experiment has a shape fixed by the pool, query and batch
sizes, so S seeds of the same setting run as a single program: the round's
functions of `jal.rounds` under `jax.vmap`, with a leading seed axis on the
data (digits is split by the seed) and on the `ALState`. The oracle is the
ground truth, revealed inside the program, and training runs its epochs
inside jit (`config.train_loop='jit'`, which `jal.loop.run` then uses too),
so a vmapped trial equals `loop.run` of the same config seed for seed: the
same selections and the same accuracies up to float rounding. Every
strategy and posterior source runs this way.

Each seed's work directory receives what `loop.run` writes (`config.json`,
`checkpoint.npz` and `results.jsonl` after every round, `summary.json` at the
end) plus `trials.json` naming the seeds that shared the program; a killed
run is resumed by `run` (all seeds at one round) or by `loop.run` (any seed).
Timings in the records are the vmapped program's wall time divided by S.

Under `vmap` a loop runs to the largest trip count of any seed and a branch
computes both sides, so greedy selections (k-means, k-center, BatchBALD)
gain little from it: `fast_under_vmap` tells a study which strategies to
run this way.
"""

import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import acquisition
from jal import checkpoint
from jal import errors
from jal import loop
from jal import oracle as oracles
from jal import rounds
from jal import stopping
from jal import workdir as workdir_lib

TRIALS = 'trials.json'
_LOOPS = frozenset({'while', 'cond', 'scan'})


def _primitives(jaxpr, found: set[str]) -> set[str]:
  """Names of the primitives in `jaxpr` and in the jaxprs nested in it."""
  for eqn in jaxpr.eqns:
    found.add(eqn.primitive.name)
    for param in eqn.params.values():
      for value in param if isinstance(param, (list, tuple)) else (param,):
        inner = getattr(value, 'jaxpr', value)
        if hasattr(inner, 'eqns'):
          _primitives(inner, found)
  return found


def fast_under_vmap(config: ml_collections.ConfigDict,
                    num_classes: int = 3, pool_size: int = 8) -> bool:
  """Whether `config.strategy`'s selection is one straight-line program.

  True for scores and a top-k (every score-based strategy, their stochastic
  variants, `random`); False for selections that loop or branch (`while`,
  `scan`, `cond`), whose seeds a study runs one by one.
  """
  strategy = acquisition.get(config.strategy)
  hparams = acquisition.check_hparams(
      strategy, dict(config.hparams.get(strategy.name, {})))
  if strategy.init is not acquisition.base.no_state:
    return False
  shapes = {
      'log_probs': (1, pool_size, num_classes),
      'mc_log_probs': (config.posterior_samples, pool_size, num_classes),
      'embeddings': (pool_size, 4),
  }
  if set(strategy.needs) - set(shapes):
    return False
  inputs = {name: jnp.zeros((2, *shapes[name])) for name in strategy.needs}
  jaxpr = jax.make_jaxpr(jax.vmap(
      lambda k, i, m: strategy.select(k, i, m, (), 1, **hparams)))(
          jax.random.split(jax.random.key(0), 2), inputs,
          jnp.zeros((2, pool_size), bool))
  return not _primitives(jaxpr.jaxpr, set()) & _LOOPS


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def seed_configs(config, seeds) -> list[ml_collections.ConfigDict]:
  configs = []
  for seed in seeds:
    seed_config = ml_collections.ConfigDict(config.to_dict())
    seed_config.seed = int(seed)
    configs.append(seed_config)
  return configs


def round_fns(exp: rounds.Experiment):
  """`train(data, state)`, `test(data, trained) -> rounds.TestMetrics` and
  `query(data, trained, state) -> (selected [S, b], next state)`,
  seed-vmapped; `query` reveals `data.pool_labels` (the simulated oracle's
  answers for every pool item) inside the program.
  """

  def query(data, trained, state):
    selected, strategy_state = rounds.query_round(exp, data, trained, state)
    next_state = rounds.reveal(exp, state, selected,
                               data.pool_labels[selected], strategy_state,
                               trained)
    return selected, next_state

  train = lambda data, state: rounds.train_round(exp, data, state)
  test = lambda data, trained: rounds.test_metrics(exp, data, trained)
  return (jax.jit(jax.vmap(train)), jax.jit(jax.vmap(test)),
          jax.jit(jax.vmap(query)))


def run(config: ml_collections.ConfigDict, seeds: Sequence[int],
        workdirs: Sequence[str],
        on_round: Callable[[int, dict], None] | None = None) -> list[dict]:
  """Runs (or resumes) `config` for every seed as one vmapped program.

  Args:
    config: experiment config; `config.seed` is replaced by each seed and
      `config.train_loop` must be 'jit'.
    seeds: the S seeds.
    workdirs: one work directory per seed.
    on_round: called with (seed, record) after each round of each seed.

  Returns:
    The S summaries, as `loop.run` returns them.

  Raises:
    ConfigError: `config.train_loop` is not 'jit', or a config check fails
      (before any work).
  """
  if len(seeds) != len(workdirs) or not seeds:
    raise errors.ConfigError(
        f'Need one work directory per seed; got {len(seeds)} seeds and '
        f'{len(workdirs)} directories.')
  if config.train_loop != 'jit':
    raise errors.ConfigError(
        "Vmapped trials train inside jit: set config.train_loop='jit' (got "
        f'{config.train_loop!r}), so that loop.run gives the same results.')
  configs = seed_configs(config, seeds)
  datasets = [loop.load_dataset(c) for c in configs]
  setups = [loop.setup(c, d) for c, d in zip(configs, datasets)]
  texts = [workdir_lib.open_workdir(c, w) for c, w in zip(configs, workdirs)]
  states, all_records, answers = [], [], []
  for (exp, data), workdir, text in zip(setups, workdirs, texts):
    # The simulated oracle answers each item alone (`jal.oracle.noisy`), so
    # all of its answers can be read up front and revealed inside jit.
    pool_size = data.pool_labels.shape[0]
    answers.append(np.asarray(loop.simulated_oracle(
        exp.config, data.pool_labels, exp.num_classes)(np.arange(pool_size)),
                              np.int32))
    oracle = lambda idx, labels=answers[-1]: labels[idx]
    template = loop.init_state(exp, data, None)
    state, records = workdir_lib.restore(workdir, template, text)
    if records:
      loop.check_resumed(exp.config, state, records, exp.num_classes,
                         workdir)
      workdir_lib.write_results(workdir, records)
    else:
      state = loop.reveal_initial(template, oracle)
    states.append(state)
    all_records.append(records)
  shapes = {jax.tree.map(jnp.shape, data) for _, data in setups}
  if len(shapes) > 1 or len({int(s.round) for s in states}) > 1:
    logging.info('Seeds %s differ in data shapes or progress; running them '
                 'one by one.', list(seeds))
    return [loop.run(c, w, dataset=d,
                     on_round=None if on_round is None else
                     (lambda record, s=s: on_round(s, record)))
            for s, c, w, d in zip(seeds, configs, workdirs, datasets)]

  for workdir in workdirs:
    checkpoint.atomic_write(os.path.join(workdir, TRIALS), json.dumps(
        dict(vmapped_seeds=[int(s) for s in seeds])).encode())
  exp = setups[0][0]
  train_fn, test_fn, query_fn = round_fns(exp)
  diagnostics_fn = jax.jit(jax.vmap(
      lambda data, trained: rounds.diagnostics(exp, data, trained)))
  data = _stack([data._replace(pool_labels=jnp.asarray(labels))
                 for (_, data), labels in zip(setups, answers)])
  costs = [oracles.label_costs(c.label_costs, d.pool_labels.shape[0],
                               d.num_classes)
           for c, d in zip(configs, datasets)]
  state = _stack(states)
  num_seeds = len(seeds)
  while int(state.round[0]) <= config.num_rounds:
    r = int(state.round[0])
    num_labeled = int(state.labeled_mask[0].sum())
    start = time.perf_counter()
    trained = jax.block_until_ready(train_fn(data, state))
    train_seconds = (time.perf_counter() - start) / num_seeds
    start = time.perf_counter()
    (accuracies, balanced), diagnostics = jax.block_until_ready(
        (test_fn(data, trained), diagnostics_fn(data, trained)))
    test_seconds = (time.perf_counter() - start) / num_seeds
    for accuracy, seed_config in zip(np.asarray(accuracies), configs):
      loop.check_accuracy(float(accuracy), seed_config, r)
    start = time.perf_counter()
    if r < config.num_rounds:
      selected, next_state = jax.block_until_ready(
          query_fn(data, trained, state))
    else:
      selected = np.zeros((num_seeds, 0), np.int32)
      next_state = state._replace(round=state.round + 1)
    query_seconds = (time.perf_counter() - start) / num_seeds
    accuracies, selected = np.asarray(accuracies), np.asarray(selected)
    balanced = np.asarray(balanced)
    for i, (seed, workdir) in enumerate(zip(seeds, workdirs)):
      if r < config.num_rounds:
        loop.check_selection(selected[i], np.asarray(state.labeled_mask[i]),
                             config.query_size, exp.strategy.name)
      record = dict(round=r, num_labeled=num_labeled,
                    test_accuracy=float(accuracies[i]),
                    test_balanced_accuracy=float(balanced[i]),
                    train_seconds=train_seconds, test_seconds=test_seconds,
                    query_seconds=query_seconds,
                    selected=selected[i].tolist())
      record.update(loop.diagnostics_record(
          exp.num_classes,
          jax.tree.map(lambda x, i=i: x[i], state),
          jax.tree.map(lambda x, i=i: np.asarray(x[i]), diagnostics),
          selected[i], answers[i][selected[i]], costs=costs[i],
          true_labels=datasets[i].pool_labels,
          previous=all_records[i][-1] if all_records[i] else None))
      record['stopped_by'] = stopping.fired(all_records[i] + [record],
                                            configs[i])
      all_records[i].append(record)
      workdir_lib.save_round(
          workdir, jax.tree.map(lambda x, i=i: x[i], next_state),
          all_records[i], texts[i])
      if on_round is not None:
        on_round(seed, record)
    state = next_state

  return [workdir_lib.write_summary(w, records, text)
          for records, w, text in zip(all_records, workdirs, texts)]
