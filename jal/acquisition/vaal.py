"""VAAL: Variational Adversarial Active Learning (Sinha et al., ICCV 2019).

At every query a β-VAE (`jal.acquisition.vae.VAE`) and a discriminator D
(MLP μ → 512 → 512 → 1) are trained from scratch on the pool (hook H3:
`inputs['images']`), alternating on pairs of labeled and unlabeled
minibatches (`vae.paired_fit`):

- `num_vae_steps` VAE steps on
  `MSE(x̂_L, x_L) + β·KL_L + MSE(x̂_U, x_U) + β·KL_U
   + λ·[BCE(D(μ_L), 1) + BCE(D(μ_U), 1)]`,
  with the MSE a mean over entries and the KL summed over the batch (as in
  the official code);
- `num_adv_steps` discriminator steps on `BCE(D(μ_L), 1) + BCE(D(μ_U), 0)`.

The query takes the b unlabeled points with the lowest D(μ), those most
likely unlabeled. The sub-steps of one iteration share its minibatch pair
(the official code draws a fresh pair per sub-step); the task model is not
trained jointly with the VAE (DeepAL+'s protocol: it is trained as usual by
the loop).

`deepalplus=True` reproduces DeepAL+'s `vaal.py` (its departures from the
paper, methods.md §1.5, §3.2): the discriminator's target for unlabeled
points is 1, as for labeled ones (so D never learns to separate the sets),
the query takes the **highest** D score, the discriminator loop runs
`num_vae_steps` times (not `num_adv_steps`), and the learning rate is 1e-3
unless `learning_rate` is set.
"""

import jax
import jax.numpy as jnp
import optax

from jal import chunking
from jal.acquisition import ranges
from jal.acquisition import vae as vae_lib
from jal.acquisition.base import stateless, top_k_unlabeled_first

PAPER_LEARNING_RATE = 5e-4
DEEPALPLUS_LEARNING_RATE = 1e-3


def bce(logits: jax.Array, target) -> jax.Array:
  """Mean binary cross-entropy of sigmoid(logits) against (soft) targets."""
  target = jnp.broadcast_to(jnp.asarray(target, logits.dtype), logits.shape)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target))


def vae_loss(vae: vae_lib.VAE, vae_params, x: jax.Array, key: jax.Array,
             beta: float):
  """VAAL's VAE term on one batch: MSE(x̂, x) + β·Σ_batch KL; and μ.

  Args:
    vae: the network.
    vae_params: its parameters.
    x: [B, ...] inputs.
    key: PRNG key of the reparameterisation.
    beta: β.

  Returns:
    (scalar loss, μ [B, latent_dim]).
  """
  mean, log_variance = vae.apply(vae_params, x, method=vae_lib.VAE.encode)
  z = vae_lib.sample_latent(key, mean, log_variance)
  x_hat = vae.apply(vae_params, z, method=vae_lib.VAE.decode)
  loss = (vae_lib.reconstruction_error(x_hat, x) +
          beta * jnp.sum(vae_lib.kl_divergence(mean, log_variance)))
  return loss, mean


