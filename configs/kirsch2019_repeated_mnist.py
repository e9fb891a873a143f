"""Kirsch, van Amersfoort & Gal (2019), Repeated MNIST: BatchBALD vs BALD.

The study of their Figure 2 / Section 4.1 as a jal grid: `batchbald` and
`bald` with acquisition size 10 against `random`, 5 seeds, from 20 initial
labels (2 per class) to 300. On a pool where every image appears three
times, top-10 BALD takes all copies of its best images and falls below
random; BatchBALD, scoring the batch jointly, does not.

Protocol, theirs → here:
- Data: MNIST's 60000 training images, three copies each with N(0, 0.1²)
  noise → the first 5000 training images three times (15000 rows, a fifth of
  their 180000 to fit a 2-core CPU), noise as theirs (`repeated_mnist`).
- Model: their BayesianNet (conv 32-5×5, conv 64-5×5, fc 128, dropout 0.5,
  ~8× the multiply-adds of DeepAL's CNN) → jal's `lenet` (DeepAL's CNN,
  dropout 0.5), to fit the CPU; `--config.base.model=bayesian_cnn` restores
  theirs.
- Training: Adam 1e-3, batch 64, epochs of 5056 samples, early stopping on
  validation accuracy (patience 3) → the same (`configs/mnist_bald_es.py`);
  the 1024 validation images come from the test set, not the training set.
- Posterior: consistent MC dropout, 100 passes → 20 passes; BatchBALD's
  joint entropy exact while C^(chosen) ≤ 10000, else 10000 sampled
  configurations (batchbald_redux's default).

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \\
      --config=configs/kirsch2019_repeated_mnist.py --workdir=/tmp/kirsch_rep
  python experiments/report.py /tmp/kirsch_rep --targets=0.9,0.95
"""

import os

import ml_collections

from jal import config as config_lib


def base_config(pool_size: int) -> ml_collections.ConfigDict:
  """BatchBALD's MNIST recipe (see the module docstring) on `pool_size`."""
  base = config_lib.from_file(
      os.path.join(os.path.dirname(__file__), 'mnist_bald_es.py'))
  base.pool_size = pool_size
  base.posterior_samples = 20
  base.hparams.batchbald.num_samples = 10000
  base.num_rounds = 28
  return base


def get_config():
  bench = ml_collections.ConfigDict()
  bench.base = base_config(pool_size=5000)
  bench.datasets = ('repeated_mnist',)
  bench.strategies = ('batchbald', 'bald', 'random')
  bench.seeds = (0, 1, 2, 3, 4)
  # Seed by seed: vmapped over 5 seeds, round 0 of gal2017_mnist.py did
  # not finish in 10 minutes on 2 shared cores, where one seed takes ~20 s.
  bench.vmap_trials = False
  return bench
