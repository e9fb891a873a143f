"""Tests for jal.workdir: which stored runs count as the same experiment."""

import json

import pytest

from jal import config as config_lib
from jal import errors
from jal import workdir


def test_finished_run_before_new_fields_is_reused(tmp_path):
  config = config_lib.default()
  stored = json.loads(workdir.config_json(config))
  for field in ('validation_size', 'stopping', 'oracle_noise'):
    stored.pop(field)
  (tmp_path / 'config.json').write_text(json.dumps(stored))
  workdir.check_stored(str(tmp_path), config)
  config.validation_size = 10
  with pytest.raises(errors.CheckpointError, match='validation_size'):
    workdir.check_stored(str(tmp_path), config)
