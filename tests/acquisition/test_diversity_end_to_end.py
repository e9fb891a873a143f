"""Each diversity / hybrid / cold-start strategy through `jal.loop.run`."""

import json
import os

import pytest

from jal import loop

HPARAMS = {'cluster_margin': {'hac_sample': 300, 'num_clusters': 20}}


@pytest.mark.parametrize('name', ['kcenter', 'kmeans', 'badge', 'dbal',
                                  'cluster_margin', 'typiclust', 'probcover'])
def test_strategy_runs_in_the_loop(name, tiny_config, tmp_path):
  tiny_config.strategy = name
  tiny_config.num_epochs = 1
  tiny_config.num_rounds = 2
  tiny_config.hparams[name].update(HPARAMS.get(name, {}))
  summary = loop.run(tiny_config, str(tmp_path))
  with open(os.path.join(tmp_path, loop.RESULTS)) as f:
    records = [json.loads(line) for line in f]
  chosen = sum((r['selected'] for r in records), [])
  # The loop itself checks each query is distinct and unlabeled.
  assert [r['num_labeled'] for r in records] == [20, 30, 40]
  assert len(set(chosen)) == 20
  assert 0.0 < summary['final_accuracy'] <= 1.0
