"""Gal, Islam & Ghahramani (2017), MNIST: Bayesian acquisition functions.

Their Figure 1 / Table 1 as a jal grid: `bald`, `entropy_dropout` (max entropy of
the MC-dropout predictive), `var_ratio` (variation ratios: 1 - the modal
class's share of the K passes) and `mean_std` against `random`, 5 seeds,
from 20 initial labels (2 per class), 10 labels a round. They report the
labels each needs to reach 10% and 5% test error.

Protocol, theirs → here:
- Data: MNIST, 20 balanced initial labels, 100 validation images (to pick
  the weight decay), test on the 10000 test images, the rest of the training
  set as the pool → the same pool (all 60000 training images less nothing:
  no validation set, the weight decay is fixed below).
- Query: each round the acquisition function scores a random 2000 of the
  unlabeled pool (`pool_subsample`) with 100 MC-dropout passes → the same
  subsample with 20 passes (consistent MC dropout).
- Budget: 98 rounds to 1000 labels → 28 rounds to 300 labels, on a 2-core
  CPU (their 10%-error points all lie below 300 labels; of the 5%-error
  ones only variation ratios' 295); `--config.base.num_rounds=98` for
  theirs.
- Model: conv 4×4 (32) → ReLU → conv 4×4 (32) → ReLU → max-pool → dropout
  0.25 → fc 128 → ReLU → dropout 0.5 → fc 10 (`gal_cnn`), with an L2
  penalty 3.5/N on the fc-128 weights (N the labeled count) → here the
  study runs DeepAL's smaller CNN (`lenet`, dropout 0.5; ~25× fewer
  multiply-adds), without weight decay; `--config.base.model=gal_cnn`
  restores their network (the N-scaled penalty jal does not have).
- Training: Adam (Keras's default, lr 1e-3), batch 128, 50 epochs, a fresh
  model each round, deterministic test predictions → the same, but an epoch
  takes at least 640 samples (`epoch_samples`: 5 steps of 128, 250 steps a
  round while the labeled set is under 640). With their one pass an epoch,
  20-200 labels get 50-100 steps: measured on seed 0, `lenet` then stays at
  42-64% test accuracy from 20 to 140 labels (BALD), far under their
  curves; their wider network learns faster per step.

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \\
      --config=configs/gal2017_mnist.py --workdir=/tmp/gal2017
  python experiments/report.py /tmp/gal2017 --targets=0.9,0.95
"""

import ml_collections

from jal import config as config_lib


def get_config():
  base = config_lib.default()
  base.dataset = 'mnist'
  base.pool_size = None
  base.model = 'lenet'
  base.dropout_rate = 0.5
  base.optimizer = 'adam'
  base.learning_rate = 1e-3
  base.batch_size = 128
  base.num_epochs = 50
  base.epoch_samples = 640
  base.posterior = 'mc_dropout'
  base.posterior_samples = 20
  base.pool_subsample = 2000
  base.initial_size = 20
  base.initial_per_class = 2
  base.query_size = 10
  base.num_rounds = 28
  bench = ml_collections.ConfigDict()
  bench.base = base
  bench.datasets = ('mnist',)
  bench.strategies = ('bald', 'entropy_dropout', 'var_ratio', 'mean_std',
                      'random')
  bench.seeds = (0, 1, 2, 3, 4)
  # Seed by seed: vmapped over 5 seeds, round 0 did not finish in 10
  # minutes on 2 shared cores, where one seed takes ~20 s.
  bench.vmap_trials = False
  return bench
