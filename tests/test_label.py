"""experiments/label.py end to end: a campaign on a folder of digit PNGs.

Each command runs in its own process, as a person would run them, with the
labels written into the batch CSV by hand (here: from the digits' truth), and
one `tell` killed while it trains. The campaign must end exactly where the
simulated loop ends with the same config and seed.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from jal import config as config_lib
from jal import loop
from jal.data import local
from tests import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'experiments', 'label.py')
OVERRIDES = ('--config.num_epochs=3', '--config.initial_size=20',
             '--config.query_size=20', '--config.num_rounds=4')


def _label(workdir, *args, wait=True):
  command = [sys.executable, SCRIPT, f'--workdir={workdir}', *args]
  env = dict(os.environ, PYTHONPATH=REPO)
  if not wait:
    return subprocess.Popen(command, env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  done = subprocess.run(command, env=env, cwd=REPO, capture_output=True,
                        text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr
  return done.stdout


def _fill_in(batch_csv, answers_csv, truth):
  """Writes the batch back with its `label` column filled, as a person would."""
  with open(batch_csv, newline='') as f:
    rows = list(csv.DictReader(f))
  assert rows and all(row['label'] == '' for row in rows)
  with open(answers_csv, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
      writer.writerow(dict(row, label=str(truth[row['id']])))
  return [row['id'] for row in rows]


def test_campaign_on_png_folder_equals_simulated_run(tmp_path):
  pool_root, test_root = str(tmp_path / 'pool'), str(tmp_path / 'test')
  truth = synthetic.write_digits_image_folder(
      pool_root, num_unlabeled=300, test_root=test_root, test_per_class=20)
  workdir = str(tmp_path / 'campaign')
  _label(workdir, 'create', f'--images={pool_root}',
         f'--test_images={test_root}', *OVERRIDES)
  asked = []
  for round_ in range(5):
    batch, answers = str(tmp_path / 'batch.csv'), str(tmp_path / 'done.csv')
    _label(workdir, 'ask', f'--out={batch}')
    asked.append(_fill_in(batch, answers, truth))
    if round_ == 2:  # killed while it trains, then told again
      process = _label(workdir, 'tell', f'--labels={answers}', wait=False)
      time.sleep(4)
      process.send_signal(signal.SIGKILL)
      process.wait()
    _label(workdir, 'tell', f'--labels={answers}')
  status = _label(workdir, 'status')
  assert '100 of 300 items labeled' in status

  with open(os.path.join(workdir, 'results.jsonl')) as f:
    records = [json.loads(line) for line in f]
  assert [r['selected_ids'] for r in records[:4]] == asked[1:]

  config = config_lib.from_file(os.path.join(REPO, 'configs',
                                             'label_default.py'))
  config.num_epochs, config.initial_size = 3, 20
  config.query_size, config.num_rounds = 20, 4
  pool = local.image_folder(pool_root, class_names=[str(c) for c in range(10)])
  labels = np.asarray([truth[i] for i in pool.ids], np.int32)
  dataset = local.to_dataset(pool._replace(labels=labels),
                             local.image_folder(test_root))
  loop.run(config, str(tmp_path / 'simulated'), dataset)
  with open(tmp_path / 'simulated' / 'results.jsonl') as f:
    simulated = [json.loads(line) for line in f]
  assert [r['selected'] for r in records] == [r['selected'] for r in simulated]
  assert [r['test_accuracy'] for r in records] == [
      r['test_accuracy'] for r in simulated]
  exp, data = loop.setup(config, dataset)
  initial = np.flatnonzero(np.asarray(loop.init_state(exp, data,
                                                      None).labeled_mask))
  assert set(asked[0]) == {pool.ids[i] for i in initial}
  assert sum(map(len, asked)) == len(set().union(*asked)) == 100
