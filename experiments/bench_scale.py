"""Selection over large pools, in memory vs streamed from disk: speed, memory.

Writes its own synthetic pools under `--workdir` (standard-normal float32
features [N, D], `.npy` files written chunk by chunk and reused by later
runs), then runs each case in a fresh subprocess so that its peak resident
memory (`ru_maxrss`) is its own:

- `entropy` and `bald` (MC dropout, K = `--posterior_samples` consistent
  passes) scoring with an MLP head (D → 256 → 10, random weights) over pools
  of each `--sizes` entry: `memory` (the pool loaded, `rounds.predictions`
  and the strategy, jitted) for sizes up to `--max_memory_size`, `stream`
  (`jal.stream.streamed_select` over the `.npy` memory map) for all;
- `kcenter` with `--query_size` picks over `--kcenter_size` × D features:
  `memory` (`kcenter_select`) and `stream` (`jal.stream.streamed_kcenter`
  from the memory map).

Printed per case: points/s (pool rows per second of selection, compilation
excluded: streamed cases first run once on the pool's first chunk, which
compiles the per-chunk steps and the exchanges), selection and compilation
seconds, the pool file's size, the
peak RSS and the runtime's RSS before the pool is touched, and whether the
streamed picks are the in-memory ones when both ran: the same set, and in
the same order (near-tied scores may swap, as float32 rounding differs with
the chunk shape).

  python experiments/bench_scale.py --workdir=/tmp/scale               # full
  python experiments/bench_scale.py --workdir=/tmp/scale --sizes=1e4 \
      --kcenter_size=2e4 --query_size=50                               # small

`--num_processes=2` runs the streamed cases on 2 local processes started by
`experiments/launch.py` (each reads its shard of the memory map; candidates
and picks are exchanged with `jal.distributed.gather`); the peak RSS shown is
the largest over the processes, the time the slowest process's.
"""

import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

from jal import acquisition
from jal import config as config_lib
from jal import models
from jal import rounds
from jal import stream
from jal.acquisition.kcenter import kcenter_select
from jal.models.mlp import MLP

_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the pools and results '
                               'go.', required=True)
_SIZES = flags.DEFINE_list('sizes', ['1e5', '1e6', '1e7'],
                           'Pool sizes N of the scoring cases.')
_MAX_MEMORY = flags.DEFINE_float('max_memory_size', 1e6,
                                 'Largest N also run in memory.')
_KCENTER_SIZE = flags.DEFINE_float('kcenter_size', 1e6,
                                   'N of the kcenter cases (0: none).')
_DIM = flags.DEFINE_integer('dim', 128, 'Features per pool row, D.')
_QUERY = flags.DEFINE_integer('query_size', 1000, 'Points to select.')
_LABELED = flags.DEFINE_integer('labeled', 1000, 'Labeled pool points.')
_CHUNK = flags.DEFINE_integer('chunk_size', 16384, 'Rows per chunk.')
_SAMPLES = flags.DEFINE_integer('posterior_samples', 10,
                                'MC dropout passes K for bald.')
_STRATEGIES = flags.DEFINE_list('strategies', ['entropy', 'bald'],
                                'Scoring strategies.')
_PROCESSES = flags.DEFINE_integer(
    'num_processes', 1, 'Processes for the streamed cases (> 1: started '
    'with experiments/launch.py).', lower_bound=1)
_RELEASE = flags.DEFINE_bool(
    'release_pages', True, 'Streamed cases drop the pages they read from '
    'their mapping (RSS follows the chunk); --norelease_pages keeps them '
    'mapped (faster repeated kcenter passes, RSS counts the page cache).')
_CASE = flags.DEFINE_string('case', None,
                            'Run one case here (strategy:mode:N).')
_WRITE_POOL = flags.DEFINE_integer('write_pool', 0,
                                   'Only write the pool of this N.')

_NUM_CLASSES = 10
_HIDDEN = 256


def _rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pool_path(n: int, d: int) -> str:
  return os.path.join(_WORKDIR.value, f'pool_{n}x{d}.npy')


def write_pool(n: int, d: int, chunk: int = 1 << 16) -> str:
  """[n, d] float32 standard normal as .npy, written chunk by chunk (and
  atomically: a killed write leaves no pool behind)."""
  path = pool_path(n, d)
  if os.path.exists(path):
    return path
  partial = path + '.partial.npy'
  out = np.lib.format.open_memmap(partial, mode='w+', dtype=np.float32,
                                  shape=(n, d))
  for i, start in enumerate(range(0, n, chunk)):
    stop = min(start + chunk, n)
    out[start:stop] = np.random.default_rng(i).standard_normal(
        (stop - start, d), np.float32)
  out.flush()
  del out
  os.replace(partial, path)
  return path


