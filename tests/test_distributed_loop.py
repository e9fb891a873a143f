"""`jal.distributed_loop`: an experiment on two processes on 127.0.0.1, killed
and resumed, ends as the one-process `jal.loop.run` does."""

import json
import os
import sys

import pytest

from jal import distributed_loop
from jal import errors
from jal import loop
from tests import distributed_worker as worker


@pytest.mark.parametrize('field, value, message', [
    ('strategy', 'batchbald', 'no per-point score'),
    ('posterior', 'laplace', 'cannot be streamed'),
    ('hparams.kcenter.pca_dim', 2, 'pca_dim'),
])
def test_distributed_loop_refuses_before_any_work(tmp_path, field, value,
                                                  message):
  config = worker.make_config('kcenter' if 'kcenter' in field else 'bald')
  if field == 'hparams.kcenter.pca_dim':
    config.hparams.kcenter.pca_dim = value
  else:
    setattr(config, field, value)
  with pytest.raises(errors.ConfigError, match=message):
    distributed_loop.run(config, str(tmp_path / 'run'),
                         worker.make_dataset())
  assert not (tmp_path / 'run').exists()


def _without_timings(records):
  return [{k: v for k, v in r.items() if not k.endswith('_seconds')}
          for r in records]


def test_killed_two_process_run_resumes(tmp_path):
  """Process 1 dies after round 1; the launcher stops process 0; the run
  started again (by experiments/run.py) ends as the one-process run does."""
  workdir = str(tmp_path / 'two')
  killed = worker.run_worker('run', workdir, 'entropy', '1')
  assert killed.returncode != 0
  assert 'process 1 was killed by signal 9' in killed.stderr, (
      killed.stdout + killed.stderr)
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    assert len(f.readlines()) == 2  # rounds 0 and 1 were saved
  resumed = worker.launch(sys.executable, os.path.join(worker.ROOT, 'experiments', 'run.py'),
                   *worker.run_flags('entropy'), f'--workdir={workdir}')
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  assert '[0] round   3' in resumed.stdout and '[1] round' not in (
      resumed.stdout)
  reference = str(tmp_path / 'one')
  one_summary = loop.run(worker.make_config('entropy'), reference)
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    two = [json.loads(line) for line in f]
  with open(os.path.join(reference, 'results.jsonl')) as f:
    one = [json.loads(line) for line in f]
  assert _without_timings(two) == _without_timings(one)
  with open(os.path.join(workdir, 'summary.json')) as f:
    two_summary = json.load(f)
  assert two_summary['aubc'] == one_summary['aubc']
  assert sorted(os.listdir(workdir)) == sorted(os.listdir(reference))


def test_distributed_loop_in_one_process(tmp_path):
  """Without JAL_* settings the distributed loop is `loop.run`'s experiment."""
  config = worker.make_config('entropy')
  config.num_rounds = 1
  dataset = worker.make_dataset()
  summary = distributed_loop.run(config, str(tmp_path / 'a'), dataset)
  reference = loop.run(config, str(tmp_path / 'b'), dataset)
  assert summary['test_accuracy'] == reference['test_accuracy']
  with open(tmp_path / 'a' / 'results.jsonl') as f:
    a = [json.loads(line)['selected'] for line in f]
  with open(tmp_path / 'b' / 'results.jsonl') as f:
    b = [json.loads(line)['selected'] for line in f]
  assert a == b
