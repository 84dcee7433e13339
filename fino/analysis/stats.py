"""Statistics over seeds as the paper reports them: mean ± 95% confidence interval (Student t),
and a run's offline score (end of the offline phase) and final score (end of training)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided Student-t interval, n) over the finite values.

    n = 0 gives (nan, nan, 0); n = 1 gives a nan half-width: one seed has no spread.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, 1
    from scipy.stats import t  # a heavy import, needed only here

    half = float(t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


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


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
