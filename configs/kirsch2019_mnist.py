"""Kirsch, van Amersfoort & Gal (2019), MNIST: BatchBALD vs BALD vs random.

Their Figure 4 / Table 1 as a jal grid: `batchbald` and `bald` with
acquisition size 10 against `random`, 5 seeds, from 20 initial labels (2 per
class) to 300; they report the labels needed to reach 90% and 95% test
accuracy. Their protocol and where this departs from it are in
`kirsch2019_repeated_mnist.py`; here the pool is the first 10000 MNIST
training images (theirs: all 60000 less their validation set). BALD with
acquisition size 1 is `kirsch2019_bald_b1.py`.

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \\
      --config=configs/kirsch2019_mnist.py --workdir=/tmp/kirsch_mnist
  python experiments/report.py /tmp/kirsch_mnist --targets=0.9,0.95
"""

import os

from jal import config as config_lib


def get_config():
  bench = config_lib.from_file(
      os.path.join(os.path.dirname(__file__), 'kirsch2019_repeated_mnist.py'))
  bench.base.pool_size = 10000
  bench.datasets = ('mnist',)
  return bench
