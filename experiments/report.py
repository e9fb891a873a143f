"""Writes DIR/report.md and its figures for a benchmark directory.

  python experiments/report.py /tmp/bench_digits [--targets=0.9,0.95]

`--targets` adds the labels each strategy needs to reach each test accuracy.

A missing or empty directory, or a cell with unreadable records, ends it with
a one-line error naming the file (exit status 1; `jal.cli`).
"""

from absl import flags

from jal import cli
from jal import report

_TARGETS = flags.DEFINE_list(
    'targets', [], 'Test accuracies (fractions) for the labels-to-target table.')


def main(argv):
  if len(argv) != 2:
    cli.fail('usage: python experiments/report.py BENCHMARK_DIR (the '
             '--workdir of experiments/benchmark.py).')
  try:
    targets = [float(t) for t in _TARGETS.value]
  except ValueError:
    cli.fail(f'--targets={",".join(_TARGETS.value)}: give accuracies as '
             'fractions, e.g. --targets=0.9,0.95.')
  print(report.write(argv[1], targets=targets), flush=True)


if __name__ == '__main__':
  cli.run(main, positional_arguments=True)
