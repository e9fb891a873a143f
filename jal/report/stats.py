"""The statistics of a study report, as pure functions of plain numbers.

Nothing here reads files or knows about runs: values come in as arrays over
seeds, or as dicts keyed by task, strategy or seed.

- `mean_std`: mean and sample standard deviation over seeds (ddof=1; 0 for
  one seed), of a number (AUBC, F-acc) or of a curve.
- `win_tie_loss` and `ranking`: DeepAL+ Table 3. On a task, A wins against B
  when A's mean AUBC exceeds B's by more than the margin (0.5% = 0.005 of
  accuracy, absolute), loses when it is lower by more than the margin, and
  ties otherwise. Strategies rank by wins − losses (DeepAL+ does not state its
  key; its text has LPL rank low despite many wins because of its losses),
  then by wins.
- `paired_test`: a paired one-sided t-test over seeds of a strategy's AUBC
  against a baseline's (seeds pair naturally: the same seed gives the same
  data split and initial labeled set).
- `steady_seconds`: the time per round once compiled.
- `gain`: a strategy's mean curve minus the baseline's, labeled count by
  labeled count.
- `labels_to_reach`: the labeled count at which a run first reaches a target
  accuracy (Gal et al. 2017 Table 1, Kirsch et al. 2019 Table 1).
"""

from collections.abc import Hashable, Mapping
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

MARGIN = 0.005  # DeepAL+'s 0.5% win–tie–loss margin, in accuracy units.
ALPHA = 0.05


def mean_std(values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  """Mean and sample standard deviation over the leading (seed) axis.

  Args:
    values: [S, ...] one value or curve per seed.

  Returns:
    The mean and the standard deviation, each [...]: scalars for [S] values.
    The standard deviation uses ddof=1, and is 0 for a single seed.
  """
  values = np.asarray(values, np.float64)
  if len(values) > 1:
    return values.mean(axis=0), values.std(axis=0, ddof=1)
  return values.mean(axis=0), np.zeros(values.shape[1:])[()]


def best(means: Mapping[str, float]) -> set[str]:
  """The names whose mean is the highest (several when tied)."""
  top = max(means.values())
  return {name for name, mean in means.items() if mean == top}


def win_tie_loss(
    means: Mapping[Hashable, Mapping[str, float]], margin: float = MARGIN
) -> tuple[dict[tuple[str, str], list[int]], dict[str, list[int]]]:
  """DeepAL+ Table 3: pairwise win–tie–loss counts over tasks.

  Args:
    means: means[task][strategy] = mean AUBC over seeds.
    margin: A wins on a task when mean_A − mean_B > margin, loses when
      mean_A − mean_B < −margin, ties otherwise. Pairs where one of the two
      has no result on a task are not compared there.

  Returns:
    (pairs, totals): pairs[(a, b)] = [wins, ties, losses] of a against b;
    totals[a] = the sums over b.
  """
  names = sorted({s for per_task in means.values() for s in per_task})
  pairs = {(a, b): [0, 0, 0] for a in names for b in names if a != b}
  for per_task in means.values():
    for (a, b), counts in pairs.items():
      if a in per_task and b in per_task:
        difference = per_task[a] - per_task[b]
        counts[0 if difference > margin else
               2 if difference < -margin else 1] += 1
  totals = {a: [sum(pairs[(a, b)][i] for b in names if b != a)
                for i in range(3)] for a in names}
  return pairs, totals


def ranking(totals: Mapping[str, list[int]]) -> list[str]:
  """Names by wins − losses, then wins, then name; totals as `win_tie_loss`."""
  return sorted(totals, key=lambda a: (-(totals[a][0] - totals[a][2]),
                                       -totals[a][0], a))


class PairedTest(NamedTuple):
  """A strategy's AUBC against the baseline's on the same seeds."""
  num_seeds: int
  mean_difference: float  # strategy − baseline
  p_better: float  # one-sided paired t-test, H1: strategy > baseline
  p_worse: float  # one-sided, H1: strategy < baseline

  @property
  def verdict(self) -> str:
    """'better' or 'worse' at level `ALPHA`, else 'n.s.'; 'n/a' below 2."""
    if self.num_seeds < 2:
      return 'n/a'
    if self.p_better < ALPHA:
      return 'better'
    if self.p_worse < ALPHA:
      return 'worse'
    return 'n.s.'


def paired_test(values: Mapping[int, float],
                baseline: Mapping[int, float]) -> PairedTest:
  """Paired t-test over the seeds both have.

  Args:
    values: the strategy's AUBC by seed.
    baseline: the baseline's AUBC by seed.

  Returns:
    The test; its p-values are NaN below two shared seeds, and 0 or 1 when
    every difference is the same (t is undefined, the sign is certain).
  """
  seeds = sorted(values.keys() & baseline.keys())
  if not seeds:
    return PairedTest(0, float('nan'), float('nan'), float('nan'))
  x = np.array([values[s] for s in seeds], np.float64)
  y = np.array([baseline[s] for s in seeds], np.float64)
  difference = x - y
  mean = float(np.mean(difference))
  if len(seeds) < 2:
    return PairedTest(1, mean, float('nan'), float('nan'))
  if np.all(difference == difference[0]):
    return PairedTest(len(seeds), mean, 0.0 if mean > 0 else 1.0,
                      0.0 if mean < 0 else 1.0)
  return PairedTest(
      len(seeds), mean,
      float(stats.ttest_rel(x, y, alternative='greater').pvalue),
      float(stats.ttest_rel(x, y, alternative='less').pvalue))


def steady_seconds(seconds: ArrayLike, skip_last: bool = False) -> float:
  """Mean seconds per round, leaving out round 0, whose time includes compiling.

  Args:
    seconds: [R+1] the seconds of rounds 0…R.
    skip_last: also leave out round R (for query times: it has no query).

  Returns:
    The mean over the rounds kept; round 0's seconds when none is kept.
  """
  seconds = np.asarray(seconds, np.float64)
  kept = seconds[1:len(seconds) - skip_last]
  return float(np.mean(kept if kept.size else seconds[:1]))


def gain(curves: ArrayLike, baseline: ArrayLike) -> np.ndarray:
  """Mean accuracy over seeds minus the baseline's, at each labeled count.

  Args:
    curves: [S, R+1] the strategy's accuracy curve per seed.
    baseline: [S', R+1] the baseline's, on the same labeled counts.

  Returns:
    [R+1] mean(curves) − mean(baseline) over seeds (equal to the mean of
    the per-seed differences when both have the same seeds).
  """
  return (np.mean(np.asarray(curves, np.float64), axis=0) -
          np.mean(np.asarray(baseline, np.float64), axis=0))


def labels_to_reach(num_labeled: ArrayLike, accuracies: ArrayLike,
                    target: float) -> int | None:
  """The first labeled count whose accuracy is at least `target`.

  Args:
    num_labeled: [R] labeled count of each round, increasing.
    accuracies: [R] the test accuracy after each round's training.
    target: accuracy in [0, 1].

  Returns:
    That count, or None when no round reaches `target` (NaN never does).
  """
  reached = np.flatnonzero(np.asarray(accuracies, np.float64) >= target)
  return int(np.asarray(num_labeled)[reached[0]]) if reached.size else None
