"""Discriminative active learning (DAL; Gissin & Shalev-Shwartz 2019).

A binary MLP learns to tell labeled points (class 0) from unlabeled ones
(class 1) in the task model's embedding space; the unlabeled points it is most
sure are unlabeled, those least like anything labeled, are queried. The query
is split into sub-batches: after each, the picks join the labeled side and a
fresh classifier is trained, which makes the batch diverse without the
classifier seeing any class label (specs/methods.md §1.8b).

Each sub-batch follows the authors' `DiscriminativeRepresentationSampling`
and `train_discriminative_model`: draw min(⌊ratio·|L|⌋, |U|) unlabeled points
at random; train a fresh MLP (3 hidden ReLU layers, a 2-way softmax, Glorot
initialization) on labeled ∪ that sample with Adam, minibatches of 1024 and
class weights N/N_class, stopping after the first epoch whose training
accuracy (measured on the fly, as Keras logs it) exceeds `acc_threshold`.

Where jal departs from the authors' code, and the options that restore it:

- Picks: the paper queries argmax over all of U of P(unlabeled); the code
  scores only the random sample it trained on. Default: all of U;
  `pick_from_subsample=True` follows the code.
- Class weights: the code computes them on one-hot targets, where both
  classes count N, so both weights are 1 and the balancing its authors call
  crucial never happens. Default: N/N_class; `class_weighted=False` follows
  the code.
- Sub-batch sizes: the code takes ⌊b/s⌋ per sub-batch and adds sub-batches
  until b is reached (b=105, s=20 gives 21 of 5; b < s never ends). jal uses
  min(s, b) sub-batches whose sizes differ by at most one, the larger first.
- Learning rate: the code picks it from the input shape (1e-4 with batch 128
  and 1000 epochs for LeNet's 128-d representation, 2e-4 with batch 1024 and
  500 epochs for VGG's 512-d one). jal's defaults are the 512-d setting
  (`lr` 2e-4, `batch_size` 1024, `max_epochs` 500) for any embedding size.
- Ranking: by the logit difference, which orders points as P(unlabeled)
  does but does not saturate to ties at 1.0 in float32.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jal import chunking
from jal import train
from jal.acquisition import ranges
from jal.acquisition.base import stateless, top_k_unlabeled_first

HIDDEN_LAYERS = 3


def sub_batch_sizes(query_size: int, sub_batches: int) -> tuple[int, ...]:
  """How many points each sub-batch picks: min(s, b) sizes summing to b.

  The sizes differ by at most one; the first b mod s get the extra point.
  """
  count = min(sub_batches, query_size)
  base, extra = divmod(query_size, count)
  return tuple(base + (i < extra) for i in range(count))


def init_discriminator(key: jax.Array, dim: int, width: int) -> list:
  """Glorot-uniform weights and zero biases (Keras' defaults) of the MLP.

  Returns:
    [(w [in, out], b [out])] for D → width ×3 → 2.
  """
  sizes = (dim,) + (width,) * HIDDEN_LAYERS + (2,)
  params = []
  for layer_key, fan_in, fan_out in zip(jax.random.split(key, len(sizes) - 1),
                                        sizes[:-1], sizes[1:]):
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    params.append((jax.random.uniform(layer_key, (fan_in, fan_out),
                                      minval=-limit, maxval=limit),
                   jnp.zeros((fan_out,))))
  return params


def discriminator_logits(params: list, x: jax.Array) -> jax.Array:
  """Logits [B, 2] (labeled, unlabeled) of the MLP on x [B, D]."""
  for w, b in params[:-1]:
    x = jax.nn.relu(x @ w + b)
  w, b = params[-1]
  return x @ w + b


def weighted_loss(logits: jax.Array, targets: jax.Array, valid: jax.Array,
                  class_weights: jax.Array) -> jax.Array:
  """Keras' class-weighted categorical cross-entropy of one minibatch.

  Args:
    logits: [B, 2].
    targets: [B] int32, 0 = labeled, 1 = unlabeled.
    valid: [B] float, 1 for rows of the batch, 0 for padding.
    class_weights: [2].

  Returns:
    Σ valid·w[y]·CE / Σ valid.
  """
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  weighted = valid * class_weights[targets] * losses
  return jnp.sum(weighted) / jnp.maximum(jnp.sum(valid), 1.0)


class Fit(NamedTuple):
  """A trained discriminator.

  Attributes:
    params: the MLP's parameters (`init_discriminator`'s layout).
    epochs: int32 scalar, epochs run (below `max_epochs` when training
      accuracy passed the threshold first).
    accuracy: float32 scalar, the last epoch's training accuracy.
  """
  params: list
  epochs: jax.Array
  accuracy: jax.Array


def fit_discriminator(key: jax.Array, embeddings: jax.Array,
                      labeled_mask: jax.Array, sample_mask: jax.Array, *,
                      width: int, lr: float, batch_size: int, max_epochs: int,
                      acc_threshold: float, class_weighted: bool) -> Fit:
  """Trains labeled (0) against sampled unlabeled (1) rows, stopping early.

  A `lax.while_loop` over epochs ends after `max_epochs`, or after the first
  epoch whose training accuracy exceeds `acc_threshold` (at once, with no
  rows to train on). Accuracy is counted
  on each minibatch before its update, as Keras logs it.

  Args:
    key: PRNG key.
    embeddings: [N, D] float32.
    labeled_mask: [N] bool, the class-0 rows.
    sample_mask: [N] bool, the class-1 rows (labeled rows in it are ignored).
    width: hidden units per layer.
    lr: Adam learning rate.
    batch_size: static minibatch size (at most N is used).
    max_epochs: static cap on epochs.
    acc_threshold: stop once training accuracy exceeds this.
    class_weighted: weigh each class by N_train / N_class (else 1).

  Returns:
    The `Fit`.
  """
  n, dim = embeddings.shape
  batch = min(batch_size, n)
  targets = (~labeled_mask).astype(jnp.int32)
  rows_mask = labeled_mask | sample_mask
  count = jnp.sum(rows_mask, dtype=jnp.int32)
  class_counts = jnp.stack([jnp.sum(labeled_mask), count - jnp.sum(
      labeled_mask)]).astype(jnp.float32)
  class_weights = jnp.where(class_weighted,
                            count / jnp.maximum(class_counts, 1.0), 1.0)
  init_key, order_key = jax.random.split(key)
  params = init_discriminator(init_key, dim, width)
  tx = optax.adam(lr)

  def loss_fn(params, rows, valid):
    logits = discriminator_logits(params, embeddings[rows])
    correct = valid * (jnp.argmax(logits, -1) == targets[rows])
    return (weighted_loss(logits, targets[rows], valid, class_weights),
            jnp.sum(correct))

  def run_epoch(carry):
    epoch, params, opt_state, _ = carry
    order = train.labeled_first_order(jax.random.fold_in(order_key, epoch),
                                      rows_mask)

    def step(s, carry):
      params, opt_state, correct = carry
      rows, valid = train.minibatch(order, s * batch, count, batch)
      grads, batch_correct = jax.grad(loss_fn, has_aux=True)(params, rows,
                                                             valid)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state,
              correct + batch_correct)

    params, opt_state, correct = jax.lax.fori_loop(
        0, chunking.num_chunks(count, batch), step,
        (params, opt_state, jnp.zeros(())))
    return (epoch + 1, params, opt_state,
            correct / jnp.maximum(count, 1).astype(jnp.float32))

  def keep_going(carry):
    epoch, _, _, accuracy = carry
    return (epoch < max_epochs) & (accuracy <= acc_threshold) & (count > 0)

  epochs, params, _, accuracy = jax.lax.while_loop(
      keep_going, run_epoch,
      (jnp.zeros((), jnp.int32), params, tx.init(params), jnp.full((), -1.0)))
  return Fit(params, epochs, accuracy)


def unlabeled_sample(key: jax.Array, labeled_mask: jax.Array,
                     unlabeled_ratio: float) -> jax.Array:
  """A uniform random [N] bool mask of min(⌊ratio·|L|⌋, |U|) unlabeled rows."""
  n = labeled_mask.shape[0]
  num_labeled = jnp.sum(labeled_mask, dtype=jnp.int32)
  size = jnp.minimum(jnp.floor(unlabeled_ratio * num_labeled).astype(jnp.int32),
                     n - num_labeled)
  order = train.labeled_first_order(key, ~labeled_mask)
  return jnp.zeros(n, bool).at[order].set(jnp.arange(n) < size)


def discriminative_select(key: jax.Array, embeddings: jax.Array,
                          labeled_mask: jax.Array, query_size: int, *,
                          sub_batches: int = 20, width: int = 256,
                          lr: float = 2e-4, batch_size: int = 1024,
                          max_epochs: int = 500, acc_threshold: float = 0.98,
                          unlabeled_ratio: float = 10.0,
                          class_weighted: bool = True,
                          pick_from_subsample: bool = False,
                          chunk_size: int = chunking.DEFAULT_CHUNK
                          ) -> tuple[jax.Array, jax.Array]:
  """DAL's picks, and the epochs each sub-batch's classifier trained.

  Args:
    key: PRNG key; sub-batch i uses `fold_in(key, i)`.
    embeddings: [N, D] float32.
    labeled_mask: [N] bool.
    query_size: static b, at most the unlabeled count.
    sub_batches: classifiers trained per query (min(s, b) are used).
    width, lr, batch_size, max_epochs, acc_threshold, class_weighted: of each
      classifier (`fit_discriminator`).
    unlabeled_ratio: each classifier sees ⌊ratio·|L|⌋ unlabeled points (or
      all of them, if fewer), |L| counting earlier sub-batches' picks.
    pick_from_subsample: score only the sampled unlabeled points (the
      authors' code); otherwise all unlabeled points (the paper).
    chunk_size: pool rows per scoring chunk.

  Returns:
    indices [query_size] int32, distinct unlabeled points in pick order, and
    epochs [min(sub_batches, query_size)] int32.
  """
  n = embeddings.shape[0]
  sizes = sub_batch_sizes(query_size, sub_batches)
  largest = sizes[0]
  size_of = jnp.asarray(sizes, jnp.int32)
  offset_of = jnp.cumsum(size_of) - size_of

  def sub_batch(i, carry):
    labeled, picks, epochs = carry
    sample_key, fit_key = jax.random.split(jax.random.fold_in(key, i))
    sample = unlabeled_sample(sample_key, labeled, unlabeled_ratio)
    fit = fit_discriminator(
        fit_key, embeddings, labeled, sample, width=width, lr=lr,
        batch_size=batch_size, max_epochs=max_epochs,
        acc_threshold=acc_threshold, class_weighted=class_weighted)
    margins = chunking.map_rows(
        lambda x: jnp.diff(discriminator_logits(fit.params, x), axis=-1)[:, 0],
        [embeddings], chunk_size)
    candidates = jnp.where(pick_from_subsample, sample, ~labeled)
    # Unlabeled points outside the candidates rank after every candidate.
    scores = jnp.where(candidates, margins, -jnp.inf)
    best = top_k_unlabeled_first(scores, labeled, largest)
    taken = jnp.arange(largest) < size_of[i]
    picks = picks.at[jnp.where(taken, offset_of[i] + jnp.arange(largest),
                               query_size)].set(best, mode='drop')
    labeled = labeled.at[jnp.where(taken, best, n)].set(True, mode='drop')
    return labeled, picks, epochs.at[i].set(fit.epochs)

  _, picks, epochs = jax.lax.fori_loop(
      0, len(sizes), sub_batch,
      (labeled_mask, jnp.zeros(query_size, jnp.int32),
       jnp.zeros(len(sizes), jnp.int32)))
  return picks, epochs


def _select(key, inputs, labeled_mask, query_size, sub_batches: int = 20,
            width: int = 256, lr: float = 2e-4, batch_size: int = 1024,
            max_epochs: int = 500, acc_threshold: float = 0.98,
            unlabeled_ratio: float = 10.0, class_weighted: bool = True,
            pick_from_subsample: bool = False,
            chunk_size: int = chunking.DEFAULT_CHUNK):
  """`discriminative`: DAL on the task model's embeddings."""
  picks, _ = discriminative_select(
      key, inputs['embeddings'], labeled_mask, query_size,
      sub_batches=sub_batches, width=width, lr=lr, batch_size=batch_size,
      max_epochs=max_epochs, acc_threshold=acc_threshold,
      unlabeled_ratio=unlabeled_ratio, class_weighted=class_weighted,
      pick_from_subsample=pick_from_subsample, chunk_size=chunk_size)
  return picks


STRATEGIES = (stateless(
    'discriminative', ('embeddings',), _select,
    ranges=dict(sub_batches=ranges.POSITIVE_INT, width=ranges.POSITIVE_INT,
                lr=ranges.POSITIVE, batch_size=ranges.POSITIVE_INT,
                max_epochs=ranges.POSITIVE_INT,
                acc_threshold=ranges.interval(0.0, 1.0),
                unlabeled_ratio=ranges.POSITIVE, class_weighted=ranges.BOOL,
                pick_from_subsample=ranges.BOOL,
                chunk_size=ranges.POSITIVE_INT)),)
