"""Writes DIR/report.md and its figures for a benchmark directory.

  python experiments/report.py /tmp/bench_digits
"""

import sys

from absl import app

from jal import report


def main(argv):
  if len(argv) != 2:
    sys.exit('usage: python experiments/report.py BENCHMARK_DIR')
  print(report.write(argv[1]), flush=True)


if __name__ == '__main__':
  app.run(main)