def _labeled(n: int) -> np.ndarray:
  mask = np.zeros(n, bool)
  mask[np.random.default_rng(1).choice(n, min(_LABELED.value, n - 1),
                                       replace=False)] = True
  return mask


def _experiment(strategy: str, d: int):
  config = config_lib.default()
  config.posterior_samples = _SAMPLES.value
  config.eval_chunk = _CHUNK.value
  model = models.from_nnx(lambda shape, rngs: MLP(
      shape[0], _NUM_CLASSES, hidden_sizes=(_HIDDEN,), dropout_rate=0.2,
      rngs=rngs))
  exp = rounds.make_experiment(config, (d,), _NUM_CLASSES, model=model,
                               strategy=acquisition.get(strategy))
  return exp, exp.posterior.init(jax.random.key(0))


def _distributed():
  """(process index, gather) once this process has joined the others."""
  from jal import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize()
  distributed.gather(np.zeros(1, np.float32))  # connect before timing
  return distributed.process_index(), distributed.gather


def _timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return time.perf_counter() - start, out


def run_case(case: str) -> dict:
  """One case in this process; returns its measurements."""
  strategy, mode, n = case.split(':')
  n, d, b = int(n), _DIM.value, _QUERY.value
  path = pool_path(n, d)
  process, rows, gather = 0, None, None
  if mode == 'stream' and _PROCESSES.value > 1:  # before any JAX call
    process, gather = _distributed()
    rows = stream.shard_rows(n, _PROCESSES.value, process)
  labeled = _labeled(n)
  key = jax.random.key(2)
  runtime = _rss_mib()
  if strategy == 'kcenter':
    if mode == 'memory':
      x = jnp.asarray(np.load(path))
      select = jax.jit(kcenter_select, static_argnums=2)
      start = time.perf_counter()
      compiled = select.lower(x, labeled, b).compile()
      compile_s = time.perf_counter() - start
      seconds, picks = _timed(compiled, x, labeled)
    else:
      source = stream.NpySource(path, release_pages=_RELEASE.value)
      chunk = min(_CHUNK.value, n if rows is None else rows.size)
      first = stream.ArraySource(source.read(0, chunk))
      start = time.perf_counter()  # compile the steps and the exchanges
      stream.streamed_kcenter(first, np.zeros(chunk, bool), 2,
                              chunk_size=chunk, gather=gather)
      compile_s = time.perf_counter() - start
      seconds, picks = _timed(lambda: stream.streamed_kcenter(
          source, labeled, b, chunk_size=_CHUNK.value, rows=rows,
          gather=gather))
  else:
    exp, variables = _experiment(strategy, d)
    needs = exp.strategy.needs
    if mode == 'memory':
      x = jnp.asarray(np.load(path))

      def select(variables, x, labeled):
        trained = rounds.Trained(variables, ())
        inputs = rounds.predictions(exp, key, trained, x, labeled, needs)
        return exp.strategy.select(key, inputs, labeled, (), b)[0]

      select = jax.jit(select)
      start = time.perf_counter()
      compiled = select.lower(variables, x, labeled).compile()
      compile_s = time.perf_counter() - start
      seconds, picks = _timed(compiled, variables, x, labeled)
    else:
      source = stream.NpySource(path, release_pages=_RELEASE.value)
      predict_chunk = stream.experiment_predict_chunk(exp, variables)
      chunk = min(_CHUNK.value, n if rows is None else rows.size)
      first = stream.ArraySource(source.read(0, chunk))
      start = time.perf_counter()  # compile the step and the exchange
      stream.streamed_select(exp.strategy, key, predict_chunk, first,
                             np.zeros(chunk, bool), min(b, chunk),
                             chunk_size=chunk, gather=gather)
      compile_s = time.perf_counter() - start
      seconds, picks = _timed(lambda: stream.streamed_select(
          exp.strategy, key, predict_chunk, source, labeled, b,
          chunk_size=_CHUNK.value, rows=rows, gather=gather))
  picks = np.asarray(picks)
  assert len(set(picks.tolist())) == b and not labeled[picks].any()
  if process == 0:
    np.save(os.path.join(_WORKDIR.value, 'results',
                         case.replace(':', '_') + '.picks.npy'), picks)
  return dict(case=case, process=process, select_s=seconds,
              compile_s=compile_s, points_per_s=n / seconds,
              runtime_rss_mib=runtime, peak_rss_mib=_rss_mib(),
              pool_mib=os.path.getsize(path) / 2**20)


def _cases() -> list[str]:
  cases = []
  for size in _SIZES.value:
    n = int(float(size))
    for strategy in _STRATEGIES.value:
      if n <= _MAX_MEMORY.value:
        cases.append(f'{strategy}:memory:{n}')
      cases.append(f'{strategy}:stream:{n}')
  if _KCENTER_SIZE.value:
    n = int(_KCENTER_SIZE.value)
    if n <= _MAX_MEMORY.value:
      cases.append(f'kcenter:memory:{n}')
    cases.append(f'kcenter:stream:{n}')
  return cases


