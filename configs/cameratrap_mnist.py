"""Seed 001's camera-trap pipeline scaled to MNIST: digits 0–4 → 5–9.

The embedder and the detector learn from digits 0–4 only; active learning
labels the 5–9 training images mixed with empty frames (75% of the pool,
as in Snapshot Serengeti) and is tested on the 5–9 test images.

Scaled from the seed, whose values `jal.cameratrap.pipeline.default()`
keeps (`configs/cameratrap_full.py`): its pool after detection holds about
850k animal frames, this one about 29k, and the budget keeps the seed's
share of it (25,000 labels, about 3%, becomes 1000). The steps are scaled
by 10 rather than by the pool's 30, so that a step still holds 20 frames:
100 initial labels (seed 1000), 20 per step (seed 100), a fine-tune every
200 labels (seed 2000): 45 steps and 4 fine-tunes where the seed has 240
and 12.

The grid: every strategy on triplet features (the seed's), and k-center on
cross-entropy features (the seed's triplet-against-CE figure), 3 seeds.

  JAL_DATA_DIR=../shared/datasets python experiments/cameratrap.py \\
      --config=configs/cameratrap_mnist.py --workdir=/tmp/cameratrap
  python experiments/report.py /tmp/cameratrap --targets=0.9,0.95
"""

import ml_collections

from jal.cameratrap import pipeline


def get_config():
  base = pipeline.default()
  base.initial_size = 100
  base.query_size = 20
  base.finetune_every = 200
  base.budget = 1000
  return ml_collections.ConfigDict(dict(
      base=base,
      grid=dict(triplet=pipeline.STRATEGIES,
                cross_entropy=('kcenter',)),
      seeds=(0, 1, 2)))
