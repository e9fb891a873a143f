"""Datasets for active learning: an unlabeled pool and a test set.

`load(name)` returns a `Dataset` of NHWC float32 images standardized with the
pool's statistics; `available()` lists the names. `random_crop_flip` augments
training batches.
"""

from jal.data.augment import random_crop_flip
from jal.data.catalog import available
from jal.data.catalog import load
from jal.data.dataset import Dataset

__all__ = ['Dataset', 'available', 'load', 'random_crop_flip']
