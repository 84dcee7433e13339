"""`fino plot`: learning curves from the store as a PNG; seeds of one experiment as their mean
with a shaded confidence band. `--profile`: performance profiles of the runs' final scores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console

from fino.analysis.curves import STEP_LABEL, mark_offline_end, plot_curve
from fino.cli.common import fail, plain
from fino.cli.options import DbOption, RunIdsArg
from fino.cli.readout import check_key, read_store, train_setting, user_errors
from fino.metric_keys import EVAL_SCORE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from fino.analysis.groups import Group
    from fino.store.queries import Series

MAX_POINTS = 2_000  # per run line: about two points per pixel column of a wide figure


def plot(
    ids: RunIdsArg,
    key: Annotated[list[str] | None, typer.Option(
        "--key", "-k", show_default=False,
        help="Metric key, one panel each (repeatable). Default: eval/score.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="PNG file to write (default: curves.png, or profile.png with --profile, in the "
             "current folder).", show_default=False)] = None,
    group: Annotated[bool, typer.Option(
        "--group/--no-group",
        help="Mean and CI band over the seeds of each experiment, or one line per run.")
    ] = True,
    profile: Annotated[bool, typer.Option(
        "--profile", help="Performance profiles instead of curves: per method (runs of all "
        "tasks pooled), the fraction of runs whose last evaluation of the key scores above τ, "
        "against τ, with a stratified-bootstrap band (rliable's score distributions).")
    ] = False,
    confidence: Annotated[float, typer.Option(help="Confidence level of the band.")] = 0.95,
    title: Annotated[str | None, typer.Option(help="Figure title (default: the task).")
                     ] = None,
    db: DbOption = None,
) -> None:
    """Learning curves of runs as a PNG; prints the file's full path.

    Example: fino plot 1-10 --key eval/score --key policy/entropy --out curves.png
    Example: fino plot 1-30 --profile --out profile.png
    """
    from fino.analysis.groups import group_runs
    from fino.store.queries import get_runs, metric_keys, resolve_run_ids, series, series_many

    keys = list(dict.fromkeys(key or [EVAL_SCORE]))
    if not 0 < confidence < 1:
        fail(f"--confidence {confidence}: must be between 0 and 1, e.g. 0.95")
    if profile and len(keys) > 1:
        fail("--profile draws one key: give one --key")
    out = out or Path("profile.png" if profile else "curves.png")
    if out.suffix.lower() != ".png":
        fail(f"--out {out}: the file name must end in .png")
    store = read_store(db)
    with user_errors(), store.read() as session:
        run_ids = resolve_run_ids(session, ids)
        runs = get_runs(session, run_ids)
        known = metric_keys(session, run_ids)
        for k in keys:
            check_key(k, known, f"runs {' '.join(ids)}")
        if group or profile:
            data = {k: series_many(session, run_ids, k) for k in keys}
        else:
            data = {k: {i: series(session, i, k, max_points=MAX_POINTS) for i in run_ids}
                    for k in keys}
    with user_errors():
        groups = group_runs(runs)
    tasks = sorted({r.task for r in runs})
    exclude = ["task"] if len(tasks) == 1 else []
    offline = {train_setting(r, "offline_steps") for r in runs}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if profile:
        _save(_profile_figure(groups, data[keys[0]], keys[0], confidence, title), out, [])
        return
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 3.6 * len(keys) + 0.6), sharex=True,
                             squeeze=False)
    notes: list[str] = []
    for ax, k in zip(axes[:, 0], keys, strict=True):
        for g in groups:
            label = g.label(exclude=exclude)
            if group:
                note = _plot_group(ax, g, data[k], label, confidence)
                if note:
                    notes.append(f"{k}, {note}")
            else:
                for run in g.runs:
                    steps, values = data[k].get(run.id, (np.array([]), np.array([])))
                    if len(steps):
                        ax.plot(steps, values, linewidth=1.2,
                                label=f"{label} s{run.seed} (#{run.id})")
        if len(offline) == 1:
            mark_offline_end(ax, next(iter(offline)))
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    axes[-1, 0].set_xlabel(STEP_LABEL)
    fig.suptitle(title or ", ".join(tasks))
    _save(fig, out, notes)


def _save(fig: Figure, out: Path, notes: list[str]) -> None:
    """Writes the PNG, says the notes on stderr and prints the file's full path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with user_errors():
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    plt.close(fig)
    for note in notes:
        Console(stderr=True).print(plain(note), style="yellow", highlight=False)
    typer.echo(str(out.resolve()))


