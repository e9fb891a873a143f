"""Runs one active learning experiment and prints its learning curve.

  python experiments/run.py --config=configs/default.py --workdir=/tmp/jal
  python experiments/run.py --config=configs/mnist_deepal.py \
      --config.strategy=margin --workdir=/tmp/jal_mnist
  python experiments/run.py --config.strategy=power_bald \
      --config.hparams.power_bald.beta=2.0 --workdir=/tmp/jal_power

Running again with the same --workdir resumes where the last run stopped.

With JAL_COORDINATOR_ADDRESS, JAL_NUM_PROCESSES and JAL_PROCESS_ID set (by
experiments/launch.py, or by hand on each host) it runs on that many
processes (`jal.distributed_loop`): the pool's scoring is sharded over them,
process 0 writes --workdir.

  python experiments/launch.py --num_processes=2 -- \
      python experiments/run.py --workdir=/tmp/jal2
A bad config, flag or work directory, missing data or a full disk stops it
with a one-line error (exit status 1; `jal.cli`), before any work where it
can be seen before.
"""

from jal import cli
from jal import config as config_lib
from jal import distributed
from jal import distributed_loop
from jal import loop

_CONFIG = cli.define_config('configs/default.py', 'Experiment config file.')
_WORKDIR = cli.define_workdir('Experiment directory.')


def _print_round(record: dict) -> None:
  print(f"round {record['round']:3d}  labeled {record['num_labeled']:6d}  "
        f"test accuracy {record['test_accuracy']:.4f}  "
        f"(train {record['train_seconds']:.1f}s, "
        f"test {record['test_seconds']:.2f}s, "
        f"query {record['query_seconds']:.2f}s)", flush=True)


def main(argv):
  del argv
  config = _CONFIG.value
  config_lib.validate(config)
  run = loop.run
  if distributed.requested():
    distributed.initialize()
    run = distributed_loop.run
  if not distributed.is_writer():
    run(config, _WORKDIR.value)  # process 0 reports
    return
  processes = (f' on {distributed.num_processes()} processes'
               if distributed.num_processes() > 1 else '')
  print(f'{config.strategy} on {config.dataset} with {config.model}'
        f'{processes}; work directory {_WORKDIR.value}', flush=True)
  summary = run(config, _WORKDIR.value, on_round=_print_round)
  print(f"AUBC {summary['aubc']:.4f}  final accuracy "
        f"{summary['final_accuracy']:.4f}", flush=True)


if __name__ == '__main__':
  cli.run(main)
