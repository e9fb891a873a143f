"""Kirsch, van Amersfoort & Gal (2019), MNIST: BALD acquiring one point a round.

The reference line of their Figure 4: BALD with acquisition size 1, where
top-b redundancy cannot arise, against which BatchBALD with b = 10
(`kirsch2019_mnist.py`) should lose little. The protocol is
`kirsch2019_mnist.py`'s with `query_size = 1`: 280 rounds (a model trained
280 times) from 20 to 300 labels, 5 seeds.

  JAL_DATA_DIR=../shared/datasets python experiments/benchmark.py \\
      --config=configs/kirsch2019_bald_b1.py --workdir=/tmp/kirsch_b1
"""

import os

from jal import config as config_lib


def get_config():
  bench = config_lib.from_file(
      os.path.join(os.path.dirname(__file__), 'kirsch2019_mnist.py'))
  bench.strategies = ('bald',)
  bench.base.query_size = 1
  bench.base.num_rounds = 280
  return bench
