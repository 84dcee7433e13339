"""Lines to draw from metric series: one per run, or one per group of seeds as the mean with its
confidence band (the same groups, alignment and band as `fino plot`: fino.analysis.curves)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fino.analysis.curves import align, band
from fino.analysis.groups import group_runs
from fino.metric_keys import POLICY_ENTROPY, POLICY_ENTROPY_TARGET
from fino.store.models import ACTIVE, Run
from fino.store.queries import Series


@dataclass(frozen=True)
class Curve:
    """One line; `lower`/`upper` (same length) draw its band; `color` indexes the palette
    (None: the neutral colour of reference lines). `marks`: "auto" (a line, each point marked
    while there are few), "points" (markers only) or "line" (never marked)."""

    label: str
    steps: np.ndarray
    values: np.ndarray
    color: int | None = 0
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    marks: Literal["auto", "points", "line"] = "auto"


def run_curves(runs: Sequence[Run], data: Mapping[int, Series]) -> list[Curve]:
    """One curve per run that has data, coloured by its place in `runs`, labelled by id and
    what its name does not share with the others (cube-single-t1-fino-s0 and …-fql-s0 read
    '#4 fino-s0', '#5 fql-s0')."""
    drawn = [(index, run) for index, run in enumerate(runs) if len(data.get(run.id, ((),))[0])]
    names = [run.name for _, run in drawn]
    common = shared_prefix(names) if len(names) > 1 else ""
    return [Curve(f"#{run.id} {run.name[len(common):] or run.name}", *data[run.id], index)
            for index, run in drawn]


def shared_prefix(names: Sequence[str]) -> str:
    """The longest start of every name that ends with a '-' (whole words of the names)."""
    first, last = min(names, default=""), max(names, default="")
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
                min(len(first), len(last)))
    prefix = first[:size]
    return prefix[:prefix.rfind("-") + 1]


def group_curves(runs: Sequence[Run], data: Mapping[int, Series]) -> tuple[list[Curve], list[str]]:
    """(one mean curve with its band per seed group, notes on groups that could not be drawn)."""
    curves: list[Curve] = []
    notes: list[str] = []
    groups = group_runs(list(runs))
    exclude = ["task"] if len({r.task for r in runs}) == 1 else []
    for index, group in enumerate(groups):
        label = group.label(exclude=exclude)
        members = [data[r.id] for r in group.runs if r.id in data and len(data[r.id][0])]
        if not members:
            continue
        aligned = align(members)
        if aligned is None:
            notes.append(f"{label}: its runs share no steps")
            continue
        steps, matrix = aligned
        mean, half = band(matrix)
        has_band = len(members) > 1
        curves.append(Curve(f"{label} (n={len(members)})", steps, mean, index,
                            mean - half if has_band else None,
                            mean + half if has_band else None))
    return curves, notes


def target_lines(runs: Sequence[Run], data: Mapping[int, Series]) -> list[Curve]:
    """The entropy target(s) of the plotted runs as flat reference lines, one per value."""
    targets = sorted({float(values[-1]) for run in runs if run.id in data
                      for steps, values in [data[run.id]]
                      if len(values) and math.isfinite(values[-1])})
    spans = [data[r.id][0] for r in runs if r.id in data and len(data[r.id][0])]
    if not targets or not spans:
        return []
    lo = min(float(s[0]) for s in spans)
    hi = max(float(s[-1]) for s in spans)
    return [Curve(f"target {value:g}", np.array([lo, hi]), np.array([value, value]), None)
            for value in targets]


@dataclass(frozen=True)
class Panel:
    """What one plot shows: the curves of one key, or a note saying why there are none."""

    key: str
    curves: list[Curve]
    note: str = ""


def series_keys(keys: Sequence[str]) -> list[str]:
    """The keys to read for these panels (the entropy panel also draws its target)."""
    target = [POLICY_ENTROPY_TARGET] if POLICY_ENTROPY in keys else []
    return list(dict.fromkeys([*keys, *target]))


def make_panels(runs: Sequence[Run], data: Mapping[tuple[int, str], Series],
                keys: Sequence[str], grouped: bool, logged: Sequence[str]) -> dict[str, Panel]:
    """One panel per key: a curve per run, or per seed group (mean and band) when `grouped`."""
    panels = {}
    for key in keys:
        of_key = {r.id: data[(r.id, key)] for r in runs if len(data.get((r.id, key), ((),))[0])}
        notes: list[str] = []
        if grouped:
            curves, notes = group_curves(runs, of_key)
        else:
            curves = run_curves(runs, of_key)
        if key == POLICY_ENTROPY and curves:
            targets = {r.id: data[(r.id, POLICY_ENTROPY_TARGET)] for r in runs
                       if (r.id, POLICY_ENTROPY_TARGET) in data}
            curves += target_lines(runs, targets)
        if not runs:
            notes.append("no run: move the cursor to one, or select some with space")
        elif not curves:
            notes.append(empty_note(key, runs, logged))
        panels[key] = Panel(key, curves, "; ".join(notes))
    return panels


def empty_note(key: str, runs: Sequence[Run], logged: Sequence[str]) -> str:
    """Why a panel of these runs has no curve: a key that runs still at work may yet log is
    'not logged yet'; only finished runs that never logged it are 'not logged by these runs'."""
    if key in logged or not logged:
        return "no points yet"
    if any(r.status in ACTIVE for r in runs):
        return "not logged yet"
    return "not logged by these runs"
