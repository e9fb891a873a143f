"""The labels-to-accuracy figures of BatchBALD's own published runs.

  git clone https://github.com/BlackHC/BatchBALD /tmp/BatchBALD
  python experiments/batchbald_paper_runs.py --runs=/tmp/BatchBALD/laaos_results/paper

Kirsch et al. (2019) published every run behind their figures as a Python
file of literals (`store['args']`, `store['initial_samples']`, one
`store['iterations'].append({...})` per acquisition, whose test accuracy is
the model's after training on the initial set and the acquisitions before
it). This reads them without executing them (`ast.literal_eval`) and prints,
for each group of runs, the labels each run needs to reach each target and
their 25/50/75% quantiles (Table 1's layout), to set next to jal's
`report.py --targets` on the same protocol.
"""

import ast
import collections
import os
import re

import numpy as np
from absl import app
from absl import flags

_RUNS = flags.DEFINE_string('runs', None, 'Directory of the run files.',
                            required=True)
_TARGETS = flags.DEFINE_list('targets', ['0.9', '0.95'], 'Test accuracies.')
_GROUPS = flags.DEFINE_list(
    'groups', ['mnist_independent_bald_k100_b1', 'bald_mnist',
               'mnist_independent_bald_k100_b10',
               'mnist_multibald_bald_k100_b10',
               'repeated_mnist_w_noise2_independent_random_k10_b10',
               'repeated_mnist_w_noise2_independent_bald_k10_b10',
               'repeated_mnist_w_noise2_multibald_bald_k10_b10'],
    'Run-name prefixes (the name less its trailing seed).')


_NEVER = 1e9


def read_run(path: str) -> tuple[dict, list[int], list[float]]:
  """A run's arguments, labeled counts and test accuracies."""
  args, initial, accuracies = {}, [], []
  with open(path) as f:
    for line in f:
      if line.startswith("store['args']="):
        args = ast.literal_eval(line.split('=', 1)[1])
      elif line.startswith("store['initial_samples']="):
        initial = ast.literal_eval(line.split('=', 1)[1])
      elif line.startswith("store['iterations'].append("):
        record = ast.literal_eval(line.strip()[len(
            "store['iterations'].append("):-1])
        accuracies.append(record['test_metrics']['accuracy'])
  step = args['available_sample_k']
  counts = [len(initial) + i * step for i in range(len(accuracies))]
  return args, counts, accuracies


def labels_to(counts, accuracies, target: float) -> float:
  """The first count at `target` or above; inf if the run never gets there."""
  return next((c for c, a in zip(counts, accuracies) if a >= target),
              float('inf'))


def main(argv):
  del argv
  groups = collections.defaultdict(list)
  for name in sorted(os.listdir(_RUNS.value)):
    match = re.match(r'(.+?)_\d+(_[\d-]+)?\.py$', name)
    if match and match.group(1) in _GROUPS.value:
      groups[match.group(1)].append(os.path.join(_RUNS.value, name))
  targets = [float(t) for t in _TARGETS.value]
  for group in _GROUPS.value:
    runs = [read_run(path) for path in groups.get(group, [])]
    if not runs:
      print(f'{group}: no runs')
      continue
    samples = runs[0][0].get('num_inference_samples')
    print(f'{group}: {len(runs)} runs, {samples} MC samples, last count '
          f'{max(r[1][-1] for r in runs)}')
    for target in targets:
      reached = [labels_to(c, a, target) for _, c, a in runs]
      # A run that never gets there counts as beyond any count.
      quartiles = np.percentile(np.minimum(reached, _NEVER), [25, 50, 75])
      shown = ', '.join('>' + str(runs[i][1][-1]) if np.isinf(v) else
                        str(int(v)) for i, v in enumerate(reached))
      print(f'  {target:.0%}: runs {shown}; quartiles ' + ' / '.join(
          '>last' if q > _NEVER / 2 else f'{q:g}'
          for q in quartiles))


if __name__ == '__main__':
  app.run(main)
