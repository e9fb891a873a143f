"""jal.triplet against a brute-force numpy reference with plain Python loops.

The reference takes the same Gumbel noise as `semihard_negatives` draws and
applies its rules 1-3 one (anchor, positive) pair at a time.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import triplet

NONE, SEMIHARD, EASY, HARD = 0, 1, 2, 3

# Jitted: op-by-op dispatch compiles every primitive for every batch shape and
# would dominate the file's runtime (eager is checked against jit below).
_distances = jax.jit(lambda x: triplet.sq_distances(triplet.l2_normalize(x)))
_mine = jax.jit(triplet.semihard_negatives)


# ---------------------------------------------------------------- reference


def ref_normalize(x):
  """Each row divided by max(its norm, 1e-12), float64."""
  x = np.asarray(x, np.float64)
  out = np.zeros_like(x)
  for i in range(x.shape[0]):
    out[i] = x[i] / max(np.sqrt(np.sum(x[i] ** 2)), 1e-12)
  return out


def ref_sq_distances(x):
  x = np.asarray(x, np.float64)
  b = x.shape[0]
  d = np.zeros((b, b))
  for i in range(b):
    for j in range(b):
      d[i, j] = np.sum((x[i] - x[j]) ** 2)
  return d


def ref_mine(d, labels, weights, margin, gumbel):
  """Rules 1-3 of the brief, literally, one (a, p) pair at a time.

  Returns negatives [B, B], pair_mask [B, B] and the rule used per pair.
  Comparisons are done in d's dtype, so that on jax's float32 distances the
  reference sees the same numbers as the implementation.
  """
  margin = d.dtype.type(margin)
  b = len(labels)
  negatives = np.zeros((b, b), np.int32)
  pair_mask = np.zeros((b, b), bool)
  rule = np.full((b, b), NONE)
  for a in range(b):
    for p in range(b):
      if a == p or labels[a] != labels[p]:
        continue
      if weights[a] <= 0 or weights[p] <= 0:
        continue
      valid = [n for n in range(b) if labels[n] != labels[a] and weights[n] > 0]
      if not valid:
        continue
      pair_mask[a, p] = True
      semihard = [n for n in valid if d[a, p] < d[a, n] < d[a, p] + margin]
      easy = [n for n in valid if d[a, n] >= d[a, p] + margin]
      if semihard:
        best = semihard[0]
        for n in semihard:
          if gumbel[a, p, n] > gumbel[a, p, best]:
            best = n
        negatives[a, p], rule[a, p] = best, SEMIHARD
      elif easy:
        best = easy[0]
        for n in easy:                      # strict <: ties keep the lowest n
          if d[a, n] < d[a, best]:
            best = n
        negatives[a, p], rule[a, p] = best, EASY
      else:
        best = valid[0]
        for n in valid:                     # strict >: ties keep the lowest n
          if d[a, n] > d[a, best]:
            best = n
        negatives[a, p], rule[a, p] = best, HARD
  return negatives, pair_mask, rule


def ref_loss(x, margin, negatives, pair_mask):
  """Mean hinge over the pairs, for given negatives, in float64."""
  d = ref_sq_distances(ref_normalize(x))
  total, count = 0.0, 0
  b = d.shape[0]
  for a in range(b):
    for p in range(b):
      if pair_mask[a, p]:
        n = negatives[a, p]
        total += max(d[a, p] - d[a, n] + margin, 0.0)
        count += 1
  return total / count if count else 0.0


# ---------------------------------------------------------------- batches

# (name, seed, B, D, labels or number of classes, number of padding rows,
#  margin)
CASES = [
    ('b6_d3_2cls', 0, 6, 3, 2, 1, 0.2),
    ('b8_d4_3cls', 1, 8, 4, 3, 2, 0.2),
    ('b10_d3_2cls_small_margin', 2, 10, 3, 2, 0, 0.05),
    ('b12_d5_4cls', 3, 12, 5, 4, 3, 0.5),
    ('b16_d8_3cls_big_margin', 4, 16, 8, 3, 2, 1.0),
    ('b16_d3_2cls', 5, 16, 3, 2, 4, 0.2),
    ('b9_d6_singleton', 6, 9, 6, (0, 0, 0, 1, 1, 1, 1, 2, 0), 1, 0.3),
    ('b7_d4_one_class', 7, 7, 4, (1,) * 7, 2, 0.2),
    ('b14_d7_4cls', 8, 14, 7, 4, 0, 0.1),
]


def make_batch(seed, b, d, classes, padding):
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=(b, d)) * rng.uniform(0.5, 3.0)).astype(np.float32)
  if isinstance(classes, int):
    labels = rng.integers(0, classes, size=b)
    labels[:classes] = np.arange(classes)     # every class present
  else:
    labels = np.asarray(classes)
  weights = np.ones(b, np.float32)
  weights[rng.permutation(b)[:padding]] = 0.0
  return x, labels.astype(np.int32), weights


@jax.jit
def _run_case(key, x, labels, weights, margin):
  """jal.triplet on one batch, and the Gumbel noise its mining draws."""
  b = x.shape[0]
  gumbel = jax.random.gumbel(key, (b, b, b))
  d = triplet.sq_distances(triplet.l2_normalize(x))
  negatives, pair_mask = triplet.semihard_negatives(key, d, labels, weights,
                                                    margin)
  loss = triplet.semihard_triplet_loss(key, x, labels, weights, margin)
  return gumbel, d, negatives, pair_mask, loss


@functools.cache
def case_arrays(case):
  """The batch as numpy, its key, and jal.triplet's results on it."""
  _, seed, b, d, classes, padding, margin = case
  x, labels, weights = make_batch(seed, b, d, classes, padding)
  key = jax.random.key(seed)
  out = jax.tree.map(np.asarray, _run_case(key, x, labels, weights, margin))
  return (key, x, labels, weights, margin) + tuple(out)


