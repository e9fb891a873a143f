"""The detector's figures and threshold, and the head."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.cameratrap import classifier
from jal.cameratrap import embedder as embedder_lib


def _count_by_hand(is_animal, detected):
  """The confusion counts and ratios, one frame at a time."""
  tp = fn = fp = tn = 0
  for truth, decision in zip(is_animal, detected):
    if truth and decision:
      tp += 1
    elif truth:
      fn += 1
    elif decision:
      fp += 1
    else:
      tn += 1
  return dict(accuracy=(tp + tn) / len(is_animal), precision=tp / (tp + fp),
              recall=tp / (tp + fn), empty_precision=tn / (tn + fn),
              empty_recall=tn / (tn + fp), animal_as_animal=tp,
              animal_as_empty=fn, empty_as_animal=fp, empty_as_empty=tn)


def test_detection_stats_match_counting_by_hand():
  rng = np.random.default_rng(0)
  is_animal = rng.random(200) < 0.3
  detected = np.where(rng.random(200) < 0.8, is_animal, ~is_animal)
  assert classifier.detection_stats(is_animal, detected) == pytest.approx(
      _count_by_hand(is_animal, detected))


def test_seed_table_1_counts_give_its_figures():
  # Seed 001's Snapshot Serengeti confusion (GT empty: 2,219,404 kept empty,
  # 131,288 called animal; GT animal: 133,769 called empty, 714,276 kept).
  is_animal = np.repeat([False, False, True, True],
                        [2219404, 131288, 133769, 714276])
  detected = np.repeat([False, True, False, True],
                       [2219404, 131288, 133769, 714276])
  stats = classifier.detection_stats(is_animal, detected)
  assert stats['accuracy'] == pytest.approx(0.9171, abs=5e-5)
  assert stats['precision'] == pytest.approx(0.8447, abs=5e-5)
  assert stats['recall'] == pytest.approx(0.8423, abs=5e-5)


def test_animal_probability_is_the_heads_softmax_and_threshold_inclusive():
  key = jax.random.key(0)
  params = embedder_lib.init(key, (8, 8, 1), 16, 2)
  images = jax.random.normal(jax.random.key(1), (10, 8, 8, 1))
  prob = np.asarray(classifier.animal_probability(params, images,
                                                  chunk_size=4))
  net = embedder_lib.network(16)
  embedding = net.apply(params.variables, images).embedding
  logits = np.maximum(np.asarray(embedding), 0) @ np.asarray(
      params.head['w']) + np.asarray(params.head['b'])
  expected = np.exp(logits[:, 1]) / np.exp(logits).sum(-1)
  np.testing.assert_allclose(prob, expected, rtol=1e-5)
  threshold = float(np.sort(prob)[5])
  kept = prob >= threshold
  assert kept.sum() == 5 and kept[np.argsort(prob)[5]]


def test_head_learns_separable_features_from_few_labels():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 8)) * 3
  labels = rng.integers(0, 3, 300).astype(np.int32)
  features = (centres[labels] + rng.normal(size=(300, 8))).astype(np.float32)
  mask = np.zeros(300, bool)
  mask[:15] = True
  head = classifier.fit_head(jax.random.key(0), jnp.asarray(features),
                             jnp.asarray(labels), jnp.asarray(mask),
                             num_classes=3, hidden_size=16, batch_size=8,
                             num_steps=300, learning_rate=1e-2)
  log_probs = classifier.head_log_probs(head, jnp.asarray(features),
                                        num_classes=3, hidden_size=16,
                                        chunk_size=64)
  np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
  assert np.mean(np.asarray(log_probs).argmax(-1) == labels) > 0.95


def test_head_reads_only_the_labeled_rows():
  rng = np.random.default_rng(1)
  features = rng.normal(size=(50, 4)).astype(np.float32)
  labels = rng.integers(0, 2, 50).astype(np.int32)
  mask = np.arange(50) < 10
  scrambled = labels.copy()
  scrambled[~mask] = 1 - scrambled[~mask]
  fit = lambda y: classifier.fit_head(
      jax.random.key(0), jnp.asarray(features), jnp.asarray(y),
      jnp.asarray(mask), num_classes=2, hidden_size=8, batch_size=4,
      num_steps=20, learning_rate=1e-2)
  a, b = fit(labels), fit(scrambled)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
