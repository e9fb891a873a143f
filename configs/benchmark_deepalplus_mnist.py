"""DeepAL+'s 17 methods plus SRAAL and DAL on MNIST, DeepAL+'s demo protocol.

DeepAL+ (Zhan et al. 2022) README demo: `-s 100 -q 1000 -b 100 -d MNIST -t 3`,
i.e. 100 random initial labels, 100 per round, a budget of 1000, 3 trials;
Adam (lr 1e-3), training batch 128, 20 epochs, a fresh model every round.
To run on a 2-core CPU this uses DeepAL's small CNN (`lenet`, dropout 0.5)
instead of ResNet-18, and a pool of the first 10000 training images: WAAL's
epochs pass over the whole pool (max(|L|, |U|) pairs) and VAAL and DeepFool
train or attack over it at every query, so a 60000-image pool would cost
hours per seed. `--config.base.pool_size=60000` restores the full pool;
`configs/benchmark_deepalplus_mnist_resnet.py` is the same grid with
DeepAL+'s ResNet-18 for accelerators.

DeepAL+ names → jal strategies: Random, Entropy, Margin, LeastConf →
random, entropy, margin, least_confidence; EntropyD, MarginD, LeastConfD,
BALD, MeanSTD → entropy_dropout, margin_dropout, least_confidence_dropout,
bald, mean_std (MC dropout passes; DeepAL+'s noise is batch norm in train
mode, `config.posterior='bn_train'` with a batch-norm model); VarRatio →
var_ratio_deepalplus (1 − max p, one pass); KMeans, KCenter, BADGE → kmeans,
kcenter, badge; CEAL(Entropy) → ceal; AdversarialBIM, AdversarialDeepFool →
adversarial_bim, adversarial_deepfool; WAAL, VAAL, LPL → waal, vaal, lpl.
Plus sraal (seed 001) and discriminative (Gissin & Shalev-Shwartz). Each runs
with its paper's defaults; DeepAL+'s code departures are hyperparameters
(e.g. `--config.base.hparams.ceal.delta=5e-5
--config.base.hparams.ceal.decay=cumulative`).

VAAL's and SRAAL's conv VAEs trained for 30 epochs over the pool at every
query take over 12 minutes a query on a 2-core CPU; the CPU study ran them
with `--config.base.hparams.vaal.architecture=mlp
--config.base.hparams.vaal.num_epochs=5` (the same for sraal). WAAL's lead
is a matter of training steps: `--config.base.hparams.waal.epoch_mode=labeled`
trains it for as many steps as the others (its step-matched ablation).

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \
      --config=configs/benchmark_deepalplus_mnist.py --workdir=/tmp/dalp
  JAL_DATA_DIR=../shared/datasets python experiments/full_training.py \
      --config=configs/benchmark_deepalplus_mnist.py --workdir=/tmp/dalp
  python experiments/report.py /tmp/dalp
"""

import ml_collections

from jal import config as config_lib

DEEPALPLUS_METHODS = (
    'random', 'entropy', 'margin', 'least_confidence', 'entropy_dropout',
    'margin_dropout', 'least_confidence_dropout', 'bald', 'mean_std',
    'var_ratio_deepalplus', 'kmeans', 'kcenter', 'badge', 'ceal',
    'adversarial_bim', 'adversarial_deepfool', 'waal', 'vaal', 'lpl')
OTHERS = ('sraal', 'discriminative')


def get_config():
  bench = ml_collections.ConfigDict()
  base = config_lib.default()
  base.dataset = 'mnist'
  base.pool_size = 10000
  base.model = 'lenet'
  base.dropout_rate = 0.5
  base.optimizer = 'adam'
  base.learning_rate = 1e-3
  base.batch_size = 128
  base.num_epochs = 20
  base.initial_size = 100
  base.query_size = 100
  base.num_rounds = 9
  bench.base = base
  bench.datasets = ('mnist',)
  bench.strategies = ','.join(DEEPALPLUS_METHODS + OTHERS)
  bench.seeds = (0, 1, 2)
  bench.query_sizes = ()
  bench.epochs = ()
  bench.budget = 0
  bench.vmap_trials = True
  bench.vmap_trials_except_needs = ('mc_log_probs',)
  return bench
