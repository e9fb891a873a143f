"""Seed 001's camera-trap pipeline at its own scale, on MNIST 0–4 → 5–9.

Norouzzadeh et al. (2019) as reported: 1000 random initial labels, 100 per
step chosen by k-center on triplet features, the embedder fine-tuned every
2000 labels, 25,000 labels; a detector threshold of 0.9 and 75% empty
frames (Snapshot Serengeti). On MNIST's 29k target frames this labels most
of the pool; it is the reference for `cameratrap_mnist.py`'s scaling, and a
day's run on a 2-core CPU.

  JAL_DATA_DIR=../shared/datasets python experiments/cameratrap.py \\
      --config=configs/cameratrap_full.py --workdir=/tmp/cameratrap_full
"""

import ml_collections

from jal.cameratrap import pipeline


def get_config():
  return ml_collections.ConfigDict(dict(
      base=pipeline.default(), grid=dict(triplet=('kcenter',)), seeds=(0,)))
