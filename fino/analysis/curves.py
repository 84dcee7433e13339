"""Learning curves: seeds of one experiment on common steps, their mean with a Student-t band,
and the one matplotlib plotter of such a curve (`fino plot`, the study report, a run's
curves.png). The dashboard draws with textual-plot and shares `align` and `band`; matplotlib
is imported only by the plotter's caller."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Series = tuple[np.ndarray, np.ndarray]  # (steps, values)
GRID_POINTS = 200  # common grid for keys logged at different steps per seed
CONFIDENCE = 0.95
STEP_LABEL = "step (offline updates, then online env steps)"


def align(curves: Sequence[Series]) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, runs x steps values) on the steps every run has (evaluations of seeds of one
    config share them); otherwise interpolated on a grid over the steps all runs cover."""
    common = curves[0][0]
    for steps, _ in curves[1:]:
        common = np.intersect1d(common, steps)
    if len(common) >= 2 or (len(curves) == 1 and len(common)):
        rows = [values[np.searchsorted(steps, common)] for steps, values in curves]
        return common, np.vstack(rows)
    lo = max(float(steps[0]) for steps, _ in curves)
    hi = min(float(steps[-1]) for steps, _ in curves)
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, GRID_POINTS)
    return grid, np.vstack([np.interp(grid, steps, values) for steps, values in curves])


def band(matrix: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Column-wise mean and Student-t half-width over the finite values (NaN where fewer than
    two): `fino.analysis.stats.mean_ci` for every column at once."""
    from scipy.stats import t  # a heavy import, needed only here

    finite = np.isfinite(matrix)
    n = finite.sum(axis=0)
    filled = np.where(finite, matrix, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / n
        squares = np.where(finite, (matrix - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(squares / (n - 1))
        half = t.ppf((1 + confidence) / 2, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean, half


def plot_curve(ax: Axes, curves: Sequence[Series], label: str,
               confidence: float = CONFIDENCE, **line: Any) -> np.ndarray | None:
    """Draw the mean of `curves` (the seeds of one experiment; one curve is drawn as it is)
    with its confidence band; returns the steps drawn, None when the curves share none.
    `line`: matplotlib line settings (linewidth, marker, …)."""
    aligned = align(curves)
    if aligned is None:
        return None
    steps, matrix = aligned
    mean, half = band(matrix, confidence)
    (drawn,) = ax.plot(steps, mean, label=label, **line)
    if len(curves) > 1:
        ax.fill_between(steps, mean - half, mean + half, color=drawn.get_color(), alpha=0.2,
                        linewidth=0)
    return steps


def mark_offline_end(ax: Axes, offline_steps: int | None) -> None:
    """A dashed line where the offline phase ends (none when there is no offline phase)."""
    if offline_steps:
        ax.axvline(offline_steps, color="grey", linestyle="--", linewidth=1)
