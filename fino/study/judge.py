"""Judging a study's cells: each qualitative claim of the paper as a Welch comparison over seeds
with a verdict that never claims more than its interval shows, the tasks where no run succeeds,
and the robust aggregates across tasks (interquartile mean, probability of improvement)."""

from __future__ import annotations

import numpy as np

from fino.analysis.robust import (
    DEFAULT_REPS,
    DEFAULT_SEED,
    MIN_RUNS,
    Interval,
    all_tie,
    improvement_interval,
    iqm_interval,
)
from fino.analysis.stats import seeds_to_resolve, welch_difference
from fino.study.collect import Cell

# Methods whose offline phase is trained and evaluated alike (the same η, the same best-of-K
# greedy evaluation): they differ only online. FQL is left out: its evaluation takes one sample.
OFFLINE_ALIKE = {"injected": ("fino", "fino-noise-only", "fino-balanced"),
                 "none": ("action-noise",)}


def offline_per_seed(cells: dict[tuple[str, str], Cell], task: str,
                     methods: tuple[str, ...]) -> list[float]:
    """One offline score per seed: the mean over those methods' finished runs of that seed, so
    that runs sharing (or repeating) an offline phase never count as extra seeds."""
    by_seed: dict[int, list[float]] = {}
    for method in methods:
        cell = cells.get((task, method))
        for seed, (offline, _) in (cell.per_seed.items() if cell else ()):
            if offline is not None:
                by_seed.setdefault(seed, []).append(offline)
    return [float(np.mean(v)) for _, v in sorted(by_seed.items())]


def _scores(cell: Cell, which: int) -> list[float]:
    """The seeds' offline (0) or final (1) scores."""
    return [v[which] for v in cell.per_seed.values() if v[which] is not None]


def _gains(cell: Cell) -> list[float]:
    """Each seed's online − offline score (what fine-tuning added)."""
    return [on - off for off, on in cell.per_seed.values() if off is not None and on is not None]


def _seed_pairs(cells: dict[tuple[str, str], Cell], task: str
                ) -> list[tuple[float | None, float | None]]:
    """The (offline, online) end values of every run of the task."""
    return [pair for (t, _), cell in cells.items() if t == task
            for pair in cell.per_seed.values()]


def _end_values(pairs: list[tuple[float | None, float | None]]) -> list[float]:
    """Every recorded value of those pairs, missing ones left out."""
    return [v for pair in pairs for v in pair if v is not None]


def runs_all_zero(cells: dict[tuple[str, str], Cell], task: str) -> int:
    """How many runs the task has when every one ends both phases at 0%, else 0."""
    pairs = _seed_pairs(cells, task)
    ends = _end_values(pairs)
    return len(pairs) if ends and not any(ends) else 0


def all_equal(cells: dict[tuple[str, str], Cell], task: str) -> bool:
    """Whether every offline and online value of the task's runs is the same number."""
    return len(set(_end_values(_seed_pairs(cells, task)))) <= 1


def _compare(a: list[float], b: list[float], name_a: str, name_b: str) -> str:
    """The difference of means with its 95% Welch interval, and a verdict that never claims
    more than that interval shows."""
    if len(a) < 2 or len(b) < 2:
        return f"not enough seeds ({name_a} n={len(a)}, {name_b} n={len(b)})"
    if len(set(a) | set(b)) == 1:
        return (f"{name_a} and {name_b} are {a[0]:.1f} on every seed (n={len(a)}/{len(b)}): "
                "nothing to compare")
    diff, half, _ = welch_difference(a, b)
    text = (f"{name_a} {np.mean(a):.1f} vs {name_b} {np.mean(b):.1f}, difference "
            f"{diff:+.1f} ± {half:.1f} (95% Welch CI, n={len(a)}/{len(b)})")
    if diff - half > 0:
        return f"{name_a} higher: {text}"
    if diff + half < 0:
        return f"{name_b} higher: {text}"
    needed = seeds_to_resolve(a, b)
    if needed is None:
        hint = "no number of seeds resolves a zero difference" if diff == 0 else (
            "more than 1000 seeds per method would be needed at this spread")
    else:
        hint = (f"about {needed} seeds per method would resolve a difference this large at "
                "this spread")
    return f"inconclusive (the interval holds 0; {hint}): {text}"


CLAIMS = [("fino", "fql", "FINO ≥ FQL online"),
          ("fino", "fino-noise-only", "entropy guidance matters (FINO vs noise only)"),
          ("fino", "action-noise", "injected noise beats Gaussian action noise")]


