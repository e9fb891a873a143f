"""BatchBALD (Kirsch et al. 2019): greedy maximization of the joint BALD.

The batch {x_1 … x_b} is built greedily; step i adds the unlabeled candidate x
maximizing the joint mutual information

  I[y_1, …, y_{i-1}, y; ω] = H[y_1, …, y_{i-1}, y] − Σ_j E_k H[y_j | ω_k]
                                                − E_k H[y | ω_k],

with the K passes ω_k as equally weighted posterior samples. The joint
predictive over the chosen points' labels is kept per pass as log P_k(s) over
configurations s:

- exact: all C^(i-1) configurations are enumerated while
  C^(i-1) ≤ `num_samples`;
- sampled: beyond that, `num_samples` configurations are drawn afresh each
  step from the joint predictive (configuration s from pass s mod K), and the
  joint entropy is the importance-weighted estimate
  −(1/S) Σ_s Σ_c p(c | y_s) log p(y_s, c), the candidate's own label summed
  exactly (the switch batchbald_redux makes too).

Both are one formula, H = −Σ_{s,c} a_s q_sc (m_s + log q_sc) with m_s the
largest log P_k(s), q_sc = mean_k exp(log P_k(s) − m_s) p_k(c), and
a_s = exp(m_s) (exact) or 1 / (S mean_k exp(log P_k(s) − m_s)) (sampled), so
no probability of a long configuration underflows. Per step, candidates are
scored in chunks by a loop whose trip count follows the unlabeled count; the
whole selection is one jitted function: the exact steps, whose configuration
count grows, are unrolled, the sampled ones run in a `fori_loop`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jal import checks
from jal import chunking
from jal import information
from jal.acquisition import ranges
from jal.acquisition import uncertainty
from jal.acquisition.base import stateless


def conditional_entropy(log_probs: jax.Array) -> jax.Array:
  """E_k H[p_k] of every point; [K, N, C] → [N]."""
  uncertainty.check_rank(log_probs)
  return jnp.mean(information.entropy(jnp.exp(log_probs)), axis=0)


def _pairwise_sum(x: jax.Array) -> jax.Array:
  """Σ over axis 0 as a balanced tree of additions; [S, M] → [M].

  The rounding error grows like log S rather than S (a sequential sum of the
  10^4 configurations' terms of a joint entropy in float32 was 6e-5 nats
  off).
  """
  while x.shape[0] > 1:
    if x.shape[0] % 2:
      x = jnp.concatenate([x, jnp.zeros_like(x[:1])])
    x = x[0::2] + x[1::2]
  return x[0]


def _accurate_dot(weights: jax.Array, terms: jax.Array,
                  block: int = 64) -> jax.Array:
  """weights @ terms, [S] × [S, M] → [M], summed to near float32 precision.

  Blocks of `block` configurations are dot products; the blocks' partial
  sums are added pairwise. With `jax_enable_x64` on, all of it runs in
  float64.
  """
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  weights, terms = weights.astype(dtype), terms.astype(dtype)
  num_configs = weights.shape[0]
  if num_configs <= block:
    return weights @ terms
  pad = -num_configs % block
  weights = jnp.pad(weights, (0, pad)).reshape(-1, block)
  terms = jnp.pad(terms, ((0, pad), (0, 0))).reshape(
      weights.shape[0], block, -1)
  return _pairwise_sum(jnp.einsum('bs,bsm->bm', weights, terms))


def _candidate_scores(log_joint: jax.Array, exact: bool, log_probs: jax.Array,
                      cond: jax.Array, available: jax.Array,
                      chunk_elements: int) -> jax.Array:
  """H[chosen, y_n] − E_k H[y_n | ω_k] for every available candidate n.

  Args:
    log_joint: [K, S] log P_k(s) of the chosen points' configurations.
    exact: the S configurations are all of them (else samples).
    log_probs: [K, N, C].
    cond: [N] E_k H[y_n | ω_k].
    available: [N] bool, candidates (unlabeled and not yet chosen).
    chunk_elements: candidates per chunk × S × C stays below this.

  Returns:
    [N] float32; −inf where not available.
  """
  num_passes, num_configs = log_joint.shape
  n, num_classes = log_probs.shape[1:]
  top = jnp.max(log_joint, axis=0)
  possible = jnp.isfinite(top)
  top = jnp.where(possible, top, 0.0)
  scaled = jnp.exp(log_joint - top)  # [K, S], max over k is 1 (or all 0)
  if exact:
    weights = jnp.where(possible, jnp.exp(top), 0.0)
  else:
    mean = jnp.mean(scaled, axis=0)
    weights = jnp.where(
        mean > 0, 1.0 / (num_configs * jnp.maximum(mean, 1e-30)), 0.0)

  chunk = max(1, min(n, chunk_elements // (num_configs * num_classes)))

  def score(rows):  # [B] → [B]
    probs = jnp.exp(log_probs[:, rows, :]).reshape(num_passes, -1)
    joint = (scaled.T @ probs) / num_passes  # [S, B·C]
    log_joint_c = jnp.log(jnp.where(joint > 0, joint, 1.0))
    entropy = -_accurate_dot(weights, joint * (top[:, None] + log_joint_c))
    return (entropy.reshape(chunk, num_classes).sum(-1)
            - cond[rows].astype(entropy.dtype)).astype(jnp.float32)

  scores = chunking.map_masked(score, n, chunk, available)
  scores = jnp.where(jnp.isnan(scores), jnp.finfo(jnp.float32).min, scores)
  return jnp.where(available, scores, -jnp.inf)


def _sampled_log_joint(key: jax.Array, log_probs: jax.Array,
                       chosen: jax.Array, num_chosen: jax.Array,
                       num_samples: int) -> jax.Array:
  """log P_k(y_s) of `num_samples` configurations of the chosen points.

  Configuration s is drawn from pass s mod K, each chosen point's label from
  that pass's prediction.

  Returns:
    [K, num_samples] float32.
  """
  num_passes = log_probs.shape[0]
  pass_of_sample = jnp.arange(num_samples) % num_passes

  def body(j, log_joint):
    point = log_probs[:, chosen[j], :]  # [K, C]
    labels = jax.random.categorical(jax.random.fold_in(key, j),
                                    point[pass_of_sample])  # [S]
    return log_joint + point[:, labels]

  return jax.lax.fori_loop(0, num_chosen, body,
                           jnp.zeros((num_passes, num_samples), jnp.float32))


def batchbald(key: jax.Array, log_probs: jax.Array, labeled_mask: jax.Array,
              query_size: int, *, num_samples: int = 100000,
              chunk_elements: int = 2**24) -> tuple[jax.Array, jax.Array]:
  """Greedy BatchBALD batch and its joint mutual information.

  The arguments are checked first (shapes always; values when concrete),
  then one jitted function runs.

  Args:
    key: PRNG key for the sampled configurations.
    log_probs: [K, N, C] float32 log-probabilities of K stochastic passes.
      Rows of labeled points are never read as candidates (nor checked).
    labeled_mask: [N] bool.
    query_size: b, static; 1 ≤ b ≤ the unlabeled count.
    num_samples: static, ≥ 1: exact joint entropies while C^(chosen) ≤
      num_samples, else this many sampled configurations.
    chunk_elements: static, ≥ 1; bounds the per-chunk work array,
      candidates × S × C.

  Returns:
    indices [b] int32 in the order chosen, and info [b] float32: the joint
    mutual information of the first i+1 points (estimated once sampled).

  Raises:
    ConfigError: an argument out of its range, naming it.
  """
  n = checks.mask(labeled_mask, 'labeled_mask')
  checks.positive_int(query_size, 'query_size')
  check_query_fits(labeled_mask, query_size)
  checks.positive_int(num_samples, 'num_samples')
  checks.positive_int(chunk_elements, 'chunk_elements')
  checks.log_probs(log_probs, 'log_probs', 3, '[K, N, C]', n=n,
                   rows=(~np.asarray(labeled_mask)
                         if checks.concrete(labeled_mask) else None))
  return _batchbald(key, log_probs, labeled_mask, query_size,
                    num_samples=num_samples, chunk_elements=chunk_elements)


@functools.partial(jax.jit, static_argnames=('query_size', 'num_samples',
                                             'chunk_elements'))
def _batchbald(key, log_probs, labeled_mask, query_size, *, num_samples,
               chunk_elements):
  """`batchbald` without the checks."""
  num_passes, _, num_classes = log_probs.shape
  log_probs = log_probs.astype(jnp.float32)
  cond = conditional_entropy(log_probs)
  available = ~labeled_mask
  chosen = jnp.zeros((query_size,), jnp.int32)
  info = jnp.zeros((query_size,), jnp.float32)
  cond_sum = jnp.zeros((), jnp.float32)

  def add(i, best, score, chosen, info, available, cond_sum):
    return (chosen.at[i].set(best), info.at[i].set(score - cond_sum),
            available.at[best].set(False), cond_sum + cond[best])

  log_joint = jnp.zeros((num_passes, 1), jnp.float32)
  step = 0
  while step < query_size and num_classes**step <= num_samples:
    scores = _candidate_scores(log_joint, True, log_probs, cond, available,
                               chunk_elements)
    best = jnp.argmax(scores).astype(jnp.int32)
    chosen, info, available, cond_sum = add(step, best, scores[best], chosen,
                                            info, available, cond_sum)
    step += 1
    if step < query_size and num_classes**step <= num_samples:
      log_joint = (log_joint[:, :, None] +
                   log_probs[:, best, None, :]).reshape(num_passes, -1)

  def sampled_step(i, carry):
    chosen, info, available, cond_sum = carry
    log_joint = _sampled_log_joint(jax.random.fold_in(key, i), log_probs,
                                   chosen, i, num_samples)
    scores = _candidate_scores(log_joint, False, log_probs, cond, available,
                               chunk_elements)
    best = jnp.argmax(scores).astype(jnp.int32)
    return add(i, best, scores[best], chosen, info, available, cond_sum)

  chosen, info, _, _ = jax.lax.fori_loop(
      step, query_size, sampled_step, (chosen, info, available, cond_sum))
  return chosen, info


def check_query_fits(labeled_mask, query_size: int) -> None:
  """Raises if `query_size` exceeds the unlabeled count (when it is known).

  Under `jit` the mask is traced and this checks only query_size ≤ N; the
  loop checks the budget before it starts (`jal.config.validate_budget`).
  """
  checks.count_fits(query_size, labeled_mask, 'query_size',
                    'pool points are unlabeled', count_false=True)


def _select(key, inputs, labeled_mask, query_size, num_samples: int = 100000,
            chunk_elements: int = 2**24):
  indices, _ = batchbald(key, inputs['mc_log_probs'], labeled_mask,
                         query_size, num_samples=num_samples,
                         chunk_elements=chunk_elements)
  return indices


STRATEGIES = (stateless('batchbald', ('mc_log_probs',), _select,
                        ranges=dict(num_samples=ranges.POSITIVE_INT,
                                    chunk_elements=ranges.POSITIVE_INT)),)
