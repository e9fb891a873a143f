"""Wall time and peak memory of kcenter, kmeans and badge on synthetic pools.

Each case runs in a fresh subprocess, so its peak resident memory
(`ru_maxrss`) is its own. A case builds a float32 pool of standard-normal
embeddings (filled in place, chunk by chunk), marks `--labeled` points
labeled, compiles the strategy ahead of time, then times one selection.
Printed per case: compile and selection seconds, the embedding array's size,
the process's resident memory before the pool exists (the Python + JAX
runtime) and its peak, and the peak over the embedding size with and without
that runtime baseline. For kcenter the selection is also split into the
initial distances to the labeled set and the greedy picks, and the picks'
read rate (N·D·4 bytes per pick) is set against the machine's memory read
bandwidth, measured here as a matrix-vector product over a 100000×512 pool.

  python experiments/bench_diversity.py            # all cases
  python experiments/bench_diversity.py --cases=kcenter_100k
"""

import json
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
from jal import cluster

CASES = {  # name: (strategy, pool size, embedding dim)
    'bandwidth': (None, 100_000, 512),
    'kcenter_100k': ('kcenter', 100_000, 512),
    'kcenter_1m': ('kcenter', 1_000_000, 128),
    'kmeans_100k': ('kmeans', 100_000, 512),
    'badge_100k': ('badge', 100_000, 512),
}

_CASES = flags.DEFINE_list('cases', list(CASES), 'Cases to run.')
_CASE = flags.DEFINE_string('case', None, 'Run one case in this process.')
_QUERY = flags.DEFINE_integer('query_size', 1000, 'Points to select.')
_LABELED = flags.DEFINE_integer('labeled', 10_000, 'Labeled pool points.')
_CLASSES = flags.DEFINE_integer('num_classes', 10, 'C for badge.')


def _rss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _pool(n: int, d: int, chunk: int = 8192) -> jax.Array:
  """[n, d] float32 standard normal, filled in place (no second copy)."""
  chunk = min(chunk, n)

  def fill(x, i):
    start = jnp.minimum(i * chunk, n - chunk)
    block = jax.random.normal(jax.random.fold_in(jax.random.key(0), i),
                              (chunk, d), jnp.float32)
    return jax.lax.dynamic_update_slice_in_dim(x, block, start, 0)

  fill = jax.jit(fill, donate_argnums=0)
  x = jnp.zeros((n, d), jnp.float32)
  for i in range(-(-n // chunk)):
    x = fill(x, i)
  return jax.block_until_ready(x)


def _timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return time.perf_counter() - start, out


def _bandwidth(n, d) -> dict:
  x = _pool(n, d)
  matvec = jax.jit(lambda x, v: jnp.matmul(x, v,
                                           precision=jax.lax.Precision.HIGHEST))
  _timed(matvec, x, x[0])
  seconds = min(_timed(matvec, x, x[i])[0] for i in range(10))
  return dict(read_gb_per_s=x.nbytes / seconds / 1e9)


def _run_case(name: str) -> dict:
  strategy_name, n, d = CASES[name]
  if strategy_name is None:
    return _bandwidth(n, d)
  b = _QUERY.value
  baseline = _rss_bytes()
  x = _pool(n, d)
  key = jax.random.key(0)
  labeled = jnp.zeros((n,), bool).at[
      jax.random.choice(key, n, (_LABELED.value,), replace=False)].set(True)
  inputs = {'embeddings': x}
  if strategy_name == 'badge':
    logits = jax.random.normal(jax.random.key(1), (n, _CLASSES.value)) * 3
    inputs['log_probs'] = jax.nn.log_softmax(logits)[None]
  strategy = acquisition.get(strategy_name)
  select = jax.jit(strategy.select, static_argnums=3)
  start = time.perf_counter()
  compiled = select.lower(key, inputs, labeled, b).compile()
  compile_seconds = time.perf_counter() - start
  seconds, picks = _timed(compiled, key, inputs, labeled)
  peak = _rss_bytes()
  picks = np.asarray(picks)
  assert len(set(picks.tolist())) == b and not np.asarray(labeled)[picks].any()
  result = dict(compile_s=compile_seconds, select_s=seconds,
                embeddings_mb=x.nbytes / 2**20, runtime_rss_mb=baseline / 2**20,
                peak_rss_mb=peak / 2**20, peak_over_embeddings=peak / x.nbytes,
                peak_minus_runtime_over_embeddings=(peak - baseline) / x.nbytes)
  if strategy_name == 'kcenter':
    initial = jax.jit(cluster.min_sq_distances_to_subset)
    picks_fn = jax.jit(cluster.farthest_first, static_argnums=3)
    _timed(initial, x, labeled)
    initial_seconds, min_sq = _timed(initial, x, labeled)
    _timed(picks_fn, x, min_sq, ~labeled, 2)
    picks_seconds, _ = _timed(picks_fn, x, min_sq, ~labeled, b)
    result.update(initial_distances_s=initial_seconds, picks_s=picks_seconds,
                  picks_read_gb_per_s=b * x.nbytes / picks_seconds / 1e9)
  return result


def main(argv):
  del argv
  if _CASE.value:
    print(json.dumps(_run_case(_CASE.value)))
    return
  print(f'backend {jax.default_backend()}, {jax.device_count()} device(s), '
        f'jax {jax.__version__}; query {_QUERY.value}, '
        f'{_LABELED.value} labeled, float32')
  for name in _CASES.value:
    strategy_name, n, d = CASES[name]
    proc = subprocess.run(
        [sys.executable, __file__, f'--case={name}',
         f'--query_size={_QUERY.value}', f'--labeled={_LABELED.value}',
         f'--num_classes={_CLASSES.value}'],
        capture_output=True, text=True, check=False)
    if proc.returncode:
      print(f'{name}: failed\n{proc.stderr[-2000:]}')
      continue
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    if strategy_name is None:
      print(f'memory read bandwidth (matvec over {n}x{d} float32): '
            f'{r["read_gb_per_s"]:.1f} GB/s')
      continue
    line = (f'{name} ({strategy_name}, N={n}, D={d}): select '
            f'{r["select_s"]:.2f} s (compile {r["compile_s"]:.2f} s); '
            f'embeddings {r["embeddings_mb"]:.0f} MiB, runtime '
            f'{r["runtime_rss_mb"]:.0f} MiB, peak RSS {r["peak_rss_mb"]:.0f} '
            f'MiB = {r["peak_over_embeddings"]:.2f}x embeddings '
            f'({r["peak_minus_runtime_over_embeddings"]:.2f}x without the '
            f'runtime)')
    if 'picks_s' in r:
      line += (f'; initial distances {r["initial_distances_s"]:.2f} s, '
               f'{_QUERY.value} picks {r["picks_s"]:.2f} s reading '
               f'{r["picks_read_gb_per_s"]:.1f} GB/s')
    print(line, flush=True)


if __name__ == '__main__':
  app.run(main)
