"""Allowed ranges of strategy hyperparameters, declared as data.

Each registered strategy maps every hyperparameter name to a `Range`
(`Strategy.ranges`); `jal.acquisition.check_hparams` refuses a value outside
it, naming the field, the value and the range, before any work starts:

    stateless('epig', ('mc_log_probs',), _select,
              ranges=dict(num_targets=ranges.POSITIVE_INT,
                          chunk_size=ranges.POSITIVE_INT))

A range is a predicate plus the words that describe it; the predicates here
refuse NaN and ±inf (no hyperparameter has a use for them) and refuse `True`
and `False` where an integer is expected.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from jal import errors


class Range(NamedTuple):
  """The values a hyperparameter may take.

  Attributes:
    contains: `contains(value) -> bool`, whether `value` is allowed.
    description: the allowed values in words, completing "must be ...".
  """
  contains: Callable[[Any], bool]
  description: str


def check(allowed: Range, value, name: str) -> None:
  """Raises a `ConfigError` naming `name` if `allowed` excludes `value`."""
  if not allowed.contains(value):
    raise errors.ConfigError(
        f'{name} must be {allowed.description}, got {value!r}.')


def is_int(value) -> bool:
  """A Python int that is not a bool."""
  return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
  """An int or a finite float, not a bool."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def int_at_least(low: int) -> Range:
  """Integers ≥ `low`."""
  return Range(lambda v: is_int(v) and v >= low, f'an integer >= {low}')


def interval(low: float, high: float, *, low_open: bool = False,
             high_open: bool = False) -> Range:
  """Finite numbers between `low` and `high` (either end may be open)."""

  def contains(v):
    return (is_finite_number(v) and (v > low if low_open else v >= low) and
            (v < high if high_open else v <= high))

  brackets = '(' if low_open else '[', ')' if high_open else ']'
  return Range(contains, f'a finite number in {brackets[0]}{low:g}, '
               f'{high:g}{brackets[1]}')


def optional(allowed: Range, meaning: str) -> Range:
  """None (which means `meaning`) or a value `allowed` contains."""
  return Range(lambda v: v is None or allowed.contains(v),
               f'None ({meaning}) or {allowed.description}')


def one_of(*values) -> Range:
  """Exactly one of `values` (compared by type and value)."""
  return Range(lambda v: any(type(v) is type(u) and v == u for u in values),
               'one of ' + ', '.join(map(repr, values)))


POSITIVE_INT = int_at_least(1)
NON_NEGATIVE_INT = int_at_least(0)
POSITIVE = Range(lambda v: is_finite_number(v) and v > 0,
                 'a finite number > 0')
NON_NEGATIVE = Range(lambda v: is_finite_number(v) and v >= 0,
                     'a finite number >= 0')
BOOL = one_of(True, False)
