"""Writes DIR/report.md and its figures for a benchmark directory.

  python experiments/report.py /tmp/bench_digits

A missing or empty directory, or a cell with unreadable records, ends it with
a one-line error naming the file (exit status 1; `jal.cli`).
"""

from jal import cli
from jal import report


def main(argv):
  if len(argv) != 2:
    cli.fail('usage: python experiments/report.py BENCHMARK_DIR (the '
             '--workdir of experiments/benchmark.py).')
  print(report.write(argv[1]), flush=True)


if __name__ == '__main__':
  cli.run(main, positional_arguments=True)
