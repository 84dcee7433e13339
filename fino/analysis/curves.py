"""Seeds of one experiment on common steps, and their mean with a Student-t band."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fino.analysis.stats import mean_ci

Series = tuple[np.ndarray, np.ndarray]  # (steps, values)
GRID_POINTS = 200  # common grid for keys logged at different steps per seed


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


def band(matrix: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Column-wise mean and Student-t half-width (NaN where fewer than two seeds)."""
    stats = [mean_ci(column, confidence) for column in matrix.T]
    return np.array([s[0] for s in stats]), np.array([s[1] for s in stats])
