"""Wasserstein adversarial active learning (WAAL; Shui et al., AISTATS 2020).

A critic D (an MLP with a sigmoid output) on the task model's embedding h(x)
is trained with the task model on labeled/unlabeled minibatch pairs (hook
H4). With W = mean D(h(x_U)) - γ·mean D(h(x_L)) and GP the gradient penalty
on detached features, the official code alternates

- h and the classifier minimize CE + α·W + 5α·GP,
- D minimizes -α·W - 2α·GP.

The 5α·GP term has no gradient with respect to h or the classifier (the
features are detached and D is frozen in that step), so only CE + α·W moves
the task model. jal writes the two players as one loss,

    α·W(sg(D), h) + [-α·W(D, sg(h)) ∓ 2α·GP(D, sg(h))]

(`sg` = `jax.lax.stop_gradient`): the task optimizer gets the gradient with
respect to the task parameters, the critic's optimizer the gradient with
respect to the critic's, and each equals the gradient of that player's own
objective. The two players update simultaneously from the same features
where the official code updates the critic after the task step.

The critic's GP sign (-2α·GP, which rewards gradient norms away from 1) is
the opposite of WGAN-GP's; both the official and the DeepAL+ code have it.
It is reproduced by default; `corrected_gp=True` gives +2α·GP.

An epoch takes max(|L|, |U|) labeled/unlabeled pairs, cycling the smaller
set, as in the official handler (`epoch_mode='pool'`); `'labeled'` passes
over the labeled set only, like every other strategy's training.

The query takes the b unlabeled points with the smallest
`0.5·‖log p‖₂ + 0.5·Σ_k -log p_k - selection·D(h(x))`: uncertain and
unlabeled-looking.

Defaults follow the paper's code (α = 2e-3, γ = |L|/|U|, critic 50 hidden
units, SGD lr 0.01 with momentum 0.3 as for CIFAR-10). DeepAL+: `alpha=1e-3`,
`gamma=1.0`, `critic_width=512`, `critic_depth=2`, `critic_optimizer='adam'`,
`critic_lr=1e-3`, `epoch_mode='labeled'`. The original critic and classifier
have dropout; jal's critic does not.
"""

import jax
import jax.numpy as jnp

from jal import chunking
from jal import train
from jal.acquisition import ranges
from jal.acquisition.base import stateless, top_k_unlabeled
from jal.acquisition.loss_prediction import dense_init