def test_sq_distances_match_reference():
  x, _, _ = make_batch(0, 9, 5, 2, 0)
  np.testing.assert_allclose(triplet.sq_distances(jnp.asarray(x)),
                             ref_sq_distances(x), rtol=1e-5, atol=1e-4)
  d = np.asarray(triplet.sq_distances(jnp.asarray(np.repeat(x[:1], 4, 0))))
  assert (d >= 0).all()


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_negatives_match_reference(case):
  _, x, labels, weights, margin, gumbel, d, negatives, pair_mask, _ = (
      case_arrays(case))
  # Mining on jal's float32 distances: both sides compare the same numbers.
  ref_neg, ref_mask, _ = ref_mine(d, labels, weights, margin, gumbel)
  assert negatives.dtype == np.int32 and negatives.shape == (len(x),) * 2
  np.testing.assert_array_equal(pair_mask, ref_mask)
  np.testing.assert_array_equal(np.where(ref_mask, negatives, 0),
                                np.where(ref_mask, ref_neg, 0))


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_loss_matches_reference(case):
  _, x, labels, weights, margin, gumbel, _, _, _, loss = case_arrays(case)
  # The whole pipeline again in float64: distances, mining, loss.
  d = ref_sq_distances(ref_normalize(x))
  ref_neg, ref_mask, _ = ref_mine(d, labels, weights, margin, gumbel)
  expected = ref_loss(x, margin, ref_neg, ref_mask)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  if case[0].endswith('one_class'):
    assert not ref_mask.any() and float(loss) == 0.0


def test_batches_exercise_every_rule_and_edge():
  rules = set()
  for case in CASES:
    _, x, labels, weights, margin, gumbel, d, _, _, _ = case_arrays(case)
    _, mask, rule = ref_mine(d, labels, weights, margin, gumbel)
    rules |= set(np.unique(rule[mask]).tolist())
    assert (weights == 0).any() or case[5] == 0
  assert rules == {SEMIHARD, EASY, HARD}


def test_semihard_choice_is_uniform():
  # Points on a line: anchor 0 at 0, its positive 1 at 1 (d = 1); negatives
  # at d = 1.21, 1.44, 1.69, 1.96 are semi-hard for margin 1.5 (band (1, 2.5)),
  # and the one at d = 25 is easy.
  x = jnp.array([[0.0], [1.0], [1.1], [1.2], [1.3], [1.4], [5.0]])
  labels = jnp.array([0, 0, 1, 1, 1, 1, 1], jnp.int32)
  weights = jnp.ones(7)
  margin = 1.5
  d = triplet.sq_distances(x)
  mine = jax.jit(jax.vmap(
      lambda k: triplet.semihard_negatives(k, d, labels, weights, margin)[0]))
  num_keys = 4000
  negatives = np.asarray(mine(jax.random.split(jax.random.key(0), num_keys)))

  d_np = np.asarray(d)
  checked = 0
  for a in range(7):
    for p in range(7):
      if a == p or labels[a] != labels[p]:
        continue
      s = [n for n in range(7) if labels[n] != labels[a]
           and d_np[a, p] < d_np[a, n] < d_np[a, p] + margin]
      picked = negatives[:, a, p]
      assert set(picked.tolist()) <= set(s) or len(s) == 0
      if len(s) >= 2:
        for n in s:
          assert abs(np.mean(picked == n) - 1 / len(s)) < 0.03, (a, p, n)
        checked += 1
  assert checked >= 1
  assert set(negatives[:, 0, 1].tolist()) == {2, 3, 4, 5}


