"""Runs an experiment that is killed after a round and then resumed."""

import pytest

from jal import loop


def run_interrupted(config, workdir: str, after_round: int = 1,
                    **kwargs) -> None:
  """`loop.run` stopped (KeyboardInterrupt) once round `after_round` is
  saved, then run again in the same `workdir` to its end."""

  def crash(record):
    if record['round'] == after_round:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    loop.run(config, workdir, on_round=crash, **kwargs)
  loop.run(config, workdir, **kwargs)
