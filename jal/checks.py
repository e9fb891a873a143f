"""Precondition checks at the public boundary of the selection primitives.

Research code calls `jal.cluster` and the strategies' helpers directly,
without the loop; these checks turn a bad argument into a
`jal.errors.ConfigError` naming it, instead of a raw error or, worse, a
silently wrong selection (labeled or repeated indices, NaN centres).

Two kinds of check, both cheap:

- shape, rank and static-size checks read only shapes, so they run at trace
  time under `jit` and cost nothing when the compiled function runs;
- value checks (finite entries, how many points are unlabeled) need concrete
  arrays: they copy the array to the host and are skipped when any argument
  is a tracer, i.e. inside the loop's jitted selection.
"""

import jax
import numpy as np

from jal import errors


def concrete(*values) -> bool:
  """Whether no leaf of `values` is a tracer (so its contents can be read)."""
  return not any(isinstance(leaf, jax.core.Tracer)
                 for leaf in jax.tree.leaves(values))


def _dtype(x) -> np.dtype:
  return x.dtype if hasattr(x, 'dtype') else np.asarray(x).dtype


def _fail(message: str) -> None:
  raise errors.ConfigError(message)


def is_int(value) -> bool:
  """A Python or numpy integer that is not a bool."""
  return isinstance(value, (int, np.integer)) and not isinstance(
      value, (bool, np.bool_))


def int_at_least(value, low: int, name: str) -> None:
  """Raises unless `value` is an integer ≥ `low`."""
  if not (is_int(value) and value >= low):
    _fail(f'{name} must be an integer >= {low}, got {value!r}.')


def positive_int(value, name: str) -> None:
  """Raises unless `value` is an integer ≥ 1."""
  int_at_least(value, 1, name)


def array(x, ndim: int, name: str, layout: str, floating: bool = False):
  """Raises unless `x` has rank `ndim` (and a float dtype if `floating`).

  Args:
    x: an array (or array-like).
    ndim: the rank required.
    name: the argument's name, for the message.
    layout: its documented shape, e.g. '[K, N, C]'.
    floating: whether a float dtype is required.

  Returns:
    The shape of `x`.
  """
  shape = np.shape(x)
  if len(shape) != ndim:
    _fail(f'{name} must be {layout} (rank {ndim}), got an array of shape '
          f'{shape}.')
  if floating and not np.issubdtype(_dtype(x), np.floating):
    _fail(f'{name} must hold floats, got dtype {_dtype(x)}.')
  return shape


def size(actual: int, expected: int, name: str, what: str,
         why: str = '') -> None:
  """Raises unless a dimension of `name` (`what` it counts) is `expected`."""
  if actual != expected:
    _fail(f'{name} has {actual} {what}, expected {expected}'
          + (f' ({why}).' if why else '.'))


def mask(m, name: str, n: int | None = None) -> int:
  """Raises unless `m` is a 1-D bool array (of length `n` if given).

  Returns:
    Its length.
  """
  shape = np.shape(m)
  if len(shape) != 1:
    _fail(f'{name} must be a 1-D [N] bool mask, got shape {shape}.')
  if _dtype(m) != np.bool_:
    _fail(f'{name} must be a bool mask, got dtype {_dtype(m)}; pass '
          'e.g. `mask.astype(bool)`.')
  if n is not None and shape[0] != n:
    _fail(f'{name} has length {shape[0]}, expected {n} (one entry per '
          'point).')
  return shape[0]


def finite(x, name: str, allow_minus_inf: bool = False) -> None:
  """Raises if a concrete `x` holds NaN or ±inf (−inf allowed if asked)."""
  if not concrete(x):
    return
  values = np.asarray(x)
  bad = np.isnan(values) | (values == np.inf)
  if not allow_minus_inf:
    bad |= values == -np.inf
  if not bad.any():
    return
  if values.ndim == 0:
    _fail(f'{name} must be finite, got {values}.')
  kinds = 'NaN or +inf' if allow_minus_inf else 'NaN or inf'
  first = tuple(int(i) for i in np.unravel_index(np.argmax(bad), bad.shape))
  _fail(f'{name} holds {int(bad.sum())} {kinds} entries (the first at index '
        f'{first}); remove or fix them first.')


def no_nan(x, name: str) -> None:
  """Raises if a concrete `x` holds NaN (±inf allowed)."""
  if concrete(x) and np.isnan(np.asarray(x)).any():
    _fail(f'{name} holds {int(np.isnan(np.asarray(x)).sum())} NaN entries; '
          'remove or fix them first.')


