"""Networks and training loop shared by VAAL and SRAAL (query-time models).

VAAL (Sinha et al., ICCV 2019) and SRAAL (Zhang et al., CVPR 2020) train, at
every query, a β-VAE on the whole pool and a discriminator on its latent
means μ, alternating generator and discriminator steps on pairs of minibatches
(one labeled, one unlabeled). This module holds what the two share:

- `VAE`: an encoder to (μ, log σ²) and a decoder back to the input shape,
  sized for small inputs. `architecture='conv'` (the default for [H, W, C]
  images with H, W ≥ 8: 8×8 digits, 28×28 MNIST): Conv(32) → Conv(64), 4×4
  kernels, stride 2, 'SAME' padding, ReLU, then dense μ and log σ²; the
  decoder is dense → [⌈H/4⌉, ⌈W/4⌉, 64] → ConvTranspose(32) → ConvTranspose(C)
  (4×4, stride 2, 'SAME'), cropped to [H, W]. `architecture='mlp'` (any
  other input): flatten → 256 → 256 → μ, log σ², and back. The official
  networks (128→1024 channels with batch norm, for 32×32 RGB) are far
  larger than 8×8 or 28×28 digits need; batch norm is left out because
  padded, repeated rows of the fixed-shape minibatches would bias its
  statistics. Flax's default (LeCun normal) initialisation, where the
  official code uses Kaiming normal.
- `Discriminator`: an MLP μ → hidden ReLU layers → 1 logit.
- `kl_divergence`, `reconstruction_error`: the VAE's loss terms per row.
- `paired_fit`: the jitted `lax` loop over epochs of (labeled, unlabeled)
  minibatch pairs, with fixed shapes whatever the labeled count.
- `latent_means`, `discriminator_probs`: μ and D(μ) over the pool, chunked.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen

from jal import chunking
from jal import train

CONV_CHANNELS = (32, 64)
MLP_WIDTH = 256
ARCHITECTURES = ('auto', 'conv', 'mlp')


def resolve_architecture(architecture: str, input_shape: Sequence[int]) -> str:
  """'conv' or 'mlp': `architecture`, with 'auto' chosen from the input.

  'auto' is 'conv' for images [H, W, C] with H, W ≥ 8, else 'mlp'.
  """
  if architecture != 'auto':
    return architecture
  images = len(input_shape) == 3 and min(input_shape[:2]) >= 8
  return 'conv' if images else 'mlp'


class VAE(linen.Module):
  """A Gaussian VAE: `encode(x) -> (μ, log σ²)`, `decode(z) -> x̂`.

  Attributes:
    input_shape: shape of one input, e.g. (8, 8, 1).
    latent_dim: size of z.
    architecture: 'conv' or 'mlp' (see the module docstring).
    decoder_latents: how many leading latent dimensions the decoder reads
      (SRAAL reconstructs from the first half of z); None: all of them.
  """
  input_shape: tuple[int, ...]
  latent_dim: int
  architecture: str
  decoder_latents: int | None = None

  def setup(self):
    if self.architecture == 'conv':
      self.encoder_layers = [
          linen.Conv(c, (4, 4), strides=2, padding='SAME')
          for c in CONV_CHANNELS]
      h, w = self.input_shape[:2]
      self.coarse_shape = (math.ceil(h / 4), math.ceil(w / 4),
                           CONV_CHANNELS[-1])
      self.decoder_dense = linen.Dense(math.prod(self.coarse_shape))
      self.decoder_layers = [
          linen.ConvTranspose(CONV_CHANNELS[0], (4, 4), strides=(2, 2),
                              padding='SAME'),
          linen.ConvTranspose(self.input_shape[-1], (4, 4), strides=(2, 2),
                              padding='SAME')]
    else:
      self.encoder_layers = [linen.Dense(MLP_WIDTH), linen.Dense(MLP_WIDTH)]
      self.decoder_layers = [linen.Dense(MLP_WIDTH), linen.Dense(MLP_WIDTH),
                             linen.Dense(math.prod(self.input_shape))]
    self.mean = linen.Dense(self.latent_dim)
    self.log_variance = linen.Dense(self.latent_dim)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: [B, *input_shape] -> μ, log σ²: [B, latent_dim]."""
    h = x if self.architecture == 'conv' else x.reshape(x.shape[0], -1)
    for layer in self.encoder_layers:
      h = linen.relu(layer(h))
    h = h.reshape(h.shape[0], -1)
    return self.mean(h), self.log_variance(h)

  def decode(self, z: jax.Array) -> jax.Array:
    """z: [B, latent_dim] -> x̂: [B, *input_shape]."""
    z = z[:, :self.decoder_latents]
    if self.architecture == 'conv':
      h = linen.relu(self.decoder_dense(z)).reshape(
          (z.shape[0],) + self.coarse_shape)
      x_hat = self.decoder_layers[1](linen.relu(self.decoder_layers[0](h)))
      height, width = self.input_shape[:2]
      return x_hat[:, :height, :width]
    h = z
    for layer in self.decoder_layers[:-1]:
      h = linen.relu(layer(h))
    return self.decoder_layers[-1](h).reshape((z.shape[0],) +
                                              tuple(self.input_shape))

  def __call__(self, x: jax.Array):
    """Traces every layer (for `init`): x -> (x̂ from μ, μ, log σ²)."""
    mean, log_variance = self.encode(x)
    return self.decode(mean), mean, log_variance


