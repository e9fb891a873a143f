"""DFAL's attacks (DeepFool, BIM) against closed forms on linear models, the
selection, the augmentation buffer through the training-set hook, and runs
of both strategies through `jal.loop.run`."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jal import acquisition
from jal import loop
from jal import rounds
from jal import train
from jal.acquisition import adversarial
from tests import resume
from tests.synthetic import make_blobs_dataset


def _linear(num_inputs, num_classes, seed=0):
  """A linear model f(x) = x W + b: (logits_fn, W [D, C], b [C]) float64
  copies for the references."""
  rng = np.random.default_rng(seed)
  weights = rng.normal(size=(num_inputs, num_classes)).astype(np.float32)
  bias = rng.normal(size=num_classes).astype(np.float32)
  return (lambda x: x @ weights + bias, weights.astype(np.float64),
          bias.astype(np.float64))


def _nearest_boundary(x, weights, bias):
  """Per row: (ŷ, the nearest class l, its distance |f_l − f_ŷ|/‖w_l − w_ŷ‖),
  by enumerating the classes."""
  logits = x @ weights + bias
  out = []
  for row in logits:
    label = int(np.argmax(row))
    distances = {k: abs(row[k] - row[label]) /
                 np.linalg.norm(weights[:, k] - weights[:, label])
                 for k in range(len(row)) if k != label}
    nearest = min(distances, key=distances.get)
    out.append((label, nearest, distances[nearest]))
  return out


def test_deepfool_first_step_is_the_closed_form_and_lands_on_the_boundary():
  logits_fn, weights, bias = _linear(6, 5)
  x = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32)
  attack = adversarial.deepfool_attack(logits_fn, x, max_iter=1,
                                       overshoot=0.0)
  r = np.asarray(attack.perturbation, np.float64)
  np.testing.assert_array_equal(attack.steps, 1)
  for i, (label, nearest, distance) in enumerate(
      _nearest_boundary(x, weights, bias)):
    np.testing.assert_allclose(np.linalg.norm(r[i]), distance, rtol=1e-5)
    direction = weights[:, nearest] - weights[:, label]
    np.testing.assert_allclose(r[i] / np.linalg.norm(r[i]),
                               direction / np.linalg.norm(direction),
                               atol=1e-5)
    moved = (x[i] + r[i]) @ weights + bias
    assert abs(moved[nearest] - moved[label]) < 1e-5
    assert np.max(moved) - moved[label] < 1e-5  # on, not past, the boundary

  overshot = adversarial.deepfool_attack(logits_fn, x, max_iter=1,
                                         overshoot=0.02)
  assert np.all(overshot.flipped)
  np.testing.assert_allclose(overshot.perturbation, 1.02 * r, rtol=1e-5,
                             atol=1e-7)
  crossed = (x + np.asarray(overshot.perturbation)) @ weights + bias
  np.testing.assert_array_equal(
      np.argmax(crossed, -1),
      [nearest for _, nearest, _ in _nearest_boundary(x, weights, bias)])


def test_deepfool_deepal_compat_steps_towards_the_last_class():
  # f_0 = 0, f_1 = x_0 − 1, f_2 = −3, f_3 = x_1 − 5: at x = 0 the label is 0,
  # class 1 is at distance 1 and class 3 (the last) at distance 5.
  weights = np.zeros((2, 4), np.float32)
  weights[0, 1] = weights[1, 3] = 1.0
  bias = np.array([0.0, -1.0, -3.0, -5.0], np.float32)
  logits_fn = lambda x: x @ weights + bias
  x = np.zeros((1, 2), np.float32)
  original = adversarial.deepfool_attack(logits_fn, x, max_iter=1,
                                         overshoot=0.0)
  compat = adversarial.deepfool_attack(logits_fn, x, max_iter=1,
                                       overshoot=0.0, deepal_compat=True)
  np.testing.assert_allclose(original.perturbation, [[1.0, 0.0]], atol=1e-6)
  np.testing.assert_allclose(compat.perturbation, [[0.0, 5.0]], atol=1e-6)
  # Run to the end with an overshoot, both flip: at squared distances
  # 1.02² and 5.1².
  scores = [adversarial.deepfool_attack(
      logits_fn, x, max_iter=50, overshoot=0.02, deepal_compat=c).sq_norm
            for c in (False, True)]
  np.testing.assert_allclose(np.concatenate(scores), [1.02**2, 5.1**2],
                             rtol=1e-5)


def test_bim_flips_after_the_closed_form_number_of_steps():
  logits_fn, weights, bias = _linear(8, 2, seed=2)
  eps = 0.05
  x = np.random.default_rng(3).normal(size=(64, 8)).astype(np.float32)
  logits = x @ weights + bias
  label = np.argmax(logits, -1)
  margin = np.abs(logits[:, 0] - logits[:, 1])  # m = f_ŷ − f_o
  l1 = np.abs(weights[:, 0] - weights[:, 1]).sum()
  ratio = margin / (eps * l1)
  # Away from integer ratios, where float32 rounding decides the count.
  keep = (np.abs(ratio - np.round(ratio)) > 0.02) & (margin < 12)
  assert keep.sum() > 30
  # 16 slots, then 2, for > 30 points needing 1 to ~40 steps: refills and
  # the shrinking tail phase.
  attack = adversarial.bim_attack(logits_fn, x[keep], eps=eps, max_iter=400,
                                  chunk_size=16)
  expected = np.floor(ratio[keep]).astype(int) + 1
  np.testing.assert_array_equal(attack.steps, expected)
  assert np.all(attack.flipped)
  # Each step moves every coordinate by ε along sign(w_o − w_ŷ).
  other = 1 - label[keep]
  signs = np.sign(weights[:, other] - weights[:, label[keep]]).T
  np.testing.assert_allclose(attack.perturbation,
                             eps * expected[:, None] * signs, rtol=1e-5)


def test_bim_direction_is_the_sign_of_the_cross_entropy_gradient():
  rng = np.random.default_rng(4)
  w1 = rng.normal(size=(5, 7)).astype(np.float32)
  w2 = rng.normal(size=(7, 4)).astype(np.float32)
  logits_fn = lambda x: jnp.tanh(x @ w1) @ w2
  x = rng.normal(size=(10, 5)).astype(np.float32)
  label = jnp.argmax(logits_fn(x), -1)
  ce = lambda z: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(
      logits_fn(z), label))
  expected = jax.grad(ce)(x)
  logits, vjp = jax.vjp(logits_fn, x)
  (got,) = vjp(adversarial._ce_gradient_cotangent(logits, label))
  # A positive multiple per row: 1 / Σ_{c≠ŷ} p_c.
  others = 1 - jnp.max(jax.nn.softmax(logits), -1)
  np.testing.assert_allclose(got * others[:, None], expected, rtol=1e-4,
                             atol=1e-6)


def test_max_iter_caps_the_attacks_and_unflipped_points_rank_last():
  logits_fn, weights, bias = _linear(4, 2, seed=5)
  eps = 0.05
  l1 = np.abs(weights[:, 0] - weights[:, 1]).sum()
  rng = np.random.default_rng(6)
  x = rng.normal(size=(40, 4)).astype(np.float32)
  logits = x @ weights + bias
  steps_needed = np.floor(np.abs(logits[:, 0] - logits[:, 1]) /
                          (eps * l1)).astype(int) + 1
  cap = int(np.median(steps_needed))
  attack = adversarial.bim_attack(logits_fn, x, eps=eps, max_iter=cap)
  np.testing.assert_array_equal(attack.steps, np.minimum(steps_needed, cap))
  np.testing.assert_array_equal(attack.flipped, steps_needed <= cap)
  labeled = np.zeros(40, bool)
  labeled[:5] = True
  flippable = int(np.sum((steps_needed <= cap) & ~labeled))
  selected = np.asarray(acquisition.query(
      acquisition.get('adversarial_bim'), jax.random.key(0),
      {'logits_fn': logits_fn, 'images': x}, jnp.asarray(labeled),
      flippable + 3, eps=eps, max_iter=cap, chunk_size=16))
  # The flipped unlabeled points by step count, then unflipped by index.
  unflipped = np.flatnonzero((steps_needed > cap) & ~labeled)
  assert set(selected[:flippable]) == set(
      np.flatnonzero((steps_needed <= cap) & ~labeled))
  np.testing.assert_array_equal(selected[flippable:], unflipped[:3])
  order = steps_needed[selected[:flippable]]
  assert np.all(np.diff(order) >= 0)

  # DeepFool stuck on a flat model keeps its (zero) perturbation.
  flat = adversarial.deepfool_attack(lambda z: jnp.zeros((z.shape[0], 3)) +
                                     jnp.array([1.0, 0.0, 0.0]), x,
                                     max_iter=7, overshoot=0.02)
  np.testing.assert_array_equal(flat.steps, 7)
  assert not np.any(flat.flipped)
  np.testing.assert_array_equal(flat.perturbation, 0.0)


def test_deepfool_selects_the_smallest_distances_of_unlabeled_points():
  chunk_size = 7  # fewer slots than points: slots are refilled
  # Two classes, linear: DeepFool reaches the boundary in one step, so
  # ‖η‖ = (1 + overshoot)·|f_0 − f_1| / ‖w_0 − w_1‖.
  logits_fn, weights, bias = _linear(5, 2, seed=7)
  x = np.random.default_rng(8).normal(size=(50, 5)).astype(np.float32)
  labeled = np.random.default_rng(9).random(50) < 0.3
  logits = x @ weights + bias
  distance = np.abs(logits[:, 0] - logits[:, 1]) / np.linalg.norm(
      weights[:, 0] - weights[:, 1])
  distance[labeled] = np.inf
  selected = acquisition.query(
      acquisition.get('adversarial_deepfool'), jax.random.key(0),
      {'logits_fn': logits_fn, 'images': x}, jnp.asarray(labeled), 8,
      chunk_size=chunk_size)
  np.testing.assert_array_equal(selected, np.argsort(distance)[:8])
  sq_norm, steps, _, _ = adversarial.attack(
      logits_fn, adversarial.deepfool(50, 0.02), x, jnp.asarray(~labeled),
      chunk_size, keep_perturbation=False)
  np.testing.assert_allclose(np.asarray(sq_norm)[~labeled],
                             (1.02 * distance[~labeled])**2, rtol=1e-4)
  np.testing.assert_array_equal(np.asarray(steps)[~labeled], 1)


def test_augment_buffer_reaches_training_with_the_oracles_labels(
    tiny_config):
  dataset = make_blobs_dataset(num_pool=120)
  tiny_config.strategy = 'adversarial_bim'
  tiny_config.num_epochs = 1
  tiny_config.hparams.adversarial_bim.update(augment=True, augment_rows=15)
  exp, data = loop.setup(tiny_config, dataset)
  state = loop.init_state(exp, data, lambda idx: dataset.pool_labels[idx])
  fns = loop.RoundFns(exp)
  assert int(rounds.train_set(exp, state).extra_mask.sum()) == 0
  trained = fns.train(data, state)
  selected, buffer = fns.query(data, trained, state)
  selected = np.asarray(selected)
  # Before the oracle answers, the copies are not trained on.
  unrevealed = adversarial.augmented_train_set(
      buffer, train.TrainSet(state.labeled_mask, state.labels))
  assert int(unrevealed.extra_mask.sum()) == 0
  revealed = fns.reveal(state, selected, data.pool_labels[selected], buffer,
                        trained)
  rows = rounds.train_set(exp, revealed)
  np.testing.assert_array_equal(rows.extra_mask, np.arange(15) < 10)
  np.testing.assert_array_equal(rows.extra_labels[:10],
                                dataset.pool_labels[selected])
  logits_fn = rounds.predictions(exp, None, trained, data.pool_images,
                                 state.labeled_mask, ('logits_fn',))[
                                     'logits_fn']
  attack = adversarial.bim_attack(logits_fn, data.pool_images[selected],
                                  eps=0.05, max_iter=100)
  assert np.all(attack.flipped)
  np.testing.assert_allclose(
      rows.extra_images[:10],
      dataset.pool_images[selected] + np.asarray(attack.perturbation),
      atol=1e-5)
  # The copies change the next training.
  plain = fns.train(data, revealed._replace(
      strategy_state=buffer._replace(count=jnp.int32(0))))
  augmented = fns.train(data, revealed)
  leaves = lambda t: np.concatenate([np.ravel(v) for v in
                                     jax.tree.leaves(t.variables)])
  assert not np.allclose(leaves(plain), leaves(augmented))
  # A second query fills the buffer; the copies beyond it are dropped.
  second, full = fns.query(data, augmented, revealed)
  assert int(full.count) == 15
  np.testing.assert_array_equal(full.indices[:10], selected)
  np.testing.assert_array_equal(full.indices[10:], np.asarray(second)[:5])


def _records(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return [{k: v for k, v in json.loads(line).items() if 'seconds' not in k}
            for line in f]


def test_bim_runs_in_the_loop(tiny_config, tmp_path):
  tiny_config.strategy = 'adversarial_bim'
  tiny_config.num_epochs = 1
  tiny_config.num_rounds = 2
  summary = loop.run(tiny_config, str(tmp_path))
  records = _records(tmp_path)
  chosen = sum((r['selected'] for r in records), [])
  # The loop itself checks each query is distinct and unlabeled.
  assert [r['num_labeled'] for r in records] == [20, 30, 40]
  assert len(set(chosen)) == 20
  assert 0.0 < summary['final_accuracy'] <= 1.0


def test_augmented_deepfool_resumes_exactly(tiny_config, tmp_path):
  tiny_config.strategy = 'adversarial_deepfool'
  tiny_config.num_epochs = 1
  tiny_config.num_rounds = 2
  tiny_config.hparams.adversarial_deepfool.update(augment=True,
                                                  deepal_compat=True)
  loop.run(tiny_config, str(tmp_path / 'whole'))
  records = _records(tmp_path / 'whole')
  assert len(set(sum((r['selected'] for r in records), []))) == 20

  resume.run_interrupted(tiny_config, str(tmp_path / 'resumed'))
  assert _records(tmp_path / 'resumed') == records
