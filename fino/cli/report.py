"""`fino report`: FINO vs FQL (and ablations) as the paper reports them: per task and method,
offline score -> online score, mean ± 95% CI over seeds; then the robust aggregates (interquartile
mean with a bootstrap CI, probability of improvement across tasks)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fino.cli.common import fail, plain, shown
from fino.cli.complete import complete_run_id
from fino.cli.options import (
    AlgoOption,
    DbOption,
    KeyOption,
    StatusOption,
    StudyOption,
    TagOption,
    TaskOption,
)
from fino.cli.readout import (
    check_key,
    finite_or_none,
    fmt_ci,
    read_store,
    train_setting,
    user_errors,
)
from fino.metric_keys import EVAL_SCORE
from fino.status import RunStatus

if TYPE_CHECKING:
    from fino.analysis.robust import Interval


def report(
    ids: Annotated[list[str] | None, typer.Argument(
        show_default=False, metavar="ID", autocompletion=complete_run_id,
        help="Only these runs (4, 3-7); default: every run matching the filters.")] = None,
    group_by: Annotated[str, typer.Option(
        help="Comma-separated grouping fields: task, algo, preset, backend, study or config "
             "paths such as train.balanced. The first one names the rows.")] = "task,algo",
    split: Annotated[bool, typer.Option(
        "--split/--no-split",
        help="Separate runs whose configs differ beyond the seed (ablations, other presets) "
             "and label them with the differing settings; --no-split pools them.")] = True,
    status: StatusOption = None,
    task: TaskOption = None,
    algo: AlgoOption = None,
    tag: TagOption = None,
    study: StudyOption = None,
    key: KeyOption = EVAL_SCORE,
    confidence: Annotated[float, typer.Option(help="Confidence level of the interval.")
                          ] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                       ] = False,
    db: DbOption = None,
) -> None:
    """Offline -> online score per task and method, mean ± 95% CI over seeds (the paper's table).

    Finished runs unless --status says otherwise; methods side by side, one row per task. A
    second table gives the interquartile mean (IQM) with a stratified-bootstrap CI, across tasks
    too, and the probability that one method's run beats another's, P(X > Y).

    Example: fino report --group-by task,algo --status done --key eval/score
    """
    from fino.analysis.groups import group_runs
    from fino.analysis.robust import MIN_RUNS, iqm_interval
    from fino.analysis.stats import mean_ci, offline_and_final
    from fino.store.queries import list_runs, metric_keys, resolve_run_ids, series_many

    by = [f.strip() for f in group_by.split(",") if f.strip()]
    if not by:
        fail("--group-by needs at least one field, e.g. task,algo")
    if not 0 < confidence < 1:
        fail(f"--confidence {confidence}: must be between 0 and 1, e.g. 0.95")
    store = read_store(db)
    with user_errors(), store.read() as session:
        runs = list_runs(session, status=status or [RunStatus.DONE], task=task, algo=algo,
                         tag=tag, study=study, limit=None)
        if ids:
            wanted = set(resolve_run_ids(session, ids))
            runs = [r for r in runs if r.id in wanted]
        if not runs:
                fail(f"no runs with status {', '.join(status or ['done'])} match"
                 + (" (see `fino runs list`)" if not ids else f" among {' '.join(ids)}"))
        run_ids = [r.id for r in runs]
        check_key(key, metric_keys(session, run_ids), "the selected runs")
        data = series_many(session, run_ids, key)
    with user_errors():
        groups = group_runs(sorted(runs, key=lambda r: r.id), by, split=split)

    rows = []
    per_cell: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for group in groups:
        offline, final = [], []
        for run in group.runs:
            steps, values = data.get(run.id, ((), ()))
            scores = offline_and_final(zip(steps, values, strict=True),
                                       train_setting(run, "offline_steps"))
            if scores.offline is not None:
                offline.append(scores.offline)
            if scores.final is not None:
                final.append(scores.final)
        rows.append({
            "row": group.by[by[0]], "method": group.label(exclude=[by[0]]),
            "by": group.by, "settings": group.settings, "seeds": group.seeds,
            "offline": dict(zip(("mean", "ci", "n"), mean_ci(offline, confidence), strict=True)),
            "online": dict(zip(("mean", "ci", "n"), mean_ci(final, confidence), strict=True)),
            "iqm": {phase: _interval(iqm_interval([values], confidence))
                    for phase, values in (("offline", offline), ("online", final))},
        })
        per_cell[(rows[-1]["row"], rows[-1]["method"])] = (offline, final)
    shared = shared_offline(runs)
    # Across rows only when rows are tasks: the bootstrap's strata are tasks.
    robust = across_tasks(per_cell, confidence) if by[0] == "task" else None
    if as_json:
        typer.echo(json.dumps({"key": key, "confidence": confidence, "groups": [
            {**r, "offline": _clean(r["offline"]), "online": _clean(r["online"])}
            for r in rows], "robust": robust, "shared_offline": shared}, indent=2, default=str))
        return
    table = _table(rows, key, by[0], confidence)
    if shared:
        table.caption += ("\nshared offline phases (run <- the run whose end-of-offline "
                          "checkpoint it started from): "
                          + ", ".join(f"{v} <- {s}" for v, s in shared.items()))
    console = Console()
    console.print(table)
    if not any(r["iqm"]["online"] or r["iqm"]["offline"] for r in rows):
        console.print(f"[dim]IQM and P(X > Y) need ≥ {MIN_RUNS} runs per method and task.[/]")
        return
    console.print(_robust_table(rows, robust, key, by[0], confidence))


def across_tasks(scores: dict[tuple[str, str], tuple[list[float], list[float]]],
                 confidence: float) -> dict[str, Any]:
    """Per method, the IQM over all runs × tasks (offline and online); per pair of methods
    (in column order), P(X > Y) of the online scores over the tasks both have."""
    from fino.analysis.robust import (
        DEFAULT_REPS,
        DEFAULT_SEED,
        all_tie,
        improvement_interval,
        iqm_interval,
    )

    tasks = list(dict.fromkeys(task for task, _ in scores))
    methods = list(dict.fromkeys(method for _, method in scores))

    def by_task(method: str, phase: int) -> list[list[float]]:
        return [scores.get((task, method), ([], []))[phase] for task in tasks]

    return {
        "reps": DEFAULT_REPS, "seed": DEFAULT_SEED, "tasks": len(tasks),
        "iqm": {m: {"offline": _interval(iqm_interval(by_task(m, 0), confidence)),
                    "online": _interval(iqm_interval(by_task(m, 1), confidence))}
                for m in methods},
        "probability_of_improvement": [
            {"x": x, "y": y, "online": _interval(improvement_interval(
                by_task(x, 1), by_task(y, 1), confidence)),
             "all_tie": all_tie(by_task(x, 1), by_task(y, 1))}
            for i, x in enumerate(methods) for y in methods[i + 1:]],
    }


def shared_offline(runs: list[Any]) -> dict[int, int | str]:
    """Run id -> the run whose offline phase it shares (its id when that run is in `runs`,
    else the checkpoint's path)."""
    from pathlib import Path

    folders = {str(Path(r.run_dir)): r.id for r in runs if r.run_dir}
    out: dict[int, int | str] = {}
    for run in runs:
        path = (run.config or {}).get("from_offline")
        if path:
            out[run.id] = folders.get(str(Path(path).parent), path)
    return out


def _interval(interval: Interval | None) -> dict[str, float | int | None] | None:
    return interval.as_dict() if interval else None


def _fmt_interval(interval: dict[str, Any] | None, digits: int = 1) -> str:
    """'70.0 [60.0, 80.0]'; too few runs: 'needs ≥ 2 runs'."""
    from fino.analysis.robust import MIN_RUNS

    if interval is None:
        return f"needs ≥ {MIN_RUNS} runs"
    return (f"{interval['estimate']:.{digits}f} "
            f"[{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]")


def _robust_table(rows: list[dict[str, Any]], robust: dict[str, Any] | None, key: str,
                  row_field: str, confidence: float) -> Table:
    """IQM [CI] per row and method, an 'all tasks' row and P(X > Y) when rows are tasks."""
    from fino.analysis.robust import DEFAULT_REPS, DEFAULT_SEED, MIN_RUNS

    methods = list(dict.fromkeys(r["method"] for r in rows))
    row_names = list(dict.fromkeys(r["row"] for r in rows))
    reps = robust["reps"] if robust else DEFAULT_REPS
    caption = (f"IQM: mean of the middle 50% of the runs' scores (offline -> online); CI: "
               f"percentile, {reps} stratified bootstrap resamples of the runs within each "
               f"task (seed {DEFAULT_SEED}); cells with fewer than {MIN_RUNS} runs have none")
    table = Table(title=f"{key}: interquartile mean [{confidence:.0%} bootstrap CI] over seeds",
                  caption_justify="left", show_lines=True)
    table.add_column(row_field)
    for method in methods:
        table.add_column(plain(method), justify="right")
    cells = {(r["row"], r["method"]): r["iqm"] for r in rows}
    lines = [(plain(name), [cells.get((name, m)) for m in methods]) for name in row_names]
    if robust and len(row_names) > 1:
        lines.append((Text("all tasks", style="bold"),
                      [robust["iqm"][m] for m in methods]))
        caption += "; all tasks: IQM of all runs × tasks, a task with more runs weighing more"
    for name, iqms in lines:
        table.add_row(name, *(
            "[dim]-[/]" if cell is None else
            f"{_fmt_interval(cell['offline'])} -> [bold]{_fmt_interval(cell['online'])}[/]"
            for cell in iqms))
    for pair in (robust or {}).get("probability_of_improvement", []):
        online = pair["online"]
        said = (f"needs ≥ {MIN_RUNS} runs of each on a task" if online is None else
                f"{_fmt_interval(online, 2)} over {online['tasks']} task(s), "
                f"n={online['runs']}/{online['runs_y']} runs")
        if online is not None and pair["all_tie"]:
            said += " (every run ties, as when all score 0: no evidence either way)"
        caption += f"\nP({shown(pair['x'])} > {shown(pair['y'])}), online: {said}"
    table.caption = caption
    return table


def _clean(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in stats.items()}


def _table(rows: list[dict[str, Any]], key: str, row_field: str, confidence: float) -> Table:
    """Rows: values of the first grouping field (tasks); columns: methods."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    row_names = list(dict.fromkeys(r["row"] for r in rows))
    table = Table(title=f"{key}: offline -> online, mean ± {confidence:.0%} CI over seeds",
                  caption="offline: last evaluation at the end of the offline phase; online: "
                          "last evaluation of the run; n: seeds", caption_justify="left",
                  show_lines=True)
    table.add_column(row_field)
    for method in methods:
        table.add_column(plain(method), justify="right")
    cells = {(r["row"], r["method"]): r for r in rows}
    for name in row_names:
        line: list[str | Text] = [plain(name)]
        for method in methods:
            r = cells.get((name, method))
            if r is None:
                line.append("[dim]-[/]")
                continue
            off, on = r["offline"], r["online"]
            seeds = f"\n[dim]n={on['n']}[/]" if on["n"] > 1 else ""  # one seed says (n=1)
            line.append(f"{fmt_ci(off['mean'], off['ci'], off['n'])} -> "
                        f"[bold]{fmt_ci(on['mean'], on['ci'], on['n'])}[/]{seeds}")
        table.add_row(*line)
    return table
