"""Times the camera-trap pipeline's units of work and prints the figures.

  python experiments/bench_cameratrap.py [--pool=29000] [--steps=8]

- the embedder's training step (batch 128, 28×28), cross-entropy and
  triplet, dispatched one jitted step at a time (as `embedder.fit` does)
  against the same steps inside one `fori_loop` (`train.fit_on_mask`);
- embedding a pool (images per second);
- the head's training (500 steps) and a k-center query of 20 on [pool, 256]
  features.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags

from jal import acquisition
from jal import train
from jal.cameratrap import classifier
from jal.cameratrap import embedder as embedder_lib

_POOL = flags.DEFINE_integer('pool', 29000, 'Pool frames.')
_STEPS = flags.DEFINE_integer('steps', 8, 'Training steps timed per variant.')
BATCH = 128


def _timed(fn, repeats=1):
  jax.block_until_ready(fn())  # compile
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  steps = _STEPS.value
  n = BATCH * steps
  images = jnp.asarray(rng.normal(size=(n, 28, 28, 1)).astype(np.float32))
  labels = jnp.asarray(rng.integers(0, 5, n).astype(np.int32))
  mask = jnp.ones(n, bool)
  params = embedder_lib.init(jax.random.key(0), (28, 28, 1), 256, 5)
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}; batch {BATCH}')
  for loss in embedder_lib.LOSSES:
    dispatched = _timed(lambda: embedder_lib.fit(
        jax.random.key(1), params, images, labels, mask, loss=loss,
        margin=0.2, batch_size=BATCH, num_epochs=1, learning_rate=1e-3))

    def batch_loss(p, key, rows, weights, loss=loss):
      return embedder_lib.loss_value(key, p, images[rows], labels[rows],
                                     weights, loss=loss, margin=0.2)

    looped = jax.jit(lambda p: train.fit_on_mask(
        jax.random.key(1), batch_loss, p, optax.adam(1e-3), mask,
        batch_size=BATCH, num_epochs=1))
    in_loop = _timed(lambda: looped(params))
    print(f'embedder step, {loss:13s}: {dispatched / steps * 1e3:7.1f} ms '
          f'dispatched, {in_loop / steps * 1e3:7.1f} ms in fori_loop '
          f'({in_loop / dispatched:.1f}x)', flush=True)

  pool_size = _POOL.value
  pool = jnp.asarray(rng.normal(size=(pool_size, 28, 28, 1)).astype(
      np.float32))
  seconds = _timed(lambda: embedder_lib.embed(params, pool, chunk_size=1024))
  print(f'embed {pool_size} frames: {seconds:.2f} s '
        f'({pool_size / seconds:,.0f} frames/s)', flush=True)

  features = embedder_lib.embed(params, pool, chunk_size=1024)
  pool_labels = jnp.asarray(rng.integers(0, 6, pool_size).astype(np.int32))
  labeled = jnp.arange(pool_size) < 1000
  seconds = _timed(lambda: classifier.fit_head(
      jax.random.key(2), features, pool_labels, labeled, num_classes=6,
      hidden_size=100, batch_size=64, num_steps=500, learning_rate=1e-3), 3)
  print(f'head, 500 steps: {seconds:.2f} s', flush=True)
  strategy = acquisition.get('kcenter')
  seconds = _timed(lambda: acquisition.query(
      strategy, jax.random.key(3), dict(embeddings=features), labeled, 20), 3)
  print(f'kcenter query of 20 on [{pool_size}, 256]: {seconds:.2f} s')


if __name__ == '__main__':
  app.run(main)
