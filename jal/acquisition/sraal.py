"""SRAAL: State-Relabeling Adversarial Active Learning (Zhang et al., CVPR 2020).

Two strategies:

- `oui`: the online uncertainty indicator (eq. 3) of the task model's mean
  prediction V as a plain score, `1 − MINVar(V) / Var(V) · max V`.
- `sraal`: at every query (hook H3), a generator and a state discriminator
  are trained from scratch on the pool. The generator is a VAE
  (`jal.acquisition.vae.VAE`, the unsupervised image reconstructor, decoding
  the first half of z) plus a supervised target learner (an MLP on the second
  half of z → 1024 → 256 → C, trained on the labeled points' labels); the
  unified representation is μ. Per pair of (labeled, unlabeled) minibatches
  (`vae.paired_fit`), `num_vae_steps` generator steps on
  `Σ_{L,U} [w_rec·MSE(x̂, x) + β·mean_batch KL] + w_cls·CE(STL(z_L), y_L)
   + λ·[BCE(D(μ_L), 1) + BCE(D(μ_U), 1)]`
  and `num_adv_steps` discriminator steps on
  `BCE(D(μ_L), 0) + BCE(D(μ_U), OUI(x_U))` (soft targets: the state
  relabeling). The query takes the b unlabeled points with the **highest**
  D(μ). Defaults follow the official code (latent 200, D = μ → 512 ×4 → 1,
  reconstruction weight 5, classifier weight 5, Adam 5e-4, batch 250); its
  learning-rate decay (×0.85 every 20000/30 iterations) is left out, and
  the training length is counted in epochs of minibatch pairs (`num_epochs`)
  rather than 20000 iterations.

The paper's k-center initialisation (Alg. 1) chooses the initial labeled set;
see `kcenter_initial_set`.
"""

import jax
import jax.numpy as jnp
import optax
from flax import linen

from jal import chunking
from jal import cluster
from jal import train
from jal.acquisition import ranges
from jal.acquisition import vae as vae_lib
from jal.acquisition.base import (stateless, top_k_unlabeled,
                                  top_k_unlabeled_first)
from jal.acquisition.vaal import bce


def oui(log_probs: jax.Array, unbiased_variance: bool = False) -> jax.Array:
  """Online uncertainty indicator (SRAAL eq. 3), in [0, 1].

  `1 − MINVar(V) / Var(V) · max V`, V the mean predictive probabilities,
  with `MINVar(V) = (1/C)[(1/C − max V)² + (C − 1)(1/C − (1 − max V)/(C −
  1))²]`, the variance of the flattest vector with the same maximum (the
  seed's eq. 4 prints /(1 − C), a sign typo). 0 for a one-hot V; 1 − max V
  when V's other entries are equal; 1 for a uniform V (0/0, guarded: the
  most uncertain value; along the flat family the limit is 1 − 1/C).

  Args:
    log_probs: [K, N, C] float32 log-probabilities; V averages the K
      predictions' probabilities.
    unbiased_variance: divide Var(V) by C − 1 (the official code's
      `torch.var`) instead of C (the paper's population variance, the
      default). Then the ratio shrinks by (C − 1)/C and a one-hot V scores
      1/C, not 0.

  Returns:
    [N] float32.
  """
  probs = jnp.mean(jnp.exp(log_probs), axis=0)
  c = probs.shape[-1]
  top = jnp.max(probs, axis=-1)
  min_variance = ((1 / c - top)**2 + (c - 1) *
                  (1 / c - (1 - top) / (c - 1))**2) / c
  variance = jnp.var(probs, axis=-1, ddof=1 if unbiased_variance else 0)
  ratio = jnp.clip(min_variance / jnp.where(variance > 0, variance, 1.0),
                   0.0, 1.0)
  return jnp.where(variance > 0, 1.0 - ratio * top, 1.0)


class TargetLearner(linen.Module):
  """SRAAL's supervised target learner: z → 1024 → 256 → C logits."""
  num_classes: int

  @linen.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = linen.relu(linen.Dense(1024)(z))
    h = linen.relu(linen.Dense(256)(h))
    return linen.Dense(self.num_classes)(h)


def generator_terms(vae: vae_lib.VAE, learner: TargetLearner, params,
                    key: jax.Array, x: jax.Array, beta: float,
                    reconstruction_weight: float):
  """One batch through the generator.

  Returns:
    (w_rec·MSE + β·mean KL, μ [B, latent], STL logits [B, C] on the second
    half of the sampled z).
  """
  mean, log_variance = vae.apply(params['vae'], x, method=vae_lib.VAE.encode)
  z = vae_lib.sample_latent(key, mean, log_variance)
  x_hat = vae.apply(params['vae'], z, method=vae_lib.VAE.decode)
  loss = (reconstruction_weight * vae_lib.reconstruction_error(x_hat, x) +
          beta * jnp.mean(vae_lib.kl_divergence(mean, log_variance)))
  logits = learner.apply(params['learner'], z[:, vae.decoder_latents:])
  return loss, mean, logits