def _profile_figure(groups: list[Group], data: dict[int, Series], key: str, confidence: float,
                    title: str | None) -> Figure:
    """One performance profile per method: the groups (by task and algorithm, split by config)
    that share a label once the task is left out, pooled across tasks."""
    import matplotlib.pyplot as plt

    from fino.analysis.robust import MIN_RUNS, performance_profile
    from fino.analysis.stats import offline_and_final

    tasks = sorted({r.task for g in groups for r in g.runs})
    finals: dict[str, dict[str, list[float]]] = {}
    for g in groups:
        for run in g.runs:
            steps, values = data.get(run.id, ((), ()))
            final = offline_and_final(zip(steps, values, strict=True), None).final
            if final is not None:
                finals.setdefault(g.label(exclude=["task"]), {}).setdefault(run.task, []).append(
                    final)
    if not finals:
        fail(f"no selected run has a finite {key} to profile")
    pooled = [v for by_task in finals.values() for scores in by_task.values() for v in scores]
    low, high = min(pooled), max(pooled)
    if key == EVAL_SCORE:  # success rates: the whole 0-100% range
        low, high = min(low, 0.0), max(high, 100.0)
    thresholds = np.linspace(low, high if high > low else low + 1, 101)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for label, by_task in finals.items():
        scores = [by_task.get(task, []) for task in tasks]
        fraction, band_low, band_high = performance_profile(scores, thresholds, confidence)
        runs_n, tasks_n = sum(map(len, scores)), sum(1 for s in scores if s)
        (line,) = ax.plot(thresholds, fraction, linewidth=1.8,
                          label=f"{label} (n={runs_n} runs, {tasks_n} task"
                                f"{'' if tasks_n == 1 else 's'})")
        if any(len(s) >= MIN_RUNS for s in scores):
            ax.fill_between(thresholds, band_low, band_high, color=line.get_color(), alpha=0.2,
                            linewidth=0)
    ax.set_xlabel(f"τ ({key}, last evaluation of each run)")
    ax.set_ylabel("fraction of runs scoring > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or f"{', '.join(tasks)}: performance profile, "
                          f"{confidence:.0%} stratified-bootstrap band")
    return fig


def _plot_group(ax: Axes, group: Group, data: dict[int, Series], label: str,
                confidence: float) -> str | None:
    """Mean over the group's seeds with its CI band; a note when the curve had to be cut or
    left out because the seeds do not share their steps."""
    runs = [r for r in group.runs if r.id in data and len(data[r.id][0])]
    if not runs:
        return None  # no run of this group logged the key: nothing to draw, nothing to say
    curves = [data[r.id] for r in runs]
    steps = plot_curve(ax, curves, f"{label} (n={len(curves)})", confidence, linewidth=1.8)
    if steps is None:
        return f"{label}: its runs share no steps, not drawn (try --no-group)"
    last = max(c[0][-1] for c in curves)
    if steps[-1] < last:
        ends = [f"#{r.id}" for r, c in zip(runs, curves, strict=True) if c[0][-1] <= steps[-1]]
        return (f"{label}: mean drawn up to step {int(steps[-1]):,} where "
                f"{', '.join(ends) or 'a run'} ends (--no-group shows each run)")
    return None
