"""A small comparative study on digits: every registered strategy, 3 seeds.

An MLP, 10 epochs, 20 initial labels and 8 rounds of 20: CPU minutes for the
whole grid. `strategies = 'all'` takes every strategy registered when the grid
runs.

  python experiments/benchmark.py --config=configs/benchmark_digits.py \
      --workdir=/tmp/bench_digits
"""

import ml_collections

from jal import config as config_lib


def get_config():
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.dataset = 'digits'
  base.model = 'mlp'
  base.num_epochs = 10
  base.initial_size = 20
  base.query_size = 20
  base.num_rounds = 8
  bench.base = base
  # Tuples and strings, which the command line sets as comma-separated
  # values: --config.seeds=0,1,2 --config.strategies=random,entropy.
  bench.datasets = ('digits',)
  bench.strategies = 'all'
  bench.seeds = (0, 1, 2)
  bench.query_sizes = ()
  bench.epochs = ()
  bench.budget = 0  # 0: base.num_rounds rounds
  # BatchBALD's default of 1e5 sampled configurations takes minutes per
  # round on a small CPU; 1000 keeps it in seconds.
  base.hparams.batchbald.num_samples = 1000
  bench.vmap_trials = True
  # On a CPU, MC-dropout passes vmapped over seeds ran slower than seed by
  # seed (experiments/bench_trials.py); deterministic ones ran faster.
  bench.vmap_trials_except_needs = ('mc_log_probs',)
  return bench
