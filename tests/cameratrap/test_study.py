"""The camera-trap study: cells, resume, its own report and jal's."""

import os

import ml_collections
import pytest

from jal import errors
from jal import report
from jal.cameratrap import study
from tests.cameratrap.test_pipeline import small_config


def tiny_study():
  base = small_config(budget=60, finetune_every=45, head_steps=50)
  return ml_collections.ConfigDict(dict(
      base=base, grid=dict(cross_entropy=('kcenter', 'random')),
      seeds=(0, 1)))


def test_finetune_jumps_split_the_changes_by_round():
  records = [dict(test_accuracy=a, finetuned=f) for a, f in
             [(0.5, False), (0.6, False), (0.8, True), (0.75, False)]]
  at, elsewhere = study.finetune_jumps(records)
  assert at == pytest.approx([0.2])
  assert elsewhere == pytest.approx([0.1, -0.05])


def test_study_runs_every_cell_and_both_reports_read_it(tmp_path):
  bench = tiny_study()
  workdir = str(tmp_path)
  lines = []
  study.run(bench, workdir, log=lines.append)
  for cell in study.cells(bench):
    assert os.path.exists(os.path.join(workdir, cell.path, 'summary.json'))
  # One preparation and one full-data reference per (seed, loss).
  assert sum('training the detector' in line for line in lines) == 2
  text = study.write(bench, workdir)
  assert '| cross_entropy | kcenter |' in text
  assert '| cross_entropy | 1 | 0.' in text  # the detector's row of seed 1
  assert 'Labels to reach the full-data head' in text
  assert os.path.exists(os.path.join(workdir, study.FIGURE))
  with open(report.write(workdir, targets=[0.5])) as f:
    markdown = f.read()
  assert 'kcenter' in markdown and 'random' in markdown
  # A second run finds everything done and trains nothing.
  again = []
  study.run(bench, workdir, log=again.append)
  assert again == []


@pytest.mark.parametrize('change, match', [
    (lambda b: b.update(dict(grid={'hinge': ('kcenter',)})), 'hinge'),
    (lambda b: b.update(dict(grid={'triplet': ('bald',)})), 'bald'),
    (lambda b: b.update(dict(seeds=(-1,))), 'seeds'),
])
def test_bad_study_configs_are_refused(change, match):
  bench = tiny_study()
  change(bench)
  with pytest.raises(errors.ConfigError, match=match):
    study.check(bench)
