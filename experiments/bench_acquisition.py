"""Times BALD and BatchBALD on synthetic MC log-probabilities.

C classes, K passes (default 10 and 20) of random Dirichlet-like
predictions. For each case prints the wall time after compilation (median of
--repeats), the compile+first-call time, and XLA's memory estimate of the
compiled computation (arguments + outputs + temporaries: the peak it
allocates). The brute-force reference, numpy enumeration of every label
configuration of the batch in float64, is timed where it is feasible and
its configuration count printed where it is not.

  python experiments/bench_acquisition.py
  python experiments/bench_acquisition.py --batchbald_pools=10000 \
      --batchbald_queries=10
"""

import itertools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

from jal.acquisition import batchbald
from jal.acquisition import bayesian
from jal.acquisition import base

_NUM_CLASSES = flags.DEFINE_integer('num_classes', 10, 'C.')
_NUM_PASSES = flags.DEFINE_integer('num_passes', 20, 'K.')
_BALD_POOL = flags.DEFINE_integer('bald_pool', 60000, 'Pool size for BALD.')
_POOLS = flags.DEFINE_list('batchbald_pools', ['10000', '60000'],
                           'Pool sizes for BatchBALD.')
_QUERIES = flags.DEFINE_list('batchbald_queries', ['10', '50'],
                             'Query sizes for BatchBALD.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 100000,
                                    'BatchBALD configurations.')
_BRUTE_POOL = flags.DEFINE_integer('brute_force_pool', 200,
                                   'Pool size of the brute-force timing.')
_BRUTE_QUERY = flags.DEFINE_integer('brute_force_query', 3,
                                    'Largest brute-force batch timed.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed runs after compiling.')


def synthetic_log_probs(key, num_passes, pool_size, num_classes):
  """[K, N, C] log-probs: per-point logits plus per-pass disagreement."""
  point_key, pass_key, scale_key = jax.random.split(key, 3)
  logits = 2.0 * jax.random.normal(point_key, (1, pool_size, num_classes))
  noise = jax.random.normal(pass_key, (num_passes, pool_size, num_classes))
  scale = jax.random.uniform(scale_key, (1, pool_size, 1), maxval=2.0)
  return jax.nn.log_softmax(logits + scale * noise)


def _time(fn, *args, repeats):
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times), first


def _memory_mib(jitted, *args) -> float:
  analysis = jitted.lower(*args).compile().memory_analysis()
  if analysis is None:
    return float('nan')
  total = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
           analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
  return total / 2**20


def brute_force_batchbald(log_probs: np.ndarray, query_size: int):
  """Greedy BatchBALD by enumerating every configuration (float64 numpy)."""
  p = np.exp(log_probs.astype(np.float64))
  num_passes, n, num_classes = p.shape
  cond = -np.mean(np.sum(p * np.log(p), -1), 0)
  chosen = []
  for _ in range(query_size):
    best, best_info = -1, -np.inf
    configs = list(itertools.product(range(num_classes), repeat=len(chosen)))
    per_pass = np.ones((num_passes, len(configs)))
    for s, config in enumerate(configs):
      for i, y in zip(chosen, config):
        per_pass[:, s] *= p[:, i, y]
    for i in range(n):
      if i in chosen:
        continue
      joint = np.einsum('ks,kc->sc', per_pass, p[:, i]) / num_passes
      info = -np.sum(joint * np.log(joint)) - cond[chosen + [i]].sum()
      if info > best_info:
        best, best_info = i, info
    chosen.append(best)
  return chosen


def main(argv):
  del argv
  c, k = _NUM_CLASSES.value, _NUM_PASSES.value
  print(f'backend {jax.default_backend()}, {jax.device_count()} device(s), '
        f'jax {jax.__version__}; C = {c}, K = {k}, float32')
  key = jax.random.key(0)

  n = _BALD_POOL.value
  log_probs = synthetic_log_probs(key, k, n, c)
  mask = jnp.zeros(n, bool)
  bald_select = jax.jit(lambda lp, m: base.top_k_unlabeled(
      bayesian.bald(lp), m, 10))
  seconds, first = _time(bald_select, log_probs, mask,
                         repeats=_REPEATS.value)
  print(f'BALD      pool {n:6d}  query 10: {seconds:8.3f} s  (first call '
        f'{first:.2f} s; memory {_memory_mib(bald_select, log_probs, mask):.0f}'
        ' MiB)', flush=True)

  for n in map(int, _POOLS.value):
    log_probs = synthetic_log_probs(key, k, n, c)
    mask = jnp.zeros(n, bool)
    for query in map(int, _QUERIES.value):
      select = jax.jit(lambda key, lp, m, query=query: batchbald.batchbald(
          key, lp, m, query, num_samples=_NUM_SAMPLES.value)[0])
      memory = _memory_mib(select, key, log_probs, mask)
      seconds, first = _time(select, key, log_probs, mask,
                             repeats=_REPEATS.value if query <= 10 else 1)
      exact = sum(c**i <= _NUM_SAMPLES.value for i in range(query))
      print(f'BatchBALD pool {n:6d}  query {query:2d}: {seconds:8.2f} s  '
            f'(first call {first:.2f} s; {exact} exact steps, '
            f'{query - exact} sampled with {_NUM_SAMPLES.value} '
            f'configurations; memory {memory:.0f} MiB)', flush=True)

  n = _BRUTE_POOL.value
  log_probs = np.asarray(synthetic_log_probs(key, k, n, c))
  for query in range(1, _BRUTE_QUERY.value + 1):
    start = time.perf_counter()
    brute = brute_force_batchbald(log_probs, query)
    seconds = time.perf_counter() - start
    ours = batchbald.batchbald(key, jnp.asarray(log_probs), jnp.zeros(n, bool),
                               query, num_samples=_NUM_SAMPLES.value)[0]
    print(f'brute force pool {n:5d}  query {query}: {seconds:8.2f} s '
          f'({c**(query - 1)} configurations in the last step; same batch as '
          f'jal: {list(np.asarray(ours)) == brute})', flush=True)
  for query in (q for q in map(int, _QUERIES.value)
                if q > _BRUTE_QUERY.value):
    print(f'brute force query {query}: infeasible, the last step enumerates '
          f'C^{query - 1} = {float(c)**(query - 1):.0e} configurations per '
          'candidate')


if __name__ == '__main__':
  app.run(main)