class Discriminator(linen.Module):
  """An MLP z -> hidden ReLU layers -> one logit per row ([B, D] -> [B])."""
  hidden: tuple[int, ...] = (512, 512)

  @linen.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for width in self.hidden:
      h = linen.relu(linen.Dense(width)(h))
    return linen.Dense(1)(h)[:, 0]


def sample_latent(key: jax.Array, mean: jax.Array,
                  log_variance: jax.Array) -> jax.Array:
  """z = μ + σ·ε with ε ~ N(0, I) (the reparameterisation)."""
  return mean + jnp.exp(0.5 * log_variance) * jax.random.normal(
      key, mean.shape, mean.dtype)


def kl_divergence(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
  """KL(N(μ, σ²) ‖ N(0, I)) per row: −½ Σ_d (1 + log σ² − μ² − σ²).

  Args:
    mean: [B, D] μ.
    log_variance: [B, D] log σ².

  Returns:
    [B] nats.
  """
  return -0.5 * jnp.sum(1.0 + log_variance - mean**2 - jnp.exp(log_variance),
                        axis=-1)


def reconstruction_error(x_hat: jax.Array, x: jax.Array) -> jax.Array:
  """Mean squared error over all entries (PyTorch's `MSELoss()`)."""
  return jnp.mean((x_hat - x)**2)


def init_networks(key: jax.Array, vae: VAE, discriminator: Discriminator,
                  input_shape: Sequence[int]) -> tuple[Any, Any]:
  """Fresh (vae_params, discriminator_params)."""
  vae_key, d_key = jax.random.split(key)
  vae_params = vae.init(vae_key, jnp.zeros((1,) + tuple(input_shape)))
  d_params = discriminator.init(d_key, jnp.zeros((1, vae.latent_dim)))
  return vae_params, d_params


def paired_fit(key: jax.Array, step: Callable[..., Any], carry,
               labeled_mask: jax.Array, *, batch_size: int,
               num_epochs: int):
  """Runs `step` over epochs of (labeled, unlabeled) minibatch pairs.

  An epoch is one pass over the larger of the two sets (the unlabeled one,
  usually): ⌈max(|L|, |U|) / B⌉ steps, each drawing B labeled and B
  unlabeled rows from per-epoch random orders, the smaller set cycled (as
  DeepAL+'s joint loader of (x_L, x_U) pairs does; the last pair of an epoch
  wraps around to the start of the order). Shapes are fixed; the step count
  is a traced value, so this compiles once whatever the labeled count.

  Args:
    key: PRNG key.
    step: `step(carry, key, labeled_rows [B] int32, unlabeled_rows [B]
      int32) -> carry`.
    carry: the initial carry (parameters and optimizer states).
    labeled_mask: [N] bool.
    batch_size: static B.
    num_epochs: static number of epochs.

  Returns:
    The final carry.
  """
  num_labeled = jnp.sum(labeled_mask, dtype=jnp.int32)
  num_unlabeled = labeled_mask.shape[0] - num_labeled
  steps_per_epoch = (jnp.maximum(num_labeled, num_unlabeled) + batch_size -
                     1) // batch_size

  def epoch(e, carry):
    epoch_key = jax.random.fold_in(key, e)
    labeled_key, unlabeled_key, step_key = jax.random.split(epoch_key, 3)
    labeled_order = train.labeled_first_order(labeled_key, labeled_mask)
    unlabeled_order = train.labeled_first_order(unlabeled_key, ~labeled_mask)

    def body(s, carry):
      positions = s * batch_size + jnp.arange(batch_size)
      labeled_rows = labeled_order[positions % jnp.maximum(num_labeled, 1)]
      unlabeled_rows = unlabeled_order[
          positions % jnp.maximum(num_unlabeled, 1)]
      return step(carry, jax.random.fold_in(step_key, s), labeled_rows,
                  unlabeled_rows)

    return jax.lax.fori_loop(0, steps_per_epoch, body, carry)

  return jax.lax.fori_loop(0, num_epochs, epoch, carry)


def latent_means(vae: VAE, vae_params, images: jax.Array,
                 chunk_size: int = chunking.DEFAULT_CHUNK) -> jax.Array:
  """μ of every pool row: images [N, ...] -> [N, latent_dim], chunked."""
  return chunking.map_rows(
      lambda x: vae.apply(vae_params, x, method=VAE.encode)[0], (images,),
      chunk_size)


def discriminator_probs(vae: VAE, vae_params, discriminator: Discriminator,
                        d_params, images: jax.Array,
                        chunk_size: int = chunking.DEFAULT_CHUNK
                        ) -> jax.Array:
  """D(μ(x)) = sigmoid of the discriminator's logit, [N], chunked."""

  def probs(x):
    mean, _ = vae.apply(vae_params, x, method=VAE.encode)
    return jax.nn.sigmoid(discriminator.apply(d_params, mean))

  return chunking.map_rows(probs, (images,), chunk_size)
