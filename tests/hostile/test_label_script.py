"""Hostile inputs to experiments/label.py: one `error:` line, nothing lost."""

import os

import pytest

from jal.data import digits
from tests import files
from tests.hostile.test_scripts import REPO, _assert_one_line_error, _run

LABEL = os.path.join(REPO, 'experiments', 'label.py')
TINY = ['--config.num_epochs=1', '--config.initial_size=10',
        '--config.query_size=10']


def _campaign_files(workdir):
  """The campaign's files, without the compilation cache."""
  return {path: data for path, data in files.snapshot(workdir).items()
          if not path.startswith('jax_cache')}


@pytest.fixture(scope='module')
def campaign(tmp_path_factory):
  """A campaign on 60 digit PNGs with its first batch open and half told."""
  root = tmp_path_factory.mktemp('label')
  truth = digits.write_image_folder(str(root / 'pool'), num_unlabeled=60,
                                    test_root=str(root / 'test'),
                                    test_per_class=2)
  workdir = root / 'campaign'
  result = _run(LABEL, f'--workdir={workdir}', 'create',
                f'--images={root / "pool"}', f'--test_images={root / "test"}',
                *TINY)
  assert result.returncode == 0, result.stderr
  batch = root / 'batch.csv'
  assert _run(LABEL, f'--workdir={workdir}', 'ask',
              f'--out={batch}').returncode == 0
  lines = batch.read_text().splitlines()
  ids = [line.split(',')[0] for line in lines[1:]]
  half = root / 'half.csv'
  half.write_text('id,label\n' + ''.join(f'{i},{truth[i]}\n'
                                         for i in ids[:5]))
  assert _run(LABEL, f'--workdir={workdir}', 'tell',
              f'--labels={half}').returncode == 0
  return root, workdir, ids, truth


@pytest.mark.parametrize('args, names', [
    ([], ['usage', 'create|ask|tell|status|label']),
    (['relabel'], ['usage', 'relabel']),
    (['tell'], ['--labels']),
    (['tell', '--labels={root}/missing.csv'], ['missing.csv']),
    (['tell', '--labels={root}/unknown.csv'], ['not in the open batch']),
    (['tell', '--labels={root}/badclass.csv'], ['cat']),
    (['ask', '--n=0'], ['n']),
    (['create', '--images={root}/pool'], ['already holds a campaign']),
])
def test_label_refusals_keep_the_campaign(campaign, args, names):
  root, workdir, ids, _ = campaign
  (root / 'unknown.csv').write_text('id,label\nnot/an/item.png,3\n')
  (root / 'badclass.csv').write_text(f'id,label\n{ids[7]},cat\n')
  before = _campaign_files(workdir)
  result = _run(LABEL, f'--workdir={workdir}',
                *[a.format(root=root) for a in args])
  _assert_one_line_error(result, *names)
  assert _campaign_files(workdir) == before


@pytest.mark.parametrize('args, names', [
    (['ask'], ['holds no campaign', 'create']),
    (['create'], ['exactly one pool source']),
    (['create', '--images={root}/nowhere'], ['nowhere']),
    (['create', '--images={root}/pool', '--image_size=28'], ['--image_size']),
])
def test_label_refusals_before_a_campaign(campaign, tmp_path, args, names):
  root = campaign[0]
  result = _run(LABEL, f'--workdir={tmp_path / "new"}',
                *[a.format(root=root) for a in args])
  _assert_one_line_error(result, *names)
