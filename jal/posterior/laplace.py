"""Last-layer Laplace approximation: a Gaussian posterior over the head.

The network up to its embedding φ(x) [D] stays at its trained weights; the
last layer, logits = Θᵀ φ̃ with φ̃ = [φ, 1] and Θ [D+1, C] (kernel rows then
the bias row), gets the posterior N(Θ_MAP, Λ⁻¹) with the generalized
Gauss–Newton precision of the softmax cross-entropy on the labeled set plus
an isotropic prior:

  Λ = Σ_n φ̃_n φ̃_nᵀ ⊗ (diag p_n − p_n p_nᵀ) + λ I,

over vec(Θ) in row-major order (index d·C + c). For a linear-softmax model this
is exactly the Hessian of the regularized loss. `structure='diag'` keeps the
diagonal only. Sampling K heads gives predictive log-probabilities
`[K, N, C]`: the `laplace` posterior source.
"""

import jax
import jax.numpy as jnp

from jal import devices
from jal import errors
from jal import models
from jal import predict
from jal.posterior import sources


def last_layer(params, embedding_size: int, num_classes: int) -> jax.Array:
  """The head's kernel and bias as one [D+1, C] matrix Θ.

  Args:
    params: a model's parameters; the head is the one `kernel` of shape
      [embedding_size, num_classes] next to a `bias` of shape [num_classes].
    embedding_size: D.
    num_classes: C.

  Returns:
    [D+1, C] float32: the kernel's rows, then the bias.
  """
  leaves = {tuple(str(k.key) for k in path
                  if isinstance(k, jax.tree_util.DictKey)): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
  heads = [path[:-1] for path, leaf in leaves.items()
           if path[-1] == 'kernel' and leaf.shape == (embedding_size,
                                                      num_classes)
           and path[:-1] + ('bias',) in leaves]
  if len(heads) != 1:
    raise errors.ConfigError(
        f'Found {len(heads)} layers with a [{embedding_size}, {num_classes}] '
        'kernel and a bias, not one last layer mapping the embedding to the '
        "logits; the Laplace source needs such a model (use another "
        'config.uncertainty for this one).')
  head = heads[0]
  return jnp.concatenate([leaves[head + ('kernel',)],
                          leaves[head + ('bias',)][None]])


def with_bias_feature(embeddings: jax.Array) -> jax.Array:
  """[N, D] → [N, D+1] with a trailing column of ones."""
  return jnp.concatenate(
      [embeddings, jnp.ones(embeddings.shape[:-1] + (1,), embeddings.dtype)],
      axis=-1)


def ggn_precision(features: jax.Array, probs: jax.Array, weights: jax.Array,
                  prior_precision: float, structure: str = 'full'
                  ) -> jax.Array:
  """Posterior precision Λ of the last layer (GGN plus prior).

  Args:
    features: [N, F] inputs of the last layer φ̃ (bias feature included).
    probs: [N, C] predicted probabilities at Θ_MAP.
    weights: [N] float, 1 for training (labeled) points, 0 elsewhere.
    prior_precision: λ > 0.
    structure: 'full' or 'diag'.

  Returns:
    [F·C, F·C] ('full') or [F·C] ('diag') float32 over vec(Θ), index f·C + c.
  """
  num_features, num_classes = features.shape[-1], probs.shape[-1]
  size = num_features * num_classes
  if structure == 'diag':
    diag = jnp.einsum('n,nf,nc->fc', weights, features**2,
                      probs * (1.0 - probs)).reshape(size)
    return diag + prior_precision
  if structure != 'full':
    raise errors.ConfigError(
        f"Laplace structure must be 'full' or 'diag', got {structure!r}.")
  # Σ_n φ̃φ̃ᵀ ⊗ diag(p): block-diagonal in the class index.
  second = jnp.einsum('n,nf,ng,nc->fgc', weights, features, features, probs)
  diagonal_part = jnp.einsum('fgc,cd->fcgd', second,
                             jnp.eye(num_classes)).reshape(size, size)
  # Σ_n (φ̃ ⊗ p)(φ̃ ⊗ p)ᵀ.
  outer = (features[:, :, None] * probs[:, None, :]).reshape(-1, size)
  rank_one_part = (outer * weights[:, None]).T @ outer
  return (diagonal_part - rank_one_part +
          prior_precision * jnp.eye(size, dtype=features.dtype))


def sample_heads(key: jax.Array, theta: jax.Array, precision: jax.Array,
                 num_samples: int) -> jax.Array:
  """`num_samples` draws of Θ from N(Θ_MAP, Λ⁻¹).

  Args:
    key: PRNG key.
    theta: [F, C] Θ_MAP.
    precision: Λ, [F·C, F·C] or its diagonal [F·C].
    num_samples: K.

  Returns:
    [K, F, C] float32.
  """
  size = theta.size
  noise = jax.random.normal(key, (size, num_samples), theta.dtype)
  if precision.ndim == 1:
    deltas = noise / jnp.sqrt(precision)[:, None]
  else:
    # Λ = L Lᵀ, so L⁻ᵀ ε has covariance Λ⁻¹.
    cholesky = jnp.linalg.cholesky(precision)
    deltas = jax.scipy.linalg.solve_triangular(cholesky, noise, lower=True,
                                               trans='T')
  return theta[None] + deltas.T.reshape((num_samples,) + theta.shape)


def laplace_log_probs(key: jax.Array, model: models.Model,
                      variables: models.Variables, images: jax.Array,
                      labeled_mask: jax.Array, *, num_samples: int,
                      prior_precision: float, structure: str = 'full',
                      chunk_size: int = 1000) -> jax.Array:
  """Predictive log-probabilities of K heads drawn from the Laplace posterior.

  Args:
    key: PRNG key for the K heads.
    model: the model; its head maps the embedding to the logits.
    variables: trained (MAP) variables.
    images: [N, ...] the pool.
    labeled_mask: [N] bool, the training set the precision is fitted on.
    num_samples: K.
    prior_precision: λ.
    structure: 'full' or 'diag'.
    chunk_size: images per forward pass.

  Returns:
    [K, N, C] float32 log-probabilities.
  """
  logits, embeddings = predict.predict(model, variables, images,
                                       chunk_size=chunk_size)
  features = with_bias_feature(embeddings)
  theta = last_layer(variables.params, embeddings.shape[-1], logits.shape[-1])
  precision = ggn_precision(features, jax.nn.softmax(features @ theta),
                            labeled_mask.astype(features.dtype),
                            prior_precision, structure)
  heads = sample_heads(key, theta, precision, num_samples)
  return devices.map_sharded(
      lambda head, features: jax.nn.log_softmax(features @ head), heads,
      features, num_samples)


def laplace(model: models.Model, input_shape, config) -> dict:
  """The `laplace` source: K = `config.posterior_samples` sampled heads."""

  def sample(key, variables, images, labeled_mask, include_mask):
    del include_mask
    return laplace_log_probs(
        key, model, variables, images, labeled_mask,
        num_samples=config.posterior_samples,
        prior_precision=config.laplace_prior_precision,
        structure=config.laplace_structure, chunk_size=config.eval_chunk)

  return dict(sources.single_model(model, input_shape, config), sample=sample)