def claim_lines(cells: dict[tuple[str, str], Cell], task: str) -> list[str]:
    """The paper's claims (and the comparisons that explain them) on one task, each judged by
    the 95% Welch interval of the difference over seeds, for whatever metric `cells` holds."""
    lines = []
    if (task, "fino") in cells and (task, "fql") in cells:
        lines.append("- offline scores FINO vs FQL (the paper: equal): " + _compare(
            _scores(cells[(task, "fino")], 0), _scores(cells[(task, "fql")], 0), "fino", "fql"))
    for a, b, claim in CLAIMS:
        if (task, a) in cells and (task, b) in cells:
            lines.append(f"- {claim}: " + _compare(_scores(cells[(task, a)], 1),
                                                   _scores(cells[(task, b)], 1), a, b))
    # Where offline scores differ, what fine-tuning added is the fairer reading of "online".
    for a, b in (("fino", "fql"), ("fino-balanced", "fino")):
        if (task, a) in cells and (task, b) in cells:
            lines.append(f"- online gain (online − offline), {a} vs {b}: " + _compare(
                _gains(cells[(task, a)]), _gains(cells[(task, b)]), a, b))
    injected = offline_per_seed(cells, task, OFFLINE_ALIKE["injected"])
    plain = offline_per_seed(cells, task, OFFLINE_ALIKE["none"])
    if injected and plain:
        lines.append(
            "- offline phase, injected noise vs none, evaluated alike (best of K candidates; "
            "per seed the mean of fino, noise-only and balanced runs vs action-noise, whose "
            "offline phase is FQL's training): " + _compare(injected, plain, "injected", "none"))
    if (task, "fql") in cells and (task, "action-noise") in cells:
        lines.append(
            "- evaluation rule, same offline training (η=0): one sample (fql) vs the best "
            "of K candidates by Q (action-noise, as FINO evaluates): " + _compare(
                _scores(cells[(task, "fql")], 0), _scores(cells[(task, "action-noise")], 0),
                "fql", "action-noise"))
    if (task, "fino-balanced") in cells and (task, "fino") in cells:
        lines.append("- balanced 50/50 sampling vs uniform (not a claim of the paper; its "
                     "suggested remedy for distribution shift): " + _compare(
                         _scores(cells[(task, "fino-balanced")], 1),
                         _scores(cells[(task, "fino")], 1), "fino-balanced", "fino"))
    return lines


def _interval(interval: Interval | None, digits: int = 1) -> str:
    """'70.0 [60.0, 80.0]', or why there is none."""
    if interval is None:
        return f"– (needs ≥ {MIN_RUNS} runs on a task)"
    return f"{interval.estimate:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def _left_out(interval: Interval | None) -> str:
    if interval is None or not interval.left_out:
        return ""
    return f"; {interval.left_out} task(s) with fewer than {MIN_RUNS} runs left out"


def robust_section(cells: dict[tuple[str, str], Cell], tasks: list[str],
                   methods: list[str]) -> list[str]:
    """Report lines: per method the IQM of all runs × tasks with its 95% stratified-bootstrap
    CI, and P(X > Y) for each pair the claims compare (as rliable defines them)."""

    def by_task(method: str, which: int) -> list[list[float]]:
        return [_scores(cells[(t, method)], which) if (t, method) in cells else []
                for t in tasks]

    lines = ["## Robust aggregates (rliable)", "",
             "Interquartile mean (IQM: the mean of the middle 50% of all runs × tasks, a task "
             "with more runs weighing more) with its 95% stratified-bootstrap CI "
             f"({DEFAULT_REPS} resamples of the seeds within each task, seed {DEFAULT_SEED}), "
             "and the probability of improvement P(X > Y): the chance that a run of X scores "
             "above a run of Y on a task (ties count half), averaged over the tasks; as "
             "rliable defines them (Agarwal et al. 2021). One outlier seed moves neither much; "
             "where every run scores 0, the IQM is 0 [0, 0] and P(X > Y) is 0.5, a tie that "
             "says nothing either way.", "",
             "| method | offline IQM [95% CI] | online IQM [95% CI] | n |", "|---|---|---|---|"]
    for method in methods:
        offline = iqm_interval(by_task(method, 0))
        online = iqm_interval(by_task(method, 1))
        runs = f"{online.runs} runs, {online.tasks} task(s)" if online else "–"
        lines.append(f"| {method} | {_interval(offline)} | {_interval(online)} | {runs}"
                     f"{_left_out(online)} |")
    lines.append("")
    pairs = [(a, b, 1) for a, b, _ in CLAIMS]
    if "fino" in methods and "fql" in methods:
        pairs.insert(0, ("fino", "fql", 0))  # the paper: equal offline
    for a, b, which in pairs:
        if a not in methods or b not in methods:
            continue
        x, y = by_task(a, which), by_task(b, which)
        p = improvement_interval(x, y)
        text = f"- P({a} > {b}), {('offline', 'online')[which]} scores: {_interval(p, 2)}"
        if p is not None:
            text += (f" (n={p.runs}/{p.runs_y} runs over {p.tasks} task(s)"
                     f"{_left_out(p)})")
            if all_tie(x, y):
                text += "; every run ties (all the same score): no evidence either way"
        lines.append(text)
    return [*lines, ""]
