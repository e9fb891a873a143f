"""experiments/batchbald_paper_runs.py on two hand-written run files."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_run(path, step, accuracies):
  lines = ['store = {}',
           f"store['args']={{'available_sample_k': {step}, "
           "'num_inference_samples': 100}",
           "store['iterations']=[]",
           "store['initial_samples']=[1, 2, 3, 4]"]
  lines += [f"store['iterations'].append({{'num_epochs': 1, 'test_metrics': "
            f"{{'accuracy': {a}, 'nll': 0.1}}, 'chosen_samples': [0]}})"
            for a in accuracies]
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def test_labels_to_each_target_per_run_and_quartiles(tmp_path):
  # Counts are 4 initial + 10 per acquisition: 4, 14, 24, 34.
  _write_run(tmp_path / 'mnist_x_b10_11.py', 10, [0.5, 0.91, 0.93, 0.96])
  _write_run(tmp_path / 'mnist_x_b10_22.py', 10, [0.5, 0.6, 0.92, 0.94])
  out = subprocess.run(
      [sys.executable, os.path.join(REPO, 'experiments',
                                    'batchbald_paper_runs.py'),
       f'--runs={tmp_path}', '--groups=mnist_x_b10', '--targets=0.9,0.95'],
      capture_output=True, text=True, check=True).stdout
  assert 'mnist_x_b10: 2 runs, 100 MC samples, last count 34' in out
  assert '90%: runs 14, 24; quartiles 16.5 / 19 / 21.5' in out
  assert '95%: runs 34, >34; quartiles' in out
