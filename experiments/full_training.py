"""Trains a benchmark's full-training reference: the model on the whole pool.

  python experiments/full_training.py --config=configs/benchmark_mnist.py \
      --workdir=/tmp/bench_mnist
  python experiments/report.py /tmp/bench_mnist

For every dataset, epochs setting and seed of the benchmark config, trains
the base config's model with its protocol on every pool example and writes
WORKDIR/<dataset>/full_training.json (`jal.full_training`), which the report
shows as a reference row and line. Running it again skips what is stored.
"""

from jal import cli
from jal import full_training

_CONFIG = cli.define_config('configs/benchmark_digits.py',
                            'Benchmark config file.')
_WORKDIR = cli.define_workdir('Benchmark directory.')
_CACHE = cli.define_compilation_cache()


def main(argv):
  del argv
  cli.use_compilation_cache(_CACHE.value, _WORKDIR.value)
  full_training.run(_CONFIG.value, _WORKDIR.value,
                    log=lambda line: print(line, flush=True))


if __name__ == '__main__':
  cli.run(main)
