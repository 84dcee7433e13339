"""Statistics over seeds as the paper reports them: mean ± 95% confidence interval (Student t,
Welch for differences; scipy.stats computes both), and a run's offline score (end of the offline
phase) and final score (end of training). Robust aggregates across tasks: `robust.py`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided Student-t interval, n) over the finite values.

    n = 0 gives (nan, nan, 0); n = 1 gives a nan half-width: one seed has no spread.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    x = _finite_array(values)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, 1
    from scipy import stats  # a heavy import, needed only here

    sem = float(stats.sem(x))
    if sem == 0:  # scipy's t takes no zero scale: seeds that agree have a zero-width interval
        return mean, 0.0, n
    return mean, float(stats.t.interval(confidence, n - 1, scale=sem)[1]), n


def welch_difference(a: Iterable[float], b: Iterable[float], confidence: float = 0.95
                     ) -> tuple[float, float, float]:
    """(mean(a) − mean(b), half-width of its Welch interval, degrees of freedom).

    Two independent samples with unequal variances (Welch–Satterthwaite); nan with fewer than
    two finite values on a side. Both samples without spread: the half-width is 0."""
    x = _finite_array(a)
    y = _finite_array(b)
    if len(x) < 2 or len(y) < 2:
        return math.nan, math.nan, math.nan
    diff = float(x.mean() - y.mean())
    if x.var() + y.var() == 0:
        return diff, 0.0, float(len(x) + len(y) - 2)
    from scipy.stats import ttest_ind  # a heavy import, needed only here

    with warnings.catch_warnings():
        # scipy warns of precision loss on a side whose seeds all score the same non-zero
        # number; that side's variance is exactly 0, nothing was lost.
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        welch = ttest_ind(x, y, equal_var=False)
    ci = welch.confidence_interval(confidence)
    return diff, float(ci.high - ci.low) / 2, float(welch.df)


def seeds_to_resolve(a: Iterable[float], b: Iterable[float], confidence: float = 0.95,
                     max_n: int = 1000) -> int | None:
    """Seeds per method at which the Welch interval of mean(a) − mean(b) would exclude 0 if the
    observed means and spreads held: the smallest n with t(dof_n) · sqrt((s_a² + s_b²)/n) <
    |mean(a) − mean(b)|. None with fewer than two finite values on a side, equal means, or
    more than `max_n` seeds needed. A planning figure: it assumes the spread stays as seen."""
    x = _finite_array(a)
    y = _finite_array(b)
    if len(x) < 2 or len(y) < 2:
        return None
    diff = abs(float(x.mean() - y.mean()))
    if diff == 0:
        return None
    sd_x, sd_y = x.std(ddof=1), y.std(ddof=1)
    if sd_x + sd_y == 0:
        return 2
    from scipy.stats import ttest_ind_from_stats  # a heavy import, needed only here

    # The interval excludes 0 exactly when the two-sided Welch test rejects at 1 − confidence.
    n = np.arange(2, max_n + 1)
    welch = ttest_ind_from_stats(diff, sd_x, n, 0.0, sd_y, n, equal_var=False)
    resolved = np.flatnonzero(welch.pvalue < 1 - confidence)
    return int(n[resolved[0]]) if len(resolved) else None


@dataclass(frozen=True)
class RunScores:
    """One run's scores on one key; None where the run has no such evaluation."""

    offline: float | None  # last evaluation at a step <= offline_steps
    final: float | None  # last evaluation
    best: float | None  # highest finite evaluation
    final_step: int | None


def offline_and_final(
    evals: Iterable[tuple[int, float | None]], offline_steps: int | None
) -> RunScores:
    """Offline, final and best score from (step, value) evaluations; one at step ==
    offline_steps counts as offline (the trainer evaluates there before its first online step).
    """
    pairs = sorted((int(step), _finite(value)) for step, value in evals)
    if not pairs:
        return RunScores(None, None, None, None)
    offline = [v for s, v in pairs if offline_steps is not None and s <= offline_steps]
    finite = [v for _, v in pairs if v is not None]
    return RunScores(offline=offline[-1] if offline else None, final=pairs[-1][1],
                     best=max(finite) if finite else None, final_step=pairs[-1][0])


def _finite_array(values: Iterable[float | None]) -> np.ndarray:
    """The finite values as float64; None and nan/inf are left out."""
    return np.asarray([v for v in values if v is not None and math.isfinite(v)],
                      dtype=np.float64)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
