"""Independent trials (seeds) of one experiment as one vmapped program.

Every array of an experiment has a shape fixed by the pool, query and batch
sizes, so S seeds of the same setting can run as a single program whose
arrays carry a leading seed axis: per-seed data (digits is split by the seed),
per-seed `ALState`, and one `jax.vmap` over a round's training, testing and
query. Each seed follows the key derivation of `jal.loop` exactly (round r
uses `fold_in(state.key, r)` split into init/train/query keys, the query key
into predict/select keys), training runs the in-jit epoch loop
(`config.train_loop='jit'`), and the oracle is the ground truth, so a vmapped
trial equals `loop.run` of the same config seed for seed: the same selections
and the same accuracies up to float rounding.

Each seed's work directory receives what `loop.run` writes (`config.json`,
`checkpoint.npz` and `results.jsonl` after every round, `summary.json` at the
end) plus `trials.json` naming the seeds that shared the program; a killed
run is resumed by `run` (all seeds at one round) or by `loop.run` (any seed).
Timings in the records are the vmapped program's wall time divided by S,
i.e. amortized per seed.

Strategies qualify when their `select` is one straight-line traceable
program: no `prepare`, no host work, no loops or branches (`vmappable` checks
this on the traced program). Score-based strategies and `random` qualify;
iterative ones (greedy batch selection, k-means) run seed by seed.
"""

import dataclasses
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
from jal import config as config_lib
from jal import errors
from jal import loop

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


def vmappable(config: ml_collections.ConfigDict,
              num_classes: int = 3, pool_size: int = 8) -> bool:
  """Whether `config.strategy` runs its seeds as one vmapped program.

  True for strategies whose `select` is one straight-line program: scores and
  a top-k (every score-based strategy, their stochastic variants, `random`).
  False when the strategy has a `prepare` step, the config warm-starts, the
  select does not trace under `vmap` (host work, concrete values), or it
  loops or branches (`while`, `scan`, `cond`: greedy batch selection,
  k-means): under `vmap` a loop runs to the largest trip count of any seed
  and a branch computes both sides for every seed, so such strategies run
  their seeds one by one.
  """
  strategy = acquisition.get(config.strategy)
  if strategy.prepare is not None or config.warm_start:
    return False
  kwargs = dict(config.strategy_kwargs)
  shapes = {
      'log_probs': ((2, 1, pool_size, num_classes), jnp.float32),
      'mc_log_probs': ((2, config.mc_passes, pool_size, num_classes),
                       jnp.float32),
      'embeddings': ((2, pool_size, 4), jnp.float32),
      'labels': ((2, pool_size), jnp.int32),
  }
  inputs = {name: jnp.zeros(*shapes[name]) for name in strategy.needs}
  try:
    jaxpr = jax.make_jaxpr(jax.vmap(
        lambda k, i, m: strategy.select(k, i, m, 1, **kwargs)))(
            jax.random.split(jax.random.key(0), 2), inputs,
            jnp.zeros((2, pool_size), bool))
  except Exception as e:  # pylint: disable=broad-except
    logging.info('Strategy %s runs its seeds one by one: %s',
                 config.strategy, e)
    return False
  return not _primitives(jaxpr.jaxpr, set()) & _LOOPS


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _seed_configs(config, seeds):
  configs = []
  for seed in seeds:
    seed_config = ml_collections.ConfigDict(config.to_dict())
    seed_config.seed = int(seed)
    configs.append(seed_config)
  return configs


def _per_seed(exp: loop.Experiment, data: dict) -> loop.Experiment:
  """`exp` with one seed's (traced) pool and test arrays."""
  return dataclasses.replace(exp, pool_images=data['pool_images'],
                             test_images=data['test_images'],
                             test_labels=data['test_labels'])


def make_round_fns(exp: loop.Experiment):
  """Jitted, seed-vmapped halves of `loop.round_step`.

  Returns:
    `train(data, state) -> (variables, test_accuracy [S])` and
    `query(data, variables, state) -> (state, selected [S, b])`, where
    `data` holds [S, ...] `pool_images`, `pool_labels`, `test_images`,
    `test_labels` and `state` is an `ALState` with a leading seed axis.
  """
  config = exp.config
  trainer = exp.trainer
  kwargs = dict(config.strategy_kwargs)

  def round_keys(state):
    return jax.random.split(jax.random.fold_in(state.key, state.round), 3)

  def train_one(data, state):
    init_key, train_key, _ = round_keys(state)
    variables = exp.init_variables(init_key)
    train_state = trainer._epochs(  # pylint: disable=protected-access
        trainer._init_state(variables),  # pylint: disable=protected-access
        train_key, data['pool_images'], jnp.maximum(state.labels, 0),
        state.labeled_mask, config.num_epochs)
    logits, _ = trainer._predict(  # pylint: disable=protected-access
        train_state.variables, data['test_images'])
    accuracy = jnp.mean(jnp.argmax(logits, -1) == data['test_labels'])
    return train_state.variables, accuracy

  def query_one(data, variables, state):
    _, _, query_key = round_keys(state)
    predict_key, select_key = jax.random.split(query_key)
    inputs = loop.predictions(_per_seed(exp, data), predict_key, variables,
                              state, exp.strategy.needs)
    selected = exp.strategy.select(select_key, inputs, state.labeled_mask,
                                   config.query_size, **kwargs)
    next_state = state._replace(
        round=state.round + 1,
        labeled_mask=state.labeled_mask.at[selected].set(True),
        labels=state.labels.at[selected].set(data['pool_labels'][selected]))
    return next_state, selected.astype(jnp.int32)

  return jax.jit(jax.vmap(train_one)), jax.jit(jax.vmap(query_one))


