"""Runs a comparative study: datasets × strategies × seeds (× ablation axes).

  python experiments/benchmark.py --config=configs/benchmark_digits.py \
      --workdir=/tmp/bench_digits
  python experiments/report.py /tmp/bench_digits

Each cell is an experiment directory under --workdir. Running the same command
again skips finished cells and resumes unfinished ones from their checkpoints;
cells run with other settings stop it before any work (use a new --workdir).
List fields are set as comma-separated values:
`--config.seeds=0,1,2 --config.datasets=digits,digits-imb`. Problems a user
can fix end it with a one-line error (exit status 1; `jal.cli`).

Cells of a grid compile the same programs (seeds and strategies differ in
data, not in shapes), so XLA's persistent compilation cache, kept in
WORKDIR/jax_cache unless --compilation_cache says otherwise, spares most of
the recompilation (on a small CPU, most of a small cell's time).
"""

from jal import cli
from jal import study

_CONFIG = cli.define_config('configs/benchmark_digits.py',
                            'Benchmark config file.')
_WORKDIR = cli.define_workdir('Benchmark directory.')
_CACHE = cli.define_compilation_cache()


def main(argv):
  del argv
  cli.use_compilation_cache(_CACHE.value, _WORKDIR.value)
  study.run_grid(_CONFIG.value, _WORKDIR.value,
                 log=lambda line: print(line, flush=True))


if __name__ == '__main__':
  cli.run(main)
