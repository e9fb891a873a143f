"""Datasets for active learning: an unlabeled pool and a test set.

`load(name)` returns a `Dataset` of NHWC float32 images standardized with the
pool's statistics; `available()` lists the names. `random_crop_flip` augments
training batches. `image_folder`, `manifest` and `features` read a user's own
files into a `LocalPool`; `to_dataset` turns it into a `Dataset`.
"""

from jal.data.augment import random_crop_flip
from jal.data.catalog import available
from jal.data.catalog import load
from jal.data.dataset import Dataset
from jal.data.local import features
from jal.data.local import image_folder
from jal.data.local import LocalPool
from jal.data.local import manifest
from jal.data.local import to_dataset

__all__ = ['Dataset', 'LocalPool', 'available', 'features', 'image_folder',
           'load', 'manifest', 'random_crop_flip', 'to_dataset']