def _flags(case: str) -> list[str]:
  return [f'--case={case}', f'--workdir={_WORKDIR.value}',
          f'--dim={_DIM.value}', f'--query_size={_QUERY.value}',
          f'--labeled={_LABELED.value}', f'--chunk_size={_CHUNK.value}',
          f'--posterior_samples={_SAMPLES.value}',
          f'--num_processes={_PROCESSES.value}',
          f'--release_pages={_RELEASE.value}']


def _launch(case: str) -> list[dict] | str:
  """Runs a case in fresh process(es); its results, or the error output."""
  results = os.path.join(_WORKDIR.value, 'results')
  command = [sys.executable, os.path.abspath(__file__), *_flags(case)]
  processes = _PROCESSES.value if ':stream:' in case else 1
  if processes > 1:
    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'launch.py')
    if not os.path.exists(launcher):
      return (f'{launcher} is missing: --num_processes > 1 needs the '
              'launcher of jal.distributed.')
    command = [sys.executable, launcher, f'--num_processes={processes}',
               '--', *command]
  for name in os.listdir(results):
    if name.startswith(case.replace(':', '_') + '.'):  # a previous run's
      os.remove(os.path.join(results, name))
  proc = subprocess.run(command, capture_output=True, text=True, check=False)
  if proc.returncode:
    return proc.stdout[-1500:] + proc.stderr[-2500:]
  return [json.load(open(os.path.join(results, name)))
          for name in sorted(os.listdir(results))
          if name.startswith(case.replace(':', '_') + '.')
          and name.endswith('.json')]


def main(argv):
  del argv
  if _WRITE_POOL.value:
    write_pool(_WRITE_POOL.value, _DIM.value)
    return
  if _CASE.value:
    result = run_case(_CASE.value)
    name = f'{_CASE.value.replace(":", "_")}.{result["process"]}.json'
    with open(os.path.join(_WORKDIR.value, 'results', name), 'w') as f:
      json.dump(result, f)
    return
  os.makedirs(os.path.join(_WORKDIR.value, 'results'), exist_ok=True)
  cases = _cases()
  print(f'backend {jax.default_backend()}, {os.cpu_count()} CPUs, jax '
        f'{jax.__version__}; D = {_DIM.value}, query {_QUERY.value}, '
        f'{_LABELED.value} labeled, chunk {_CHUNK.value}, K = '
        f'{_SAMPLES.value}, {_PROCESSES.value} process(es) when streamed',
        flush=True)
  for n in sorted({int(c.split(':')[2]) for c in cases}):
    start = time.perf_counter()
    # In a child: a forked child's ru_maxrss starts at its parent's RSS, so
    # the parent must not hold the pages it wrote.
    subprocess.run([sys.executable, os.path.abspath(__file__),
                    f'--write_pool={n}', f'--workdir={_WORKDIR.value}',
                    f'--dim={_DIM.value}'], check=True)
    print(f'pool {n} x {_DIM.value}: {pool_path(n, _DIM.value)} '
          f'({time.perf_counter() - start:.1f} s)', flush=True)
  for case in cases:
    results = _launch(case)
    if isinstance(results, str):
      print(f'{case}: failed\n{results}', flush=True)
      continue
    slowest = max(r['select_s'] for r in results)
    n = int(case.split(':')[2])
    line = (f'{case:<24} {n / slowest:>12,.0f} points/s  select '
            f'{slowest:8.2f} s  compile {results[0]["compile_s"]:6.2f} s  '
            f'pool {results[0]["pool_mib"]:8.0f} MiB  peak RSS '
            f'{max(r["peak_rss_mib"] for r in results):7.0f} MiB (runtime '
            f'{results[0]["runtime_rss_mib"]:.0f})')
    strategy, mode, _ = case.split(':')
    if mode == 'stream':
      memory = os.path.join(_WORKDIR.value, 'results',
                            f'{strategy}_memory_{n}.picks.npy')
      if f'{strategy}:memory:{n}' in cases and os.path.exists(memory):
        want, got = np.load(memory), np.load(os.path.join(
            _WORKDIR.value, 'results', f'{strategy}_stream_{n}.picks.npy'))
        # Near-tied scores may come out in another order (float32 rounding
        # differs with the chunk shape); the batch is a set.
        line += (f'  picks as in memory: set '
                 f'{"same" if set(want) == set(got) else "DIFFERENT"}, '
                 f'order {"same" if np.array_equal(want, got) else "differs"}')
    print(line, flush=True)


if __name__ == '__main__':
  app.run(main)
