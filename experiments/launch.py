"""Starts N processes of one jal command on this machine, as N hosts would.

  python experiments/launch.py --num_processes=2 -- \
      python experiments/run.py --config=configs/default.py --workdir=/tmp/jal2

Each process gets `JAL_COORDINATOR_ADDRESS=127.0.0.1:PORT` (a free port unless
`--port` is given), `JAL_NUM_PROCESSES=N` and `JAL_PROCESS_ID=i`, which
`jal.distributed.initialize` reads. Every output line is prefixed with the
process id (`[0] ...`). When a process fails or is killed, the launcher stops
the others and exits with a non-zero status, so the whole run can simply be
started again (a run with a --workdir resumes). Ctrl-C stops them all.

On N real hosts no launcher is needed: start the same command on each host
with the three variables set, the coordinator being host 0's address:

  JAL_COORDINATOR_ADDRESS=10.0.0.1:29500 JAL_NUM_PROCESSES=2 \
  JAL_PROCESS_ID=0 python experiments/run.py --workdir=/shared/jal   # host 0
  JAL_COORDINATOR_ADDRESS=10.0.0.1:29500 JAL_NUM_PROCESSES=2 \
  JAL_PROCESS_ID=1 python experiments/run.py --workdir=/shared/jal   # host 1
"""

import os
import signal
import subprocess
import sys
import threading
import time

from absl import flags

from jal import cli
from jal import distributed

_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', 2, 'How many processes to start.', lower_bound=1)
_PORT = flags.DEFINE_integer(
    'port', 0, 'Coordinator port on 127.0.0.1 (0: a free one).',
    lower_bound=0, upper_bound=65535)
_GRACE = flags.DEFINE_float(
    'grace_seconds', 5.0, 'After a process fails, how long the others get '
    'to stop on SIGTERM before SIGKILL.', lower_bound=0.0)


def _relay(index: int, stream, lock: threading.Lock) -> None:
  """Copies `stream`'s lines to stdout, each prefixed with `[index] `."""
  for line in iter(stream.readline, b''):
    with lock:
      sys.stdout.buffer.write(f'[{index}] '.encode() + line)
      sys.stdout.buffer.flush()
  stream.close()


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
  """SIGTERM to each running process's group, SIGKILL after `grace` s."""
  for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
    running = [p for p in procs if p.poll() is None]
    for p in running:
      try:
        os.killpg(p.pid, sig)
      except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(p.poll() is None
                                              for p in running):
      time.sleep(0.05)


def launch(command: list[str], num_processes: int, port: int = 0,
           grace: float = 5.0) -> int:
  """Runs `command` as `num_processes` processes; returns the exit status.

  0 when every process exits with 0; otherwise the first failure's status
  (128 + signal for a killed process), after the others were stopped.
  """
  address = f'127.0.0.1:{port or distributed.free_port()}'
  print(f'launch: {num_processes} processes, coordinator {address}: '
        f'{" ".join(command)}', flush=True)
  lock = threading.Lock()
  procs, relays = [], []
  failed = None
  try:
    for i in range(num_processes):
      env = dict(os.environ, **{
          distributed.COORDINATOR_ENV: address,
          distributed.NUM_PROCESSES_ENV: str(num_processes),
          distributed.PROCESS_ID_ENV: str(i), 'PYTHONUNBUFFERED': '1'})
      proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              start_new_session=True)
      procs.append(proc)
      relay = threading.Thread(target=_relay, args=(i, proc.stdout, lock),
                               daemon=True)
      relay.start()
      relays.append(relay)
    while failed is None and any(p.poll() is None for p in procs):
      for i, p in enumerate(procs):
        if p.poll() is not None and p.returncode != 0:
          failed = (i, p.returncode)
          break
      time.sleep(0.05)
    if failed is None:
      for i, p in enumerate(procs):
        if p.returncode != 0:
          failed = (i, p.returncode)
          break
  except KeyboardInterrupt:
    failed = (None, -signal.SIGINT)
  finally:
    _stop(procs, grace)
    for relay in relays:
      relay.join(timeout=5)
  if failed is None:
    return 0
  index, code = failed
  status = 128 - code if code < 0 else code
  who = 'interrupted' if index is None else (
      f'process {index} ' + (f'was killed by signal {-code}' if code < 0
                             else f'exited with status {code}'))
  print(f'launch: {who}; stopped the others. Run the same command again to '
        'resume a run that has a --workdir.', file=sys.stderr, flush=True)
  return status


def main(argv):
  command = argv[1:]
  if not command:
    cli.fail('no command: give it after --, e.g. python experiments/launch.py '
             '--num_processes=2 -- python experiments/run.py '
             '--workdir=/tmp/jal2')
  sys.exit(launch(command, _NUM_PROCESSES.value, _PORT.value, _GRACE.value))


if __name__ == '__main__':
  cli.run(main, positional_arguments=True)