def critic_init(key: jax.Array, dim: int, width: int = 50,
                depth: int = 1) -> list:
  """Dense layers dim → width (`depth` hidden ReLU layers) → 1."""
  sizes = (dim,) + (width,) * depth + (1,)
  keys = jax.random.split(key, len(sizes) - 1)
  return [dense_init(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def critic(params: list, z: jax.Array) -> jax.Array:
  """D(z) in (0, 1): z [B, D] → [B]."""
  for layer in params[:-1]:
    z = jax.nn.relu(z @ layer['w'] + layer['b'])
  return jax.nn.sigmoid(z @ params[-1]['w'] + params[-1]['b'])[:, 0]


def _weighted_mean(x: jax.Array, weights: jax.Array) -> jax.Array:
  return jnp.sum(weights * x) / jnp.maximum(jnp.sum(weights), 1.0)


def _safe_norm(x: jax.Array) -> jax.Array:
  """‖x‖₂ over the last axis, with a finite gradient at 0."""
  sq = jnp.sum(x**2, axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def gradient_penalty(critic_fn, z_unlabeled: jax.Array, z_labeled: jax.Array,
                     u: jax.Array, weights: jax.Array) -> jax.Array:
  """mean (‖∇D(ẑ)‖₂ - 1)² over interpolates and both sets.

  Args:
    critic_fn: D, `critic_fn(z [M, D]) -> [M]`.
    z_unlabeled: [B, D] h(x_U).
    z_labeled: [B, D] h(x_L).
    u: [B] interpolation weights in [0, 1]: ẑ = z_U + u·(z_L - z_U).
    weights: [B] labeled rows' weights (0 for padding); an interpolate takes
      its labeled row's weight, unlabeled rows weigh 1.

  Returns:
    [] the weighted mean over the 3B points.
  """
  interpolates = z_unlabeled + u[:, None] * (z_labeled - z_unlabeled)
  points = jnp.concatenate([interpolates, z_unlabeled, z_labeled])
  point_weights = jnp.concatenate(
      [weights, jnp.ones(z_unlabeled.shape[0]), weights])
  grads = jax.vmap(jax.grad(lambda z: critic_fn(z[None])[0]))(points)
  return _weighted_mean((_safe_norm(grads) - 1.0)**2, point_weights)


def wasserstein_term(params, z_labeled, z_unlabeled, weights, gamma):
  """W = mean D(z_U) - γ·weighted mean D(z_L)."""
  return (jnp.mean(critic(params, z_unlabeled)) -
          gamma * _weighted_mean(critic(params, z_labeled), weights))


def gamma_value(gamma: float | None, info: train.StepInfo) -> jax.Array:
  """γ: the given number, or |L|/|U| if None."""
  if gamma is not None:
    return jnp.asarray(gamma, jnp.float32)
  return info.num_train / jnp.maximum(info.num_unlabeled, 1).astype(
      jnp.float32)


def task_objective(critic_params, z_labeled, z_unlabeled, weights, gamma,
                   alpha):
  """The task player's adversarial term α·W with D frozen (the CE is the
  trainer's; the 5α·GP of the official code has no gradient here)."""
  return alpha * wasserstein_term(jax.lax.stop_gradient(critic_params),
                                  z_labeled, z_unlabeled, weights, gamma)


def critic_objective(critic_params, z_labeled, z_unlabeled, weights, u,
                     gamma, alpha, gp_weight, corrected_gp):
  """The critic's objective on detached features: -α·W ∓ gp_weight·α·GP."""
  z_labeled = jax.lax.stop_gradient(z_labeled)
  z_unlabeled = jax.lax.stop_gradient(z_unlabeled)
  gp = gradient_penalty(lambda z: critic(critic_params, z), z_unlabeled,
                        z_labeled, u, weights)
  gp_sign = 1.0 if corrected_gp else -1.0
  return (-alpha * wasserstein_term(critic_params, z_labeled, z_unlabeled,
                                    weights, gamma)
          + gp_sign * gp_weight * alpha * gp)


def waal_objective(alpha: float = 2e-3, gamma: float | None = None,
                   gp_weight: float = 2.0, corrected_gp: bool = False,
                   critic_width: int = 50, critic_depth: int = 1,
                   critic_optimizer: str = 'sgd', critic_lr: float = 0.01,
                   critic_momentum: float = 0.3, epoch_mode: str = 'pool',
                   **unused) -> train.Objective:
  """The WAAL objective (hook H4) for the given hyperparameters."""
  del unused

  def init(key, output):
    return critic_init(key, output.embedding.shape[-1], critic_width,
                       critic_depth)

  def loss(critic_params, output, labels, weights, unlabeled_output, info):
    del labels
    z_labeled, z_unlabeled = output.embedding, unlabeled_output.embedding
    gamma_now = gamma_value(gamma, info)
    u = jax.random.uniform(info.key, (z_labeled.shape[0],))
    return (task_objective(critic_params, z_labeled, z_unlabeled,
                           weights, gamma_now, alpha) +
            critic_objective(critic_params, z_labeled, z_unlabeled, weights,
                             u, gamma_now, alpha, gp_weight, corrected_gp))

  tx = train.make_optimizer(critic_optimizer, critic_lr, critic_momentum)
  return train.Objective(init=init, tx=tx, loss=loss, unlabeled_batch=True,
                         epoch_covers_unlabeled=epoch_mode == 'pool')


def waal_scores(log_probs: jax.Array, embeddings: jax.Array, critic_params,
                selection: float = 10.0, chunk_size: int = 4096) -> jax.Array:
  """WAAL's query score (smaller = more worth labeling).

  Args:
    log_probs: [N, C] log p.
    embeddings: [N, D] h(x).
    critic_params: from `critic_init`.
    selection: weight of D(h(x)).
    chunk_size: pool rows per critic pass.

  Returns:
    [N] 0.5·‖log p‖₂ + 0.5·Σ_k -log p_k - selection·D(h(x)).
  """
  uncertainty = (0.5 * jnp.sqrt(jnp.sum(log_probs**2, -1)) +
                 0.5 * jnp.sum(-log_probs, -1))
  d = chunking.map_rows(lambda z: critic(critic_params, z), (embeddings,),
                        chunk_size)
  return uncertainty - selection * d


def _select(key, inputs, labeled_mask, query_size, alpha: float = 2e-3,
            gamma: float | None = None, gp_weight: float = 2.0,
            corrected_gp: bool = False, critic_width: int = 50,
            critic_depth: int = 1, critic_optimizer: str = 'sgd',
            critic_lr: float = 0.01, critic_momentum: float = 0.3,
            epoch_mode: str = 'pool', selection: float = 10.0):
  del key, alpha, gamma, gp_weight, corrected_gp, critic_width, critic_depth
  del critic_optimizer, critic_lr, critic_momentum, epoch_mode
  scores = waal_scores(inputs['log_probs'][0], inputs['embeddings'],
                       inputs['aux_params'], selection)
  return top_k_unlabeled(-scores, labeled_mask, query_size)


STRATEGIES = (
    stateless(
        'waal', ('log_probs', 'embeddings', 'aux_params'), _select,
        objective=waal_objective,
        ranges=dict(
            alpha=ranges.NON_NEGATIVE,
            gamma=ranges.optional(ranges.NON_NEGATIVE, '|L|/|U|'),
            gp_weight=ranges.NON_NEGATIVE, corrected_gp=ranges.BOOL,
            critic_width=ranges.POSITIVE_INT,
            critic_depth=ranges.NON_NEGATIVE_INT,
            critic_optimizer=ranges.one_of('sgd', 'adam'),
            critic_lr=ranges.interval(0.0, 10.0, low_open=True),
            critic_momentum=ranges.interval(0.0, 1.0, high_open=True),
            epoch_mode=ranges.one_of('pool', 'labeled'),
            selection=ranges.NON_NEGATIVE)),
)
