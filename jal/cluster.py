"""Clustering and distance computations in linear memory, shared by strategies.

Everything here works on a pool of N points in chunks of rows
(`jal.chunking`), so no N×N (or N×k for large k) array is ever built: memory
is O(N·D) for the points plus one chunk-sized tile.

Squared Euclidean distances between chunks use the expansion
‖x‖² − 2⟨x, y⟩ + ‖y‖² (a matrix product), clipped at 0; in float32 its
absolute error is about 1e-7·(‖x‖² + ‖y‖²), so distances between points far
from the origin relative to their spacing lose digits (tests allow for it).
The single-point form is a matrix-vector product that streams the pool at
memory bandwidth, several times faster on CPU than the fused Σ(x − y)².

Greedy loops (k-means++ seeding, farthest-first picks) run inside one
`lax.fori_loop`, each step reading the pool once.

Ties are broken by the lowest index, as `jnp.argmax` and `jax.lax.top_k` do.

The public functions below the distance helpers check their arguments first
(`jal.checks`): shapes always (free under `jit`), and, when the arguments are
concrete, that points are finite and that no more picks or centres are asked
for than there are eligible points. A bad argument raises
`jal.errors.ConfigError` naming it.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jal import checks
from jal.chunking import DEFAULT_CHUNK, fold_rows, map_rows, num_chunks


def _weights(weights, n: int | None = None) -> int:
  """Checks [N] weights (finite, ≥ 0 when concrete); returns N."""
  (length,) = checks.array(weights, 1, 'weights', '[N]')
  if n is not None:
    checks.size(length, n, 'weights', 'entries', 'one per point')
  checks.non_negative(weights, 'weights')
  return length


def _centres(centres, d: int, centre_mask=None) -> int:
  """Checks [k, D] finite centres (and their [k] mask); returns k."""
  k, d_centres = checks.array(centres, 2, 'centres', '[k, D]', floating=True)
  checks.size(d_centres, d, 'centres', 'features', 'as many as the points')
  if k < 1:
    checks.positive_int(k, 'the number of centres')
  checks.finite(centres, 'centres')
  if centre_mask is not None:
    checks.mask(centre_mask, 'centre_mask', k)
    checks.any_true(centre_mask, 'centre_mask', 'at least one centre must be '
                    'in use')
  return k


def sq_norms(x: jax.Array) -> jax.Array:
  """[N, D] → [N] squared Euclidean norms."""
  return jnp.sum(jnp.square(x), axis=-1)


def pairwise_sq_distances(x: jax.Array, y: jax.Array,
                          x_sq: jax.Array | None = None,
                          y_sq: jax.Array | None = None) -> jax.Array:
  """[n, D], [m, D] → [n, m] squared distances (a tile, not the pool)."""
  x_sq = sq_norms(x) if x_sq is None else x_sq
  y_sq = sq_norms(y) if y_sq is None else y_sq
  dots = jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(x_sq[:, None] - 2.0 * dots + y_sq[None, :], 0.0)


def sq_distances_to(x: jax.Array, point: jax.Array,
                    x_sq: jax.Array | None = None) -> jax.Array:
  """[N, D], [D] → [N] squared distances, one pass over x.

  A matrix-vector product (‖x‖² − 2⟨x, p⟩ + ‖p‖², with `x_sq` = ‖x‖²
  precomputed) streams x at memory bandwidth; the fused form Σ(x − p)² runs
  several times slower on CPU.
  """
  x_sq = sq_norms(x) if x_sq is None else x_sq
  dots = jnp.matmul(x, point, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(x_sq - 2.0 * dots + jnp.sum(jnp.square(point)), 0.0)


def min_sq_distances_to_subset(x: jax.Array, subset_mask: jax.Array,
                               chunk_size: int = DEFAULT_CHUNK,
                               subset_chunk: int = 1024) -> jax.Array:
  """Squared distance of every point to its nearest point of a subset.

  The subset's indices are put first (a stable sort of the mask), then a loop
  runs over ⌈|subset| / subset_chunk⌉ blocks of them (a traced trip count)
  and, inside, over the pool in chunks: O(N·|subset|·D) work, O(N) memory
  beyond the points.

  Args:
    x: [N, D] float32 points.
    subset_mask: [N] bool, the subset.
    chunk_size: pool rows per tile.
    subset_chunk: subset points per tile.

  Returns:
    [N] float32; +inf everywhere when the subset is empty.
  """
  n, _ = checks.points(x)
  checks.mask(subset_mask, 'subset_mask', n)
  checks.positive_int(chunk_size, 'chunk_size')
  checks.positive_int(subset_chunk, 'subset_chunk')
  s = min(subset_chunk, n)
  order = jnp.argsort(~subset_mask, stable=True)
  x_sq = sq_norms(x)

  def block(j, min_sq):
    # The slice is clamped inside [0, N): the last block may repeat members.
    members = jax.lax.dynamic_slice_in_dim(order, j * s, s)
    valid = subset_mask[members]
    y, y_sq = x[members], x_sq[members]

    def tile(x_chunk, x_sq_chunk, min_chunk):
      d = pairwise_sq_distances(x_chunk, y, x_sq_chunk, y_sq)
      d = jnp.where(valid[None, :], d, jnp.inf)
      return jnp.minimum(min_chunk, jnp.min(d, axis=1))

    return map_rows(tile, (x, x_sq, min_sq), chunk_size)

  num_blocks = num_chunks(jnp.sum(subset_mask), s)
  return jax.lax.fori_loop(0, num_blocks, block,
                           jnp.full((n,), jnp.inf, x.dtype))


def farthest_first(x: jax.Array, min_sq: jax.Array, candidates: jax.Array,
                   num_picks: int) -> jax.Array:
  """Greedy k-center: repeatedly the candidate farthest from all picked.

  Args:
    x: [N, D] float32 points.
    min_sq: [N] squared distance of each point to the centres so far (+inf
      where there are none).
    candidates: [N] bool, points that may be picked.
    num_picks: static number of picks, at most the number of candidates.

  Returns:
    [num_picks] int32 in pick order; each step reads x once.
  """
  n, _ = checks.points(x)
  checks.array(min_sq, 1, 'min_sq', '[N]')
  checks.size(jnp.shape(min_sq)[0], n, 'min_sq', 'entries', 'one per point')
  checks.no_nan(min_sq, 'min_sq')
  checks.mask(candidates, 'candidates', n)
  checks.positive_int(num_picks, 'num_picks')
  checks.count_fits(num_picks, candidates, 'num_picks',
                    'candidates are True')
  x = jnp.asarray(x)
  x_sq = sq_norms(x)

  def step(t, carry):
    min_sq, available, picks = carry
    pick = jnp.argmax(jnp.where(available, min_sq, -jnp.inf))
    min_sq = jnp.minimum(min_sq, sq_distances_to(x, x[pick], x_sq))
    return min_sq, available.at[pick].set(False), picks.at[t].set(pick)

  _, _, picks = jax.lax.fori_loop(
      0, num_picks, step,
      (min_sq, candidates, jnp.zeros((num_picks,), jnp.int32)))
  return picks


def kmeans_plusplus(key: jax.Array, sq_distances_to_point: Callable[
    [jax.Array], jax.Array], weights: jax.Array, num_centres: int,
                    first: jax.Array | None = None) -> jax.Array:
  """k-means++ seeding (Arthur & Vassilvitskii 2007) with point weights.

  The first centre is `first` if given, else drawn with probability ∝ w_i;
  each next one with probability ∝ w_i · d_i², d_i being the distance to the
  nearest centre so far. Draws are Gumbel-max: step t draws
  `jax.random.gumbel(fold_in(key, t), [N])` and takes the argmax of
  log(w_i d_i²) + g_i. Picks are distinct: when every remaining eligible point
  has w·d² = 0 (duplicates), the lowest-index one is taken.

  Args:
    key: PRNG key.
    sq_distances_to_point: `j -> [N]` squared distances of all points to
      point j (Euclidean, or factorized as for BADGE).
    weights: [N] float ≥ 0; points of weight 0 are never picked.
    num_centres: static k, at most the number of positive weights.
    first: optional traced index of the first centre.

  Returns:
    [num_centres] int32 point indices, in seeding order.
  """
  n = _weights(weights)
  checks.positive_int(num_centres, 'num_centres')
  checks.count_fits(num_centres, weights, 'num_centres',
                    'weights are positive')
  if first is not None:
    checks.index(first, n, 'first')
  eligible = weights > 0
  log_w = jnp.log(jnp.where(eligible, weights, 1.0))

  def draw(t, log_mass, available):
    gumbel = jax.random.gumbel(jax.random.fold_in(key, t), (n,))
    score = jnp.where(jnp.isfinite(log_mass), log_mass + gumbel, -1e30)
    return jnp.argmax(jnp.where(available, score, -jnp.inf)).astype(jnp.int32)

  if first is None:
    first = draw(0, log_w, eligible)
  first = jnp.asarray(first, jnp.int32)

  def step(t, carry):
    min_sq, available, picks = carry
    min_sq = jnp.minimum(min_sq, sq_distances_to_point(picks[t - 1]))
    pick = draw(t, log_w + jnp.log(min_sq), available)
    return min_sq, available.at[pick].set(False), picks.at[t].set(pick)

  picks = jnp.zeros((num_centres,), jnp.int32).at[0].set(first)
  _, _, picks = jax.lax.fori_loop(
      1, num_centres, step,
      (jnp.full((n,), jnp.inf), eligible.at[first].set(False), picks))
  return picks


def assign(x: jax.Array, centres: jax.Array,
           centre_mask: jax.Array | None = None,
           chunk_size: int = DEFAULT_CHUNK) -> tuple[jax.Array, jax.Array]:
  """Nearest centre of every point, in chunks.

  Args:
    x: [N, D] points.
    centres: [k, D].
    centre_mask: optional [k] bool; masked-out centres are never nearest.
    chunk_size: pool rows per [chunk, k] tile.

  Returns:
    ([N] int32 nearest centre, [N] float32 squared distance to it).
  """
  _, d = checks.points(x)
  _centres(centres, d, centre_mask)
  checks.positive_int(chunk_size, 'chunk_size')
  c_sq = sq_norms(centres)
  if centre_mask is not None:
    c_sq = jnp.where(centre_mask, c_sq, jnp.inf)

  def tile(x_chunk):
    d = pairwise_sq_distances(x_chunk, centres, y_sq=c_sq)
    if centre_mask is not None:
      d = jnp.where(centre_mask[None, :], d, jnp.inf)
    return jnp.argmin(d, axis=1).astype(jnp.int32), jnp.min(d, axis=1)

  return map_rows(tile, (x,), chunk_size)


def lloyd(x: jax.Array, weights: jax.Array, centres: jax.Array,
          num_iters: int, centre_mask: jax.Array | None = None,
          chunk_size: int = DEFAULT_CHUNK) -> jax.Array:
  """Weighted Lloyd iterations from the given centres.

  Each iteration assigns every point to its nearest centre (chunked) and
  moves each centre to the weighted mean of its points. A centre left with no
  weight keeps its position (so it stays a valid, if idle, centre).

  Args:
    x: [N, D] points.
    weights: [N] float ≥ 0.
    centres: [k, D] initial centres.
    num_iters: static number of iterations.
    centre_mask: optional [k] bool of centres in use.
    chunk_size: pool rows per tile.

  Returns:
    [k, D] centres.
  """
  n, d = checks.points(x)
  _weights(weights, n)
  k = _centres(centres, d, centre_mask)
  checks.int_at_least(num_iters, 0, 'num_iters')
  checks.positive_int(chunk_size, 'chunk_size')

  def iteration(_, centres):
    c_sq = sq_norms(centres)
    if centre_mask is not None:
      c_sq = jnp.where(centre_mask, c_sq, jnp.inf)

    def accumulate(carry, fresh, x_chunk, w_chunk):
      sums, mass = carry
      d = pairwise_sq_distances(x_chunk, centres, y_sq=c_sq)
      if centre_mask is not None:
        d = jnp.where(centre_mask[None, :], d, jnp.inf)
      nearest = jnp.argmin(d, axis=1)
      w = jnp.where(fresh, w_chunk, 0.0)
      sums = sums + jax.ops.segment_sum(w[:, None] * x_chunk, nearest, k)
      mass = mass + jax.ops.segment_sum(w, nearest, k)
      return sums, mass

    sums, mass = fold_rows(accumulate, (jnp.zeros_like(centres),
                                        jnp.zeros((k,), x.dtype)),
                           (x, weights), chunk_size)
    return jnp.where(mass[:, None] > 0,
                     sums / jnp.maximum(mass, 1e-30)[:, None], centres)

  return jax.lax.fori_loop(0, num_iters, iteration, centres)


def kmeans(key: jax.Array, x: jax.Array, weights: jax.Array, num_centres: int,
           num_iters: int = 10, chunk_size: int = DEFAULT_CHUNK) -> jax.Array:
  """Weighted k-means: k-means++ seeding, then Lloyd iterations.

  Args:
    key: PRNG key for the seeding.
    x: [N, D] float32 points.
    weights: [N] float ≥ 0 (0 leaves a point out).
    num_centres: static k, at most the number of positive weights.
    num_iters: static number of Lloyd iterations.
    chunk_size: pool rows per tile.

  Returns:
    [k, D] centres.

  Raises:
    ConfigError: points not [N, D] or not finite, weights not [N] finite ≥ 0,
      num_centres above the number of positive weights, a bad count.
  """
  n, _ = checks.points(x)
  _weights(weights, n)
  checks.positive_int(num_centres, 'num_centres')
  checks.count_fits(num_centres, weights, 'num_centres',
                    'weights are positive')
  checks.int_at_least(num_iters, 0, 'num_iters')
  checks.positive_int(chunk_size, 'chunk_size')
  x = jnp.asarray(x)
  x_sq = sq_norms(x)
  seeds = kmeans_plusplus(key, lambda j: sq_distances_to(x, x[j], x_sq),
                          weights, num_centres)
  return lloyd(x, weights, x[seeds], num_iters, chunk_size=chunk_size)


def nearest_distinct(x: jax.Array, centres: jax.Array, candidates: jax.Array,
                     chunk_size: int = DEFAULT_CHUNK) -> jax.Array:
  """One distinct candidate point per centre, nearest to it.

  Every candidate goes to its nearest centre; each centre takes the nearest
  of its own candidates (so picks are distinct). A centre that got no
  candidate then takes, in centre order, the nearest candidate not yet taken.

  Args:
    x: [N, D] points.
    centres: [k, D], k at most the number of candidates.
    candidates: [N] bool.
    chunk_size: pool rows per tile.

  Returns:
    [k] int32 point indices.
  """
  n, d = checks.points(x)
  k = _centres(centres, d)
  checks.mask(candidates, 'candidates', n)
  checks.count_fits(k, candidates, 'the number of centres',
                    'candidates are True')
  checks.positive_int(chunk_size, 'chunk_size')
  x, centres = jnp.asarray(x), jnp.asarray(centres)
  n, k = x.shape[0], centres.shape[0]
  nearest, sq = assign(x, centres, chunk_size=chunk_size)
  nearest = jnp.where(candidates, nearest, k)  # segment k = not a candidate
  best = jax.ops.segment_min(sq, nearest, k + 1)
  is_best = candidates & (sq == best[nearest])
  picks = jax.ops.segment_min(jnp.where(is_best, jnp.arange(n), n), nearest,
                              k + 1)[:k]
  taken = jnp.zeros((n + 1,), bool).at[picks].set(True)[:n]

  def fill(j, carry):
    picks, taken = carry

    def nearest_untaken(carry):
      picks, taken = carry
      d = sq_distances_to(x, centres[j], x_sq)
      pick = jnp.argmin(jnp.where(candidates & ~taken, d, jnp.inf))
      return picks.at[j].set(pick), taken.at[pick].set(True)

    return jax.lax.cond(picks[j] >= n, nearest_untaken, lambda c: c,
                        (picks, taken))

  x_sq = sq_norms(x)
  picks, _ = jax.lax.fori_loop(0, k, fill, (picks, taken))
  return picks.astype(jnp.int32)


def knn(x: jax.Array, num_neighbours: int, groups: jax.Array | None = None,
        chunk_size: int = 1024) -> tuple[jax.Array, jax.Array]:
  """The k nearest other points of every point, in chunks of both axes.

  O(N²·D) work, O(N·k) memory: each query chunk keeps a running top-k while
  it scans the pool chunk by chunk.

  Args:
    x: [N, D] points.
    num_neighbours: static k < N.
    groups: optional [N] int; neighbours are then sought within the group.
    chunk_size: rows per tile side.

  Returns:
    ([N, k] float32 squared distances, ascending, +inf where a group has
    fewer than k + 1 points; [N, k] int32 indices, ties to the lower index).
  """
  n, _ = checks.points(x)
  checks.positive_int(num_neighbours, 'num_neighbours')
  if groups is not None:
    checks.array(groups, 1, 'groups', '[N]')
    checks.size(jnp.shape(groups)[0], n, 'groups', 'entries', 'one per point')
  checks.positive_int(chunk_size, 'chunk_size')
  c = min(chunk_size, n)
  x_sq = sq_norms(x)

  groups = jnp.zeros((n,), jnp.int32) if groups is None else groups

  def query(rows, q, q_sq, q_group):
    def scan(carry, fresh, ref_rows, ref, ref_sq, ref_group):
      best_d, best_i = carry
      d = pairwise_sq_distances(q, ref, q_sq, ref_sq)
      keep = (fresh[None, :] & (ref_rows[None, :] != rows[:, None]) &
              (ref_group[None, :] == q_group[:, None]))
      d = jnp.where(keep, d, jnp.inf)
      all_d = jnp.concatenate([best_d, d], axis=1)
      all_i = jnp.concatenate(
          [best_i, jnp.broadcast_to(ref_rows, d.shape)], axis=1)
      neg, pos = jax.lax.top_k(-all_d, num_neighbours)
      return -neg, jnp.take_along_axis(all_i, pos, axis=1)

    init = (jnp.full((q.shape[0], num_neighbours), jnp.inf, x.dtype),
            jnp.zeros((q.shape[0], num_neighbours), jnp.int32))
    return fold_rows(scan, init,
                     (jnp.arange(n, dtype=jnp.int32), x, x_sq, groups), c)

  return map_rows(query, (jnp.arange(n, dtype=jnp.int32), x, x_sq, groups),
                  c)


def pca_project(x: jax.Array, dim: int) -> jax.Array:
  """[N, D] → [N, dim] centred projection on the top `dim` principal axes.

  Raises:
    ConfigError: `x` not [N, D] finite floats, or `dim` outside [1, D].
  """
  _, d = checks.points(x)
  checks.int_in(dim, 1, d, 'dim', f'D = {d} is the number of features')
  mean = jnp.mean(x, axis=0)
  cov = (jnp.matmul(x.T, x, precision=jax.lax.Precision.HIGHEST) / x.shape[0]
         - jnp.outer(mean, mean))
  _, vectors = jnp.linalg.eigh(cov)
  axes = vectors[:, ::-1][:, :dim]
  return jnp.matmul(x, axes) - jnp.matmul(mean, axes)
