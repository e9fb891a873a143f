"""Adversarial-distance acquisition: DFAL (Ducoffe & Precioso 2018).

DFAL queries the unlabeled points closest to the decision boundary, measured
by the size of the smallest perturbation an adversarial attack needs to flip
the model's prediction: the b points with the smallest ‖η‖² are selected.
Two attacks, as in DeepAL / DeepAL+:

- `adversarial_deepfool`: multiclass DeepFool (Moosavi-Dezfooli et al. 2016)
  on the logits f. At x + η, for each class k ≠ ŷ, w_k = ∇f_k − ∇f_ŷ and
  f'_k = f_k − f_ŷ; the step towards the nearest linearized boundary,
  l = argmin_k |f'_k| / ‖w_k‖, is r = |f'_l| / ‖w_l‖² · w_l. The attack stops
  when argmax f(x + (1 + overshoot)·Σr) ≠ ŷ or after `max_iter` steps, and the
  score is ‖(1 + overshoot)·Σr‖². `overshoot` 0.02 is the original DeepFool's;
  0.0 is DeepAL+'s code. `deepal_compat` reproduces DeepAL/DeepAL+'s step
  (its running minimum `value_l` is never updated, so the step goes towards
  the *last* class k ≠ ŷ instead of the nearest). The original adds 1e-4 to
  each step's length; jal does not, so a step on a linear model lands exactly
  on the boundary.
- `adversarial_bim`: the basic iterative method (Kurakin et al. 2017):
  η ← η + ε·sign(∇ₓ CE(f(x + η), ŷ)) until argmax f(x + η) ≠ ŷ; score ‖η‖².
  DeepAL's loop has no iteration cap and can spin forever; jal stops after
  `max_iter` steps and gives a point that never flipped the score +inf
  (ranked after every point that flipped, the lowest index first). The sign
  is that of the exact gradient Σ_{c≠ŷ} p_c (∇f_c − ∇f_ŷ), computed from the
  softmax over the classes other than ŷ so it does not underflow: float32
  `softmax − one_hot` (DeepAL's) drops the −∇f_ŷ term once p_ŷ rounds to 1
  (margins above ≈ 16).

A DeepFool point that has not flipped after `max_iter` steps keeps the
perturbation it reached (as in DeepAL+'s code, which returns it).

Both run on the `'logits_fn'` prediction, the trained model in eval mode,
over the unlabeled points only. One `lax.while_loop` steps a batch of
`chunk_size` slots, each attacking one point; a slot whose point has flipped
(or reached `max_iter`) records its result and takes the next unlabeled
point, so the cost follows the total number of steps, not the slowest point
of each chunk; the last slow points finish in loops of 8× fewer slots.
Per-example input gradients are gradients of the logits summed over the
batch, which holds because in eval mode each row's logits depend on that row
only. DeepFool needs one gradient per class: C backward
passes of the slots (a `vmap` over one-hot cotangents), [C, chunk, ...]
floats of memory.

`augment` (default False, as in DeepAL+'s code; DFAL's paper and DeepAL+'s
paper add adversarial examples): each queried point's adversarial copy x + η
joins the following trainings, labeled with the oracle's label of x (the
training-set hook). The strategy state keeps the queried indices and their
copies in a buffer of `augment_rows` rows (0: one row per pool point, which
never fills); the labels are read from the training set at training time,
after the oracle has revealed them. Copies beyond a full buffer are dropped:
set `augment_rows` to at least num_rounds · query_size.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jal.acquisition import ranges
from jal.acquisition.base import Strategy, top_k_unlabeled

DEFAULT_CHUNK = 256


class Method(NamedTuple):
  """An iterative attack: η = scale · Σ steps, each step from the logits at
  x + η.

  Attributes:
    step: `step(logits [B, C], vjp, label [B]) -> [B, ...]`, where
      `vjp(cotangent [B, C]) -> (gradient [B, ...],)` is the vector-Jacobian
      product of the logits at x + η.
    max_iter: static cap on the steps.
    scale: the perturbation is `scale` times the sum of the steps.
  """
  step: Callable[..., jax.Array]
  max_iter: int
  scale: float = 1.0


class Attack(NamedTuple):
  """An attack's outcome on a set of points.

  Attributes:
    sq_norm: [N] float32 ‖η‖².
    steps: [N] int32 steps taken.
    flipped: [N] bool, argmax f(x + η) ≠ argmax f(x).
    perturbation: [N, ...] η, or None where not kept.
  """
  sq_norm: jax.Array
  steps: jax.Array
  flipped: jax.Array
  perturbation: jax.Array | None


class AugmentBuffer(NamedTuple):
  """Adversarial copies of queried points, for the next trainings.

  Attributes:
    indices: [R] int32 pool indices of the queried points.
    images: [R, ...] their adversarial copies x + η.
    count: [] int32 rows in use (the first `count`).
  """
  indices: jax.Array
  images: jax.Array
  count: jax.Array


def _per_row(values: jax.Array, like: jax.Array) -> jax.Array:
  """[B] values reshaped to broadcast over [B, ...] `like`."""
  return values.reshape((-1,) + (1,) * (like.ndim - 1)).astype(like.dtype)


def _ce_gradient_cotangent(logits: jax.Array, label: jax.Array) -> jax.Array:
  """v [B, C] with vᵀ∂f/∂x = ∇ₓ CE(f, ŷ) / Σ_{c≠ŷ} p_c, a positive multiple.

  ∇ₓ CE = Σ_c (p_c − [c = ŷ]) ∇f_c = Σ_{c≠ŷ} p_c (∇f_c − ∇f_ŷ); divided by
  Σ_{c≠ŷ} p_c the weights are the softmax over the classes other than ŷ,
  which never underflows to all zeros.

  Args:
    logits: [B, C].
    label: [B] int ŷ.
  """
  is_label = jax.nn.one_hot(label, logits.shape[-1], dtype=bool)
  others = jax.nn.softmax(jnp.where(is_label, -jnp.inf, logits), axis=-1)
  return jnp.where(is_label, -1.0, others).astype(logits.dtype)


def bim(eps: float, max_iter: int) -> Method:
  """BIM: steps ε·sign(∇ₓ CE(f(x + η), ŷ))."""

  def step(logits, vjp, label):
    (grad,) = vjp(_ce_gradient_cotangent(logits, label))
    return eps * jnp.sign(grad)

  return Method(step, max_iter)


def deepfool_step(logits: jax.Array, jacobian: jax.Array, label: jax.Array,
                  deepal_compat: bool = False) -> jax.Array:
  """One DeepFool step r per row, towards the nearest linearized boundary.

  Args:
    logits: [B, C] f at the current point.
    jacobian: [C, B, ...] ∇ₓ f_c per class and row.
    label: [B] int ŷ, the original prediction.
    deepal_compat: step towards the last class k ≠ ŷ (DeepAL+'s code)
      instead of argmin_k |f_k − f_ŷ| / ‖w_k‖.

  Returns:
    [B, ...] r = |f'_l| / ‖w_l‖² · w_l; zero where ‖w_l‖ = 0.
  """
  num_classes, batch = jacobian.shape[:2]
  rows = jnp.arange(batch)
  grads = jnp.moveaxis(jacobian, 0, 1).reshape(batch, num_classes, -1)
  w = grads - grads[rows, label][:, None]                    # [B, C, D]
  f = logits - logits[rows, label][:, None]                  # [B, C]
  w_sq = jnp.sum(w**2, axis=-1)                              # [B, C]
  if deepal_compat:
    nearest = jnp.where(label == num_classes - 1, num_classes - 2,
                        num_classes - 1)
  else:
    is_label = jax.nn.one_hot(label, num_classes, dtype=bool)
    distance = jnp.where(is_label | (w_sq == 0), jnp.inf,
                         jnp.abs(f) / jnp.sqrt(jnp.where(w_sq > 0, w_sq, 1)))
    nearest = jnp.argmin(distance, axis=-1)
  f_l, w_l, w_sq_l = f[rows, nearest], w[rows, nearest], w_sq[rows, nearest]
  scale = jnp.where(w_sq_l > 0, jnp.abs(f_l) / jnp.where(w_sq_l > 0, w_sq_l, 1),
                    0)
  return (scale[:, None] * w_l).reshape(jacobian.shape[1:])


def deepfool(max_iter: int, overshoot: float,
             deepal_compat: bool = False) -> Method:
  """Multiclass DeepFool with perturbation (1 + overshoot)·Σr.

  Each step takes the gradient of every logit: C backward passes of the
  batch, as a `vmap` over one-hot cotangents.
  """

  def step(logits, vjp, label):
    num_classes = logits.shape[-1]
    one_hots = jnp.broadcast_to(
        jnp.eye(num_classes, dtype=logits.dtype)[:, None, :],
        (num_classes,) + logits.shape)
    (jacobian,) = jax.vmap(vjp)(one_hots)
    return deepfool_step(logits, jacobian, label, deepal_compat)

  return Method(step, max_iter, 1.0 + overshoot)


class _Slots(NamedTuple):
  """The points being attacked, one per slot."""
  rows: jax.Array     # [S] int32 row of each slot's point
  active: jax.Array   # [S] bool, holds a point still to finish
  fresh: jax.Array    # [S] bool, the point has not been evaluated yet
  label: jax.Array    # [S] int32 its original prediction ŷ
  total: jax.Array    # [S, ...] Σ steps
  steps: jax.Array    # [S] int32


def _slot_counts(chunk_size: int, n: int) -> list[int]:
  """The shrinking slot counts of the phases: S, S/8, S/64, … down to 1."""
  counts = [min(chunk_size, n)]
  while counts[-1] >= 8:
    counts.append(counts[-1] // 8)
  return counts


def attack(logits_fn, method: Method, images: jax.Array,
           include_mask: jax.Array | None = None,
           chunk_size: int = DEFAULT_CHUNK,
           keep_perturbation: bool = True) -> Attack:
  """Runs `method` on every row of `images` in `include_mask`.

  A `lax.while_loop` steps `chunk_size` slots at once, each holding one
  point (one forward and backward pass of the slots per iteration). A slot
  whose point has flipped, or has taken `max_iter` steps, writes its result
  and takes the next point to attack, so a point that needs many steps holds
  up only its own slot. Once no point is left to start and at most 1/8 of
  the slots are busy, the busy ones move to a loop of 1/8 as many slots
  (and so on), so the last slow points do not pay for a full batch. The
  rows are started in index order.

  Args:
    logits_fn: `f(x [B, ...]) -> logits [B, C]`; row b of the logits must
      depend on row b of x only (a model in eval mode).
    method: the attack (`bim`, `deepfool`).
    images: [N, ...] points.
    include_mask: [N] bool rows to attack, or None for all; other rows'
      results are zero.
    chunk_size: static number of slots of the first phase.
    keep_perturbation: return η [N, ...] (else `perturbation` is None).

  Returns:
    The `Attack` of every row.
  """
  images = jnp.asarray(images)
  n = images.shape[0]
  if include_mask is None:
    order, count = jnp.arange(n, dtype=jnp.int32), n
  else:
    order = jnp.argsort(~include_mask, stable=True).astype(jnp.int32)
    count = jnp.sum(include_mask, dtype=jnp.int32)
  results = Attack(jnp.zeros((n,), jnp.float32), jnp.zeros((n,), jnp.int32),
                   jnp.zeros((n,), bool),
                   jnp.zeros_like(images) if keep_perturbation else None)

  def body(carry):
    slots, cursor, results = carry
    x = images[slots.rows]
    logits, vjp = jax.vjp(logits_fn, x + method.scale * slots.total)
    prediction = jnp.argmax(logits, -1).astype(jnp.int32)
    label = jnp.where(slots.fresh, prediction, slots.label)
    flipped = prediction != label
    done = slots.active & (flipped | (slots.steps >= method.max_iter))
    move = slots.active & ~done
    total = slots.total + method.step(logits, vjp, label) * _per_row(
        move, slots.total)
    perturbation = method.scale * slots.total
    # Finished slots write their row; the others write out of bounds.
    out = jnp.where(done, slots.rows, n)
    sq_norm = jnp.sum(perturbation.reshape(perturbation.shape[0], -1)**2, -1)
    results = Attack(
        results.sq_norm.at[out].set(sq_norm.astype(jnp.float32),
                                    mode='drop'),
        results.steps.at[out].set(slots.steps, mode='drop'),
        results.flipped.at[out].set(flipped, mode='drop'),
        None if results.perturbation is None else
        results.perturbation.at[out].set(perturbation, mode='drop'))
    # Finished slots take the next points of the order.
    position = cursor + jnp.cumsum(done) - 1
    refill = done & (position < count)
    rows = jnp.where(refill, order[jnp.minimum(position, n - 1)], slots.rows)
    slots = _Slots(rows, jnp.where(done, refill, slots.active), done, label,
                   total * _per_row(~done, total),
                   jnp.where(done, 0, slots.steps + move))
    return slots, cursor + jnp.sum(done, dtype=jnp.int32), results

  counts = _slot_counts(chunk_size, n)
  first = jnp.arange(counts[0], dtype=jnp.int32)
  slots = _Slots(order[first], first < count, jnp.ones_like(first, bool),
                 jnp.zeros_like(first),
                 jnp.zeros((counts[0],) + images.shape[1:], images.dtype),
                 jnp.zeros_like(first))
  carry = (slots, jnp.minimum(count, counts[0]), results)
  for phase, num_slots in enumerate(counts):
    if phase:
      # The busy slots first, in a loop of `num_slots` slots.
      busy_first = jnp.argsort(~carry[0].active, stable=True)[:num_slots]
      carry = (jax.tree.map(lambda a: a[busy_first], carry[0]), *carry[1:])
    if phase + 1 < len(counts):
      fits_next = counts[phase + 1]
      cond = lambda c, k=fits_next: (c[1] < count) | (
          jnp.sum(c[0].active) > k)
    else:
      cond = lambda c: jnp.any(c[0].active)
    carry = jax.lax.while_loop(cond, body, carry)
  return carry[2]


def bim_attack(logits_fn, x: jax.Array, *, eps: float, max_iter: int,
               chunk_size: int = DEFAULT_CHUNK) -> Attack:
  """BIM on every row of `x` [B, ...] (see `attack`, `bim`)."""
  return attack(logits_fn, bim(eps, max_iter), x, chunk_size=chunk_size)


def deepfool_attack(logits_fn, x: jax.Array, *, max_iter: int,
                    overshoot: float, deepal_compat: bool = False,
                    chunk_size: int = DEFAULT_CHUNK) -> Attack:
  """DeepFool on every row of `x` [B, ...] (see `attack`, `deepfool`)."""
  return attack(logits_fn, deepfool(max_iter, overshoot, deepal_compat), x,
                chunk_size=chunk_size)


def _init(key, inputs, labeled_mask, *, augment, augment_rows, **hparams):
  """`()`, or an empty `AugmentBuffer` when `augment`."""
  del key, labeled_mask, hparams
  if not augment:
    return ()
  images = inputs['images']
  rows = augment_rows or images.shape[0]
  return AugmentBuffer(jnp.zeros((rows,), jnp.int32),
                       jnp.zeros((rows,) + images.shape[1:], images.dtype),
                       jnp.zeros((), jnp.int32))


def _store(buffer: AugmentBuffer, selected: jax.Array,
           copies: jax.Array) -> AugmentBuffer:
  """`buffer` with `selected` and their `copies` appended (dropped if full)."""
  capacity = buffer.indices.shape[0]
  at = buffer.count + jnp.arange(selected.shape[0])
  return AugmentBuffer(
      buffer.indices.at[at].set(selected, mode='drop'),
      buffer.images.at[at].set(copies.astype(buffer.images.dtype),
                               mode='drop'),
      jnp.minimum(buffer.count + selected.shape[0], capacity))


def augmented_train_set(state, train_set):
  """The training-set hook: adds the buffer's copies with the oracle's labels.

  Args:
    state: the strategy state, `()` (no augmentation) or an `AugmentBuffer`.
    train_set: `jal.train.TrainSet` whose `labels` hold the revealed labels.

  Returns:
    `train_set` with `extra_images`/`extra_labels`/`extra_mask` from the
    buffer; a row is used once its point's label is known.
  """
  if not isinstance(state, AugmentBuffer):
    return train_set
  labels = train_set.labels[state.indices]
  in_use = (jnp.arange(state.indices.shape[0]) < state.count) & (labels >= 0)
  return train_set._replace(extra_images=state.images,
                            extra_labels=jnp.where(in_use, labels, -1),
                            extra_mask=in_use)


def _select(method, never_flipped_score, inputs, labeled_mask, state,
            query_size, *, chunk_size, augment):
  """The `query_size` unlabeled points of smallest ‖η‖² (and their copies)."""
  logits_fn, images = inputs['logits_fn'], jnp.asarray(inputs['images'])
  pool = attack(logits_fn, method, images, ~labeled_mask, chunk_size,
                keep_perturbation=False)
  sq_norm = pool.sq_norm
  if never_flipped_score is not None:
    sq_norm = jnp.where(pool.flipped, sq_norm, never_flipped_score)
  selected = top_k_unlabeled(-sq_norm, labeled_mask, query_size)
  if augment:
    picked = images[selected]
    copies = picked + attack(logits_fn, method, picked,
                             chunk_size=chunk_size).perturbation
    state = _store(state, selected, copies)
  return selected, state


def _bim_select(key, inputs, labeled_mask, state, query_size, *, eps,
                max_iter, chunk_size, augment, augment_rows):
  del key, augment_rows
  return _select(bim(eps, max_iter), jnp.inf, inputs, labeled_mask, state,
                 query_size, chunk_size=chunk_size, augment=augment)


def _deepfool_select(key, inputs, labeled_mask, state, query_size, *,
                     max_iter, overshoot, deepal_compat, chunk_size, augment,
                     augment_rows):
  del key, augment_rows
  return _select(deepfool(max_iter, overshoot, deepal_compat), None, inputs,
                 labeled_mask, state, query_size, chunk_size=chunk_size,
                 augment=augment)


_SHARED_HPARAMS = dict(chunk_size=DEFAULT_CHUNK, augment=False,
                       augment_rows=0)
_SHARED_RANGES = dict(chunk_size=ranges.POSITIVE_INT, augment=ranges.BOOL,
                      augment_rows=ranges.NON_NEGATIVE_INT)

STRATEGIES = (
    Strategy('adversarial_bim', ('logits_fn', 'images'), _bim_select,
             init=_init, train_set=augmented_train_set,
             hparams=dict(eps=0.05, max_iter=100, **_SHARED_HPARAMS),
             ranges=dict(eps=ranges.POSITIVE, max_iter=ranges.POSITIVE_INT,
                         **_SHARED_RANGES)),
    Strategy('adversarial_deepfool', ('logits_fn', 'images'),
             _deepfool_select, init=_init, train_set=augmented_train_set,
             hparams=dict(max_iter=50, overshoot=0.02, deepal_compat=False,
                          **_SHARED_HPARAMS),
             ranges=dict(max_iter=ranges.POSITIVE_INT,
                         overshoot=ranges.NON_NEGATIVE,
                         deepal_compat=ranges.BOOL, **_SHARED_RANGES)),
)
