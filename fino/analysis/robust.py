"""Aggregates that hold on success rates full of zeros, as rliable defines them (Agarwal et al.
2021, "Deep RL at the edge of the statistical precipice"): the interquartile mean (IQM) of all
runs × tasks, the probability of improvement P(X > Y) and performance profiles, each with a
stratified-bootstrap interval (the runs of each task resampled within that task).

rliable's own bootstrap is not used: it draws from numpy's global generator (its
`random_state` does not reach the resampling) and goes through `arch`, whose release that
rliable 1.2 allows does not import under pandas 3. This resamples the same way, percentile
intervals as rliable's default, with a seeded generator of its own; tests check the point
estimates against rliable's `metrics`.

Scores are given per task, one value per run; tasks may have different numbers of runs. All
runs are kept (none dropped to equalise counts): in a pooled IQM a task with more runs weighs
more, as each run does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_REPS = 2000  # bootstrap resamples, rliable's default for profiles: reports stay fast
DEFAULT_SEED = 0
MIN_RUNS = 2  # a task's runs needed for an interval; tasks with fewer are left out

ScoresByTask = Sequence[Sequence[float | None]]  # per task, one score per run


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval, and what it rests on."""

    estimate: float
    low: float
    high: float
    runs: int  # runs used, over all tasks (of X in a comparison)
    tasks: int  # tasks used
    left_out: int = 0  # tasks left out for having fewer than MIN_RUNS runs
    runs_y: int | None = None  # runs of Y used in a comparison

    def as_dict(self) -> dict[str, float | int | None]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "runs": self.runs, "runs_y": self.runs_y, "tasks": self.tasks,
                "left_out": self.left_out}


def iqm(scores: ScoresByTask) -> float:
    """Interquartile mean of every run of every task: the mean of the middle 50% (25% cut at
    each end, as `rliable.metrics.aggregate_iqm`); nan without scores."""
    from scipy.stats import trim_mean

    pooled = np.concatenate([np.array([]), *map(_finite, scores)])
    return float(trim_mean(pooled, 0.25)) if len(pooled) else math.nan


def iqm_interval(scores: ScoresByTask, confidence: float = 0.95, reps: int = DEFAULT_REPS,
                 seed: int = DEFAULT_SEED) -> Interval | None:
    """IQM over runs × tasks with its stratified-bootstrap interval; tasks with fewer than
    MIN_RUNS runs are left out, and None when no task is left."""
    from scipy.stats import trim_mean

    _check(confidence, reps)
    tasks = [x for x in map(_finite, scores) if len(x) >= MIN_RUNS]
    if not tasks:
        return None
    resampled = np.concatenate(_resample(tasks, reps, np.random.default_rng(seed)), axis=1)
    low, high = _percentiles(trim_mean(resampled, 0.25, axis=1), confidence)
    return Interval(iqm(tasks), float(low), float(high), sum(map(len, tasks)), len(tasks),
                    len(scores) - len(tasks))


def probability_of_improvement(x: ScoresByTask, y: ScoresByTask) -> float:
    """P(X > Y): on each task the chance that a run of X scores above a run of Y, ties counted
    half (the Mann–Whitney U over n_x·n_y, as rliable), averaged over the tasks; 0.5 when
    every score ties, all zeros included. nan without a task scored by both."""
    pairs = [(a, b) for a, b in zip(map(_finite, x), map(_finite, y), strict=True)
             if len(a) and len(b)]
    if not pairs:
        return math.nan
    return float(np.mean([_improvement(a[None], b[None])[0] for a, b in pairs]))


def all_tie(x: ScoresByTask, y: ScoresByTask) -> bool:
    """Whether on every task all runs of X and Y score the same (all zeros, say): P(X > Y) is
    then 0.5, which says nothing either way."""
    return all(len(set(_finite(a)) | set(_finite(b))) <= 1 for a, b in zip(x, y, strict=True))


def improvement_interval(x: ScoresByTask, y: ScoresByTask, confidence: float = 0.95,
                         reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED
                         ) -> Interval | None:
    """P(X > Y) with its bootstrap interval, X's and Y's runs resampled independently within
    each task; tasks where either has fewer than MIN_RUNS runs are left out (None if all)."""
    _check(confidence, reps)
    pairs = [(a, b) for a, b in zip(map(_finite, x), map(_finite, y), strict=True)
             if len(a) >= MIN_RUNS and len(b) >= MIN_RUNS]
    if not pairs:
        return None
    used_x, used_y = [a for a, _ in pairs], [b for _, b in pairs]
    rng = np.random.default_rng(seed)
    per_task = [_improvement(a, b) for a, b in zip(_resample(used_x, reps, rng),
                                                   _resample(used_y, reps, rng), strict=True)]
    low, high = _percentiles(np.mean(per_task, axis=0), confidence)
    return Interval(probability_of_improvement(used_x, used_y), float(low), float(high),
                    sum(map(len, used_x)), len(pairs), len(x) - len(pairs),
                    sum(map(len, used_y)))


def performance_profile(scores: ScoresByTask, thresholds: np.ndarray, confidence: float = 0.95,
                        reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fraction of runs (of all tasks) scoring above each threshold τ, with its bootstrap
    band: (profile, low, high), each shaped like `thresholds` (rliable's score distribution).
    Every run counts; a task of one run adds no spread to the band."""
    _check(confidence, reps)
    tasks = [x for x in map(_finite, scores) if len(x)]
    if not tasks:
        raise ValueError("no scores to profile")
    tau = np.asarray(thresholds, dtype=np.float64)
    pooled = np.concatenate(tasks)
    profile = (pooled[:, None] > tau).mean(axis=0)
    resampled = np.concatenate(_resample(tasks, reps, np.random.default_rng(seed)), axis=1)
    above = np.stack([(resampled > t).mean(axis=1) for t in tau], axis=1)  # (reps, τ)
    low, high = _percentiles(above, confidence)
    return profile, low, high


def _resample(tasks: list[np.ndarray], reps: int, rng: np.random.Generator
              ) -> list[np.ndarray]:
    """Per task, `reps` resamples of its runs with replacement: arrays (reps, runs)."""
    return [x[rng.integers(0, len(x), size=(reps, len(x)))] for x in tasks]


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row of x (rows, n_x) and y (rows, n_y): the fraction of pairs with x > y, ties half."""
    a, b = x[:, :, None], y[:, None, :]
    return (a > b).mean(axis=(1, 2)) + 0.5 * (a == b).mean(axis=(1, 2))


def _percentiles(samples: np.ndarray, confidence: float) -> np.ndarray:
    """(low, high): the two-sided percentile interval of bootstrap statistics along their
    first axis."""
    tail = 100 * (1 - confidence) / 2
    return np.percentile(samples, [tail, 100 - tail], axis=0)


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)],
                      dtype=np.float64)


def _check(confidence: float, reps: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    if reps < 1:
        raise ValueError(f"reps={reps}: must be at least 1")