def run(config: ml_collections.ConfigDict, seeds: Sequence[int],
        workdirs: Sequence[str],
        on_round: Callable[[int, dict], None] | None = None) -> list[dict]:
  """Runs (or resumes) `config` for every seed as one vmapped program.

  Args:
    config: experiment config; `config.seed` is replaced by each seed and
      `config.train_loop` must be 'jit' (the loop `loop.run` must use to give
      the same results).
    seeds: the S seeds.
    workdirs: one work directory per seed.
    on_round: called with (seed, record) after each round of each seed.

  Returns:
    The S summaries, as `loop.run` returns them.

  Raises:
    ConfigError: `config.train_loop` is not 'jit', or the strategy cannot be
      vmapped (see `vmappable`).
  """
  if len(seeds) != len(workdirs) or not seeds:
    raise ValueError(f'Need one work directory per seed; got {len(seeds)} '
                     f'seeds and {len(workdirs)} directories.')
  if config.train_loop != 'jit':
    raise errors.ConfigError(
        "Vmapped trials train inside jit: set config.train_loop='jit' (got "
        f'{config.train_loop!r}), so that loop.run gives the same results.')
  if not vmappable(config):
    raise errors.ConfigError(
        f'Strategy {config.strategy!r} cannot run its seeds as one vmapped '
        'program (it has a prepare step, warm-starts or does host work); '
        'run the seeds one by one with loop.run.')
  configs = _seed_configs(config, seeds)
  for c in configs:
    config_lib.validate(c)
  config_jsons = [loop.open_workdir(c, w) for c, w in zip(configs, workdirs)]
  datasets = [loop.load_dataset(c) for c in configs]
  shapes = {(d.pool_images.shape, d.test_images.shape) for d in datasets}
  exps = [loop.build(c, d) for c, d in zip(configs, datasets)]
  states, all_records = [], []
  for exp, workdir in zip(exps, workdirs):
    state = loop.init_state(exp)
    records = []
    path = os.path.join(workdir, loop.CHECKPOINT)
    if os.path.exists(path):
      state, records = checkpoint.restore(path, state)
    states.append(state)
    all_records.append(records)
  rounds = {int(s.round) for s in states}
  if len(shapes) > 1 or len(rounds) > 1:
    logging.info('Seeds %s differ in data shapes or progress; running them '
                 'one by one.', list(seeds))
    return [loop.run(c, w, dataset=d,
                     on_round=None if on_round is None else
                     (lambda record, s=s: on_round(s, record)))
            for s, c, w, d in zip(seeds, configs, workdirs, datasets)]

  for workdir in workdirs:
    checkpoint.atomic_write(os.path.join(workdir, TRIALS), json.dumps(
        dict(vmapped_seeds=[int(s) for s in seeds])).encode())
  exp = exps[0]
  train_fn, query_fn = make_round_fns(exp)
  data = _stack([dict(pool_images=e.pool_images,
                      pool_labels=jnp.asarray(d.pool_labels, jnp.int32),
                      test_images=e.test_images, test_labels=e.test_labels)
                 for e, d in zip(exps, datasets)])
  state = _stack(states)
  num_seeds = len(seeds)
  while int(state.round[0]) <= config.num_rounds:
    r = int(state.round[0])
    start = time.perf_counter()
    variables, accuracies = jax.block_until_ready(train_fn(data, state))
    train_seconds = (time.perf_counter() - start) / num_seeds
    start = time.perf_counter()
    num_labeled = int(state.labeled_mask[0].sum())
    if r < config.num_rounds:
      next_state, selected = jax.block_until_ready(
          query_fn(data, variables, state))
      selected = np.asarray(selected)
    else:
      next_state = state._replace(round=state.round + 1)
      selected = np.zeros((num_seeds, 0), np.int32)
    query_seconds = (time.perf_counter() - start) / num_seeds
    accuracies = np.asarray(accuracies)
    for i, (seed, workdir) in enumerate(zip(seeds, workdirs)):
      if r < config.num_rounds:
        loop.check_selection(selected[i], np.asarray(state.labeled_mask[i]),
                         config)
      record = dict(round=r, num_labeled=num_labeled,
                    test_accuracy=float(accuracies[i]),
                    train_seconds=train_seconds, query_seconds=query_seconds,
                    selected=selected[i].tolist())
      all_records[i].append(record)
      loop.save_round(workdir, jax.tree.map(lambda x, i=i: x[i], next_state),
                      all_records[i])
      if on_round is not None:
        on_round(seed, record)
    state = next_state

  return [loop.write_summary(w, records, config_json)
          for records, w, config_json in zip(all_records, workdirs,
                                             config_jsons)]