def test_gradient_matches_finite_differences():
  x, labels, weights = make_batch(11, 8, 4, 2, 2)
  margin = 0.5
  key = jax.random.key(3)
  args = (jnp.asarray(labels), jnp.asarray(weights), margin)
  grad = np.asarray(jax.jit(jax.grad(
      lambda e: triplet.semihard_triplet_loss(key, e, *args)))(jnp.asarray(x)))

  # The negatives the loss mines (the same key and distances); the gradient
  # treats them as constants, so differentiate the float64 reference on them.
  d = _distances(jnp.asarray(x))
  negatives, pair_mask = map(np.asarray, _mine(key, d, *args))
  # No hinge sits at its kink, where the finite difference is meaningless.
  d64 = ref_sq_distances(ref_normalize(x))
  a, p = np.nonzero(pair_mask)
  hinge = d64[a, p] - d64[a, negatives[a, p]] + margin
  assert np.min(np.abs(hinge)) > 1e-3 and (hinge > 0).any()

  x64 = x.astype(np.float64)
  fd = np.zeros_like(x64)
  eps = 1e-6
  for i in range(x.shape[0]):
    for j in range(x.shape[1]):
      up, down = x64.copy(), x64.copy()
      up[i, j] += eps
      down[i, j] -= eps
      fd[i, j] = (ref_loss(up, margin, negatives, pair_mask) -
                  ref_loss(down, margin, negatives, pair_mask)) / (2 * eps)
  np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-5)
  assert np.abs(grad).max() > 1e-2
  np.testing.assert_array_equal(grad[weights == 0], 0.0)


@pytest.mark.parametrize('case', [CASES[2], CASES[6]],
                         ids=[CASES[2][0], CASES[6][0]])
def test_jit_equals_eager(case):
  # case_arrays ran the functions under one jax.jit; run them again eagerly.
  key, x, labels, weights, margin, _, jit_d, jit_neg, jit_mask, jit_loss = (
      case_arrays(case))
  eager_d = triplet.sq_distances(triplet.l2_normalize(jnp.asarray(x)))
  # Fusion may round differently (the diagonal is ~1e-7 rather than 0).
  np.testing.assert_allclose(eager_d, jit_d, rtol=1e-6, atol=1e-6)
  # Mining on the same distances must agree exactly.
  eager_neg, eager_mask = triplet.semihard_negatives(
      key, jnp.asarray(jit_d), jnp.asarray(labels), jnp.asarray(weights),
      margin)
  np.testing.assert_array_equal(eager_neg, jit_neg)
  np.testing.assert_array_equal(eager_mask, jit_mask)
  eager_loss = triplet.semihard_triplet_loss(
      key, jnp.asarray(x), jnp.asarray(labels), jnp.asarray(weights), margin)
  np.testing.assert_allclose(eager_loss, jit_loss, rtol=1e-6)


def test_no_nan_for_zero_embeddings_or_no_pair():
  key = jax.random.key(0)
  loss_and_grad = jax.jit(jax.value_and_grad(triplet.semihard_triplet_loss,
                                             argnums=1))
  labels = jnp.array([0, 0, 1, 1, 2, 2], jnp.int32)
  ones = jnp.ones(6)

  # All rows zero: every distance 0, rule 3 everywhere, loss = margin.
  loss, grad = loss_and_grad(key, jnp.zeros((6, 3)), labels, ones)
  assert float(loss) == pytest.approx(triplet.DEFAULT_MARGIN)
  assert np.isfinite(grad).all()

  # One zero row among others.
  x = jax.random.normal(jax.random.key(1), (6, 3)).at[2].set(0.0)
  loss, grad = loss_and_grad(key, x, labels, ones)
  assert np.isfinite(loss) and np.isfinite(grad).all()

  # No valid pair: a single class; all classes singletons; all padding.
  for lab, w in [(jnp.zeros(6, jnp.int32), ones),
                 (jnp.arange(6, dtype=jnp.int32), ones),
                 (labels, jnp.zeros(6))]:
    loss, grad = loss_and_grad(key, x, lab, w)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(grad, 0.0)