def train_sraal(key: jax.Array, images: jax.Array, labels: jax.Array,
                indicator: jax.Array, labeled_mask: jax.Array, *,
                num_classes: int, latent_dim: int = 200, beta: float = 1.0,
                reconstruction_weight: float = 5.0,
                classifier_weight: float = 5.0, adversary_param: float = 1.0,
                num_vae_steps: int = 2, num_adv_steps: int = 1,
                learning_rate: float = 5e-4, batch_size: int = 250,
                num_epochs: int = 30, architecture: str = 'auto'):
  """Trains SRAAL's generator and state discriminator on the pool.

  Args:
    key: PRNG key.
    images: [N, ...] the pool.
    labels: [N] int32 labels (read at labeled rows only).
    indicator: [N] float32 in [0, 1], the discriminator's target for
      unlabeled rows (the OUI).
    labeled_mask: [N] bool.
    num_classes: C of the target learner.
    latent_dim: even size of z (first half decoded, second half classified).
    Other arguments: as in the strategy's hyperparameters.

  Returns:
    (vae, params {'vae', 'learner'}, discriminator, d_params).
  """
  input_shape = images.shape[1:]
  vae = vae_lib.VAE(tuple(input_shape), latent_dim,
                    vae_lib.resolve_architecture(architecture, input_shape),
                    decoder_latents=latent_dim // 2)
  learner = TargetLearner(num_classes)
  discriminator = vae_lib.Discriminator((512,) * 4)
  init_key, learner_key, fit_key = jax.random.split(key, 3)
  vae_params, d_params = vae_lib.init_networks(init_key, vae, discriminator,
                                               input_shape)
  params = {'vae': vae_params, 'learner': learner.init(
      learner_key, jnp.zeros((1, latent_dim - latent_dim // 2)))}
  tx, d_tx = optax.adam(learning_rate), optax.adam(learning_rate)

  def generator_loss(params, d_params, key, labeled_rows, unlabeled_rows):
    labeled_key, unlabeled_key = jax.random.split(key)
    loss_l, mean_l, logits = generator_terms(
        vae, learner, params, labeled_key, images[labeled_rows], beta,
        reconstruction_weight)
    loss_u, mean_u, _ = generator_terms(
        vae, learner, params, unlabeled_key, images[unlabeled_rows], beta,
        reconstruction_weight)
    classification = jnp.mean(
        optax.softmax_cross_entropy_with_integer_labels(
            logits, jnp.maximum(labels[labeled_rows], 0)))
    adversarial = (bce(discriminator.apply(d_params, mean_l), 1.0) +
                   bce(discriminator.apply(d_params, mean_u), 1.0))
    return (loss_l + loss_u + classifier_weight * classification +
            adversary_param * adversarial)

  def discriminator_loss(d_params, mean_l, mean_u, target_u):
    return (bce(discriminator.apply(d_params, mean_l), 0.0) +
            bce(discriminator.apply(d_params, mean_u), target_u))

  def step(carry, key, labeled_rows, unlabeled_rows):
    params, state, d_params, d_state = carry
    for i in range(num_vae_steps):
      grads = jax.grad(generator_loss)(params, d_params,
                                       jax.random.fold_in(key, i),
                                       labeled_rows, unlabeled_rows)
      updates, state = tx.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    encode = lambda x: vae.apply(params['vae'], x,
                                 method=vae_lib.VAE.encode)[0]
    mean_l = encode(images[labeled_rows])
    mean_u = encode(images[unlabeled_rows])
    for _ in range(num_adv_steps):
      grads = jax.grad(discriminator_loss)(d_params, mean_l, mean_u,
                                           indicator[unlabeled_rows])
      updates, d_state = d_tx.update(grads, d_state, d_params)
      d_params = optax.apply_updates(d_params, updates)
    return params, state, d_params, d_state

  carry = (params, tx.init(params), d_params, d_tx.init(d_params))
  params, _, d_params, _ = vae_lib.paired_fit(
      fit_key, step, carry, labeled_mask, batch_size=batch_size,
      num_epochs=num_epochs)
  return vae, params, discriminator, d_params


def sraal_scores(key: jax.Array, images: jax.Array, labels: jax.Array,
                 indicator: jax.Array, labeled_mask: jax.Array,
                 chunk_size: int = chunking.DEFAULT_CHUNK,
                 **train_kwargs) -> jax.Array:
  """D(μ(x)) for every pool point after `train_sraal` ([N], in (0, 1))."""
  vae, params, discriminator, d_params = train_sraal(
      key, images, labels, indicator, labeled_mask, **train_kwargs)
  return vae_lib.discriminator_probs(vae, params['vae'], discriminator,
                                     d_params, images, chunk_size)


def _select_sraal(key, inputs, labeled_mask, query_size,
                  latent_dim: int = 200, beta: float = 1.0,
                  reconstruction_weight: float = 5.0,
                  classifier_weight: float = 5.0,
                  adversary_param: float = 1.0, num_vae_steps: int = 2,
                  num_adv_steps: int = 1, learning_rate: float = 5e-4,
                  batch_size: int = 250, num_epochs: int = 30,
                  architecture: str = 'auto',
                  unbiased_variance: bool = False,
                  chunk_size: int = chunking.DEFAULT_CHUNK):
  """`sraal`: the unlabeled points with the highest D(μ) (see the module)."""
  log_probs = inputs['log_probs']
  indicator = jnp.where(labeled_mask, 0.0, oui(log_probs, unbiased_variance))
  probs = sraal_scores(
      key, inputs['images'], inputs['labels'], indicator, labeled_mask,
      chunk_size, num_classes=log_probs.shape[-1], latent_dim=latent_dim,
      beta=beta, reconstruction_weight=reconstruction_weight,
      classifier_weight=classifier_weight, adversary_param=adversary_param,
      num_vae_steps=num_vae_steps, num_adv_steps=num_adv_steps,
      learning_rate=learning_rate, batch_size=batch_size,
      num_epochs=num_epochs, architecture=architecture)
  return top_k_unlabeled_first(probs, labeled_mask, query_size)


def _select_oui(key, inputs, labeled_mask, query_size,
                unbiased_variance: bool = False):
  """`oui`: the unlabeled points with the highest OUI."""
  del key
  return top_k_unlabeled(oui(inputs['log_probs'], unbiased_variance),
                         labeled_mask, query_size)


def kcenter_initial_set(key: jax.Array, images: jax.Array, size: int,
                        seed_size: int, *, latent_dim: int = 32,
                        beta: float = 1.0, learning_rate: float = 5e-4,
                        batch_size: int = 128, num_epochs: int = 30,
                        architecture: str = 'auto',
                        chunk_size: int = chunking.DEFAULT_CHUNK
                        ) -> jax.Array:
  """SRAAL's initial labeled set (Alg. 1): k-center on a VAE's latents.

  Trains a VAE (MSE + β·mean KL) on the whole pool, draws `seed_size` points
  at random, then adds greedy k-center picks on the latent means μ up to
  `size` points. Needs no label.

  Args:
    key: PRNG key.
    images: [N, ...] the pool.
    size: static M, the initial set's size.
    seed_size: static I, 1 ≤ I ≤ M, the random seed set's size.
    Other arguments: the VAE's training (as for `vaal`).

  Returns:
    [size] int32 distinct pool indices, the random seed set first.
  """
  input_shape = images.shape[1:]
  vae = vae_lib.VAE(tuple(input_shape), latent_dim,
                    vae_lib.resolve_architecture(architecture, input_shape))
  init_key, seed_key, fit_key = jax.random.split(key, 3)
  params = vae.init(init_key, jnp.zeros((1,) + tuple(input_shape)))
  n = images.shape[0]

  def loss_fn(params, key, rows, weights):
    x = images[rows]
    mean, log_variance = vae.apply(params, x, method=vae_lib.VAE.encode)
    x_hat = vae.apply(params, vae_lib.sample_latent(key, mean, log_variance),
                      method=vae_lib.VAE.decode)
    errors = jnp.mean((x_hat - x)**2, axis=tuple(range(1, x.ndim)))
    kl = vae_lib.kl_divergence(mean, log_variance)
    return jnp.sum(weights * (errors + beta * kl)) / jnp.sum(weights)

  params = train.fit_on_mask(fit_key, loss_fn, params,
                             optax.adam(learning_rate), jnp.ones(n, bool),
                             batch_size=batch_size, num_epochs=num_epochs)
  latents = vae_lib.latent_means(vae, params, images, chunk_size)
  seed = jax.random.choice(seed_key, n, (seed_size,), replace=False)
  seed_mask = jnp.zeros(n, bool).at[seed].set(True)
  min_sq = cluster.min_sq_distances_to_subset(latents, seed_mask, chunk_size)
  picks = cluster.farthest_first(latents, min_sq, ~seed_mask,
                                 size - seed_size)
  return jnp.concatenate([seed.astype(jnp.int32), picks.astype(jnp.int32)])


_COMMON = dict(beta=ranges.NON_NEGATIVE, adversary_param=ranges.NON_NEGATIVE,
               num_vae_steps=ranges.POSITIVE_INT,
               num_adv_steps=ranges.POSITIVE_INT,
               learning_rate=ranges.POSITIVE, batch_size=ranges.POSITIVE_INT,
               num_epochs=ranges.NON_NEGATIVE_INT,
               architecture=ranges.one_of(*vae_lib.ARCHITECTURES),
               unbiased_variance=ranges.BOOL, chunk_size=ranges.POSITIVE_INT)

STRATEGIES = (
    stateless('sraal', ('log_probs', 'images', 'labels'), _select_sraal,
              ranges=dict(_COMMON, latent_dim=ranges.int_at_least(2),
                          reconstruction_weight=ranges.NON_NEGATIVE,
                          classifier_weight=ranges.NON_NEGATIVE)),
    stateless('oui', ('log_probs',), _select_oui,
              ranges=dict(unbiased_variance=ranges.BOOL)),
)
