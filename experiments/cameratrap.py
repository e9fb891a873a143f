"""Runs seed 001's camera-trap pipeline study and writes its figures.

  JAL_DATA_DIR=../shared/datasets python experiments/cameratrap.py \
      --config=configs/cameratrap_mnist.py --workdir=/tmp/cameratrap
  python experiments/report.py /tmp/cameratrap --targets=0.9,0.95

Runs every cell of the config's grid (embedding loss × strategy × seed) as
`jal.cameratrap.pipeline.run`, then writes WORKDIR/cameratrap.md (detector
figures, accuracy at each fine-tune, the jumps after fine-tunes, triplet
against cross-entropy, k-center against the others, labels to reach the
full-data head) and cameratrap.png. Running the same command again skips
finished cells and resumes the others exactly.
"""

from jal import cli
from jal.cameratrap import study

_CONFIG = cli.define_config('configs/cameratrap_mnist.py',
                            'Camera-trap study config file.')
_WORKDIR = cli.define_workdir('Study directory.')
_CACHE = cli.define_compilation_cache()


def main(argv):
  del argv
  cli.use_compilation_cache(_CACHE.value, _WORKDIR.value)
  study.check(_CONFIG.value)
  study.run(_CONFIG.value, _WORKDIR.value,
            log=lambda line: print(line, flush=True))
  print(study.write(_CONFIG.value, _WORKDIR.value), flush=True)


if __name__ == '__main__':
  cli.run(main)
