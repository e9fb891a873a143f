"""Times DeepAL's own query strategies on its MNIST protocol, for comparison.

The reference side of `bench_round.py`: it runs the PyTorch code of DeepAL
(Huang 2021, github.com/ej0cl6/deep-active-learning) unchanged, under the
protocol of `configs/mnist_deepal.py`: the first 40000 MNIST training images
as the pool, 10000 random initial labels, DeepAL's CNN trained by DeepAL's
`Net.train` (SGD lr 0.01 momentum 0.5, batch 64, 10 epochs), then one query
of 1000 from the 30000 unlabeled images per strategy. Run it and
`bench_round.py` in the same session and compare the two.

DeepAL's adversarial strategies attack one point at a time in a Python loop,
so their cost is linear in the number of unlabeled points: with
`--max_unlabeled=M` a strategy queries from the first M unlabeled points only
and the script also prints the time scaled to all of them.

It needs PyTorch (CPU is fine), tqdm and scikit-learn, and a checkout of
DeepAL; it does not import jal (and jal does not need PyTorch):

  python -m venv /tmp/torch && /tmp/torch/bin/pip install torch tqdm \
      scikit-learn
  git clone https://github.com/ej0cl6/deep-active-learning /tmp/deepal
  /tmp/torch/bin/python experiments/bench_deepal.py --deepal_dir=/tmp/deepal \
      --data_dir=../shared/datasets/mnist \
      --strategies=AdversarialBIM,AdversarialDeepFool --max_unlabeled=3000

DeepAL's `query` moves the network to CUDA when it is done; on a machine
without CUDA that call is made a no-op, nothing else is changed.
"""

import argparse
import gzip
import importlib
import os
import sys
import time

import numpy as np


def read_idx(path: str) -> np.ndarray:
  """An IDX file (raw or .gz) as a numpy array."""
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rb') as f:
    data = f.read()
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big')
                for i in range(ndim))
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(data_dir: str, name: str) -> str:
  for candidate in (name, name + '.gz'):
    path = os.path.join(data_dir, candidate)
    if os.path.exists(path):
      return path
  sys.exit(f'error: no {name}[.gz] in {data_dir}; pass --data_dir=DIR '
           'holding the MNIST IDX files.')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--deepal_dir', required=True,
                      help='A checkout of ej0cl6/deep-active-learning.')
  parser.add_argument('--data_dir', required=True,
                      help='Directory of the MNIST IDX files.')
  parser.add_argument('--strategies', default='AdversarialBIM',
                      help='Comma-separated DeepAL strategy class names.')
  parser.add_argument('--max_unlabeled', type=int, default=0,
                      help='Query from the first M unlabeled points only '
                      '(0: all of them).')
  parser.add_argument('--seed', type=int, default=1)
  args = parser.parse_args()

  import torch
  from torch.utils.data import Dataset
  sys.path.insert(0, args.deepal_dir)
  try:
    nets = importlib.import_module('nets')
    strategies = importlib.import_module('query_strategies')
  except ImportError as e:
    sys.exit(f'error: cannot import DeepAL from {args.deepal_dir}: {e}')

  class Handler(Dataset):
    """DeepAL's MNIST_Handler without torchvision: x/255, then (x−μ)/σ."""

    def __init__(self, images, labels):
      self.images, self.labels = images, labels

    def __getitem__(self, index):
      x = torch.from_numpy(self.images[index].astype(np.float32) / 255.)
      return (x[None] - 0.1307) / 0.3081, self.labels[index], index

    def __len__(self):
      return len(self.images)

  class Data:
    """DeepAL's `data.Data`, the parts its strategies and `Net` use."""

    def __init__(self, x_train, y_train, limit):
      self.X_train, self.Y_train = x_train, y_train
      self.n_pool = len(x_train)
      self.labeled_idxs = np.zeros(self.n_pool, dtype=bool)
      self.limit = limit

    def get_labeled_data(self):
      idxs = np.arange(self.n_pool)[self.labeled_idxs]
      return idxs, Handler(self.X_train[idxs], self.Y_train[idxs])

    def get_unlabeled_data(self):
      idxs = np.arange(self.n_pool)[~self.labeled_idxs]
      if self.limit:
        idxs = idxs[:self.limit]
      return idxs, Handler(self.X_train[idxs], self.Y_train[idxs])

    def get_train_data(self):
      return self.labeled_idxs.copy(), Handler(self.X_train, self.Y_train)

  np.random.seed(args.seed)
  torch.manual_seed(args.seed)
  x_train = read_idx(find(args.data_dir, 'train-images-idx3-ubyte'))[:40000]
  y_train = torch.from_numpy(read_idx(
      find(args.data_dir, 'train-labels-idx1-ubyte'))[:40000].astype(np.int64))
  data = Data(x_train, y_train, args.max_unlabeled)
  data.labeled_idxs[np.random.permutation(data.n_pool)[:10000]] = True
  unlabeled = int((~data.labeled_idxs).sum())
  queried = min(unlabeled, args.max_unlabeled or unlabeled)

  params = {'n_epoch': 10,
            'train_args': {'batch_size': 64, 'num_workers': 1},
            'test_args': {'batch_size': 1000, 'num_workers': 1},
            'optimizer_args': {'lr': 0.01, 'momentum': 0.5}}
  net = nets.Net(nets.MNIST_Net, params, torch.device('cpu'))
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads')
  start = time.perf_counter()
  net.train(data.get_labeled_data()[1])
  print(f'train: 10000 labeled, 10 epochs, batch 64: '
        f'{time.perf_counter() - start:.2f} s', flush=True)
  if not torch.cuda.is_available():
    net.clf.cuda = lambda: net.clf

  print(f'query 1000 of {queried} unlabeled (of {unlabeled}), seconds:')
  for name in args.strategies.split(','):
    strategy = getattr(strategies, name)(data, net)
    start = time.perf_counter()
    strategy.query(1000)
    seconds = time.perf_counter() - start
    scaled = seconds * unlabeled / queried
    print(f'  {name:26s} {seconds:9.2f}   scaled to {unlabeled}: '
          f'{scaled:9.2f} ({1e3 * seconds / queried:.2f} ms per point)',
          flush=True)


if __name__ == '__main__':
  main()