def train_vaal(key: jax.Array, images: jax.Array, labeled_mask: jax.Array, *,
               latent_dim: int = 32, beta: float = 1.0,
               adversary_param: float = 1.0, num_vae_steps: int = 2,
               num_adv_steps: int = 1, learning_rate: float = 5e-4,
               batch_size: int = 128, num_epochs: int = 30,
               architecture: str = 'auto', unlabeled_target: float = 0.0):
  """Trains VAAL's VAE and discriminator on the pool.

  Args:
    key: PRNG key.
    images: [N, ...] the pool.
    labeled_mask: [N] bool.
    latent_dim, beta, adversary_param, num_vae_steps, num_adv_steps,
      learning_rate, batch_size, num_epochs, architecture: as in the
      strategy's hyperparameters.
    unlabeled_target: the discriminator's target for unlabeled points (0 in
      the paper, 1 in DeepAL+).

  Returns:
    (vae, vae_params, discriminator, d_params).
  """
  input_shape = images.shape[1:]
  vae = vae_lib.VAE(tuple(input_shape), latent_dim,
                    vae_lib.resolve_architecture(architecture, input_shape))
  discriminator = vae_lib.Discriminator((512, 512))
  init_key, fit_key = jax.random.split(key)
  vae_params, d_params = vae_lib.init_networks(init_key, vae, discriminator,
                                               input_shape)
  vae_tx, d_tx = optax.adam(learning_rate), optax.adam(learning_rate)

  def generator_loss(params, d_params, key, x_l, x_u):
    labeled_key, unlabeled_key = jax.random.split(key)
    loss_l, mean_l = vae_loss(vae, params, x_l, labeled_key, beta)
    loss_u, mean_u = vae_loss(vae, params, x_u, unlabeled_key, beta)
    adversarial = (bce(discriminator.apply(d_params, mean_l), 1.0) +
                   bce(discriminator.apply(d_params, mean_u), 1.0))
    return loss_l + loss_u + adversary_param * adversarial

  def discriminator_loss(d_params, mean_l, mean_u):
    return (bce(discriminator.apply(d_params, mean_l), 1.0) +
            bce(discriminator.apply(d_params, mean_u), unlabeled_target))

  def step(carry, key, labeled_rows, unlabeled_rows):
    vae_params, vae_state, d_params, d_state = carry
    x_l, x_u = images[labeled_rows], images[unlabeled_rows]
    for i in range(num_vae_steps):
      grads = jax.grad(generator_loss)(vae_params, d_params,
                                       jax.random.fold_in(key, i), x_l, x_u)
      updates, vae_state = vae_tx.update(grads, vae_state, vae_params)
      vae_params = optax.apply_updates(vae_params, updates)
    encode = lambda x: vae.apply(vae_params, x, method=vae_lib.VAE.encode)[0]
    mean_l, mean_u = encode(x_l), encode(x_u)
    for _ in range(num_adv_steps):
      grads = jax.grad(discriminator_loss)(d_params, mean_l, mean_u)
      updates, d_state = d_tx.update(grads, d_state, d_params)
      d_params = optax.apply_updates(d_params, updates)
    return vae_params, vae_state, d_params, d_state

  carry = (vae_params, vae_tx.init(vae_params), d_params, d_tx.init(d_params))
  vae_params, _, d_params, _ = vae_lib.paired_fit(
      fit_key, step, carry, labeled_mask, batch_size=batch_size,
      num_epochs=num_epochs)
  return vae, vae_params, discriminator, d_params


def vaal_scores(key: jax.Array, images: jax.Array, labeled_mask: jax.Array,
                chunk_size: int = chunking.DEFAULT_CHUNK,
                **train_kwargs) -> jax.Array:
  """D(μ(x)) for every pool point after `train_vaal` ([N], in (0, 1))."""
  vae, vae_params, discriminator, d_params = train_vaal(
      key, images, labeled_mask, **train_kwargs)
  return vae_lib.discriminator_probs(vae, vae_params, discriminator, d_params,
                                     images, chunk_size)


def _select(key, inputs, labeled_mask, query_size, latent_dim: int = 32,
            beta: float = 1.0, adversary_param: float = 1.0,
            num_vae_steps: int = 2, num_adv_steps: int = 1,
            learning_rate: float | None = None, batch_size: int = 128,
            num_epochs: int = 30, architecture: str = 'auto',
            deepalplus: bool = False,
            chunk_size: int = chunking.DEFAULT_CHUNK):
  """`vaal`: the unlabeled points with the lowest D(μ) (see the module).

  `learning_rate` None means 5e-4 (the paper's), or 1e-3 with `deepalplus`.
  """
  if learning_rate is None:
    learning_rate = (DEEPALPLUS_LEARNING_RATE if deepalplus
                     else PAPER_LEARNING_RATE)
  probs = vaal_scores(
      key, inputs['images'], labeled_mask, chunk_size, latent_dim=latent_dim,
      beta=beta, adversary_param=adversary_param,
      num_vae_steps=num_vae_steps,
      num_adv_steps=num_vae_steps if deepalplus else num_adv_steps,
      learning_rate=learning_rate, batch_size=batch_size,
      num_epochs=num_epochs, architecture=architecture,
      unlabeled_target=1.0 if deepalplus else 0.0)
  return top_k_unlabeled_first(probs if deepalplus else -probs, labeled_mask,
                               query_size)


STRATEGIES = (stateless(
    'vaal', ('images',), _select,
    ranges=dict(latent_dim=ranges.POSITIVE_INT, beta=ranges.NON_NEGATIVE,
                adversary_param=ranges.NON_NEGATIVE,
                num_vae_steps=ranges.POSITIVE_INT,
                num_adv_steps=ranges.POSITIVE_INT,
                learning_rate=ranges.optional(
                    ranges.POSITIVE, "5e-4, or 1e-3 with deepalplus"),
                batch_size=ranges.POSITIVE_INT,
                num_epochs=ranges.NON_NEGATIVE_INT,
                architecture=ranges.one_of(*vae_lib.ARCHITECTURES),
                deepalplus=ranges.BOOL, chunk_size=ranges.POSITIVE_INT)),)