def points(x, name: str = 'x') -> tuple[int, int]:
  """Raises unless `x` is [N, D] floats (finite, when concrete).

  Returns:
    (N, D).
  """
  shape = array(x, 2, name, '[N, D] (N points, D features)', floating=True)
  finite(x, name)
  return shape


def int_in(value, low: int, high: int, name: str, why: str = '') -> None:
  """Raises unless `value` is an integer in [low, high] (`why` explains)."""
  if not (is_int(value) and low <= value <= high):
    _fail(f'{name} must be an integer in [{low}, {high}]'
          + (f' ({why})' if why else '') + f', got {value!r}.')


def index(i, n: int, name: str) -> None:
  """Raises unless a concrete scalar `i` lies in [0, n)."""
  if np.ndim(i) != 0:
    _fail(f'{name} must be a scalar index, got shape {np.shape(i)}.')
  if concrete(i) and not 0 <= int(i) < n:
    _fail(f'{name} = {int(i)} is outside [0, {n}).')


def non_negative(x, name: str) -> None:
  """Raises if a concrete `x` holds NaN, ±inf or a negative entry."""
  finite(x, name)
  if concrete(x) and (np.asarray(x) < 0).any():
    if np.ndim(x) == 0:
      _fail(f'{name} must be >= 0, got {np.asarray(x)}.')
    _fail(f'{name} must be >= 0 everywhere, got a minimum of '
          f'{np.asarray(x).min()}.')


def any_true(m, name: str, why: str) -> None:
  """Raises if a concrete [N] bool `m` has no True entry (`why` it must)."""
  if concrete(m) and not np.asarray(m).any():
    _fail(f'{name} has no True entry; {why}.')


def count_fits(count: int, m, name: str, what: str,
               count_false: bool = False) -> None:
  """Raises if `count` exceeds the number of True (or False) entries of `m`.

  Args:
    count: the number asked for (already checked to be an int).
    m: [N] bool (or ≥ 0 weights, whose nonzero entries count), concrete or
      traced; traced: only `count` ≤ N is checked.
    name: the argument holding `count`.
    what: completes "only {count of them} ...", e.g. 'pool points are
      unlabeled'.
    count_false: count the False entries instead (e.g. of a labeled mask).
  """
  n = np.shape(m)[0]
  if count > n:
    _fail(f'{name} = {count} exceeds the {n} points there are; lower it.')
  if concrete(m):
    have = int(np.sum(np.asarray(m) != count_false))
    if count > have:
      _fail(f'{name} = {count}, but only {have} {what}; lower it (more '
            'picks would repeat points or take excluded ones).')


def log_probs(x, name: str, ndim: int, layout: str, n: int | None = None,
              rows=None) -> tuple[int, ...]:
  """Raises unless `x` looks like log-probabilities of rank `ndim`.

  Checks the rank, the number of points N (axis −2) and, on a concrete array,
  that no entry is NaN or +inf (−inf is probability 0) and that each checked
  row's probabilities sum to 1 (logits passed by mistake fail this).

  Args:
    x: [..., N, C] log-probabilities.
    name: the argument's name.
    ndim: rank required (3 for [K, N, C], 2 for [N, C]).
    layout: its documented shape.
    n: the number of points N expected, if known.
    rows: optional [N] bool, the rows whose sums to check (rows of labeled
      points may be left uncomputed); default all.

  Returns:
    The shape of `x`.
  """
  shape = array(x, ndim, name, layout, floating=True)
  if n is not None and shape[-2] != n:
    _fail(f'{name} has {shape[-2]} points (axis {ndim - 2} of shape {shape}), '
          f'but the pool has N = {n}.')
  if shape[-1] < 2:
    _fail(f'{name} must have at least 2 classes (last axis), got shape '
          f'{shape}.')
  if not concrete(x, rows):
    return shape
  finite(x, name, allow_minus_inf=True)
  totals = np.exp(np.asarray(x, np.float64)).sum(-1)  # [..., N]
  if rows is not None:
    totals = totals[..., np.asarray(rows)]
  off = np.abs(totals - 1.0)
  if off.size and off.max() > 1e-2:
    _fail(f'{name} must be log-probabilities (exp sums to 1 over classes); '
          f'a row sums to {totals.reshape(-1)[np.argmax(off)]:.4g}. Apply '
          '`jax.nn.log_softmax` to logits.')
  return shape
