"""`fino report`: FINO vs FQL (and ablations) as the paper reports them: per task and method,
offline score -> online score, mean ± 95% CI over seeds."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fino.cli.common import fail, plain
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
    key: KeyOption = "eval/score",
    confidence: Annotated[float, typer.Option(help="Confidence level of the interval.")
                          ] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                       ] = False,
    db: DbOption = None,
) -> None:
    """Offline -> online score per task and method, mean ± 95% CI over seeds (the paper's table).

    Finished runs unless --status says otherwise; methods side by side, one row per task.

    Example: fino report --group-by task,algo --status done --key eval/score
    """
    from fino.analysis.groups import group_runs
    from fino.analysis.stats import mean_ci, offline_and_final
    from fino.store.queries import list_runs, metric_keys, resolve_run_ids, series_many

    by = [f.strip() for f in group_by.split(",") if f.strip()]
    if not by:
        fail("--group-by needs at least one field, e.g. task,algo")
    if not 0 < confidence < 1:
        fail(f"--confidence {confidence}: must be between 0 and 1, e.g. 0.95")
    store = read_store(db)
    with user_errors(), store.read() as session:
        runs = list_runs(session, status=status or ["done"], task=task, algo=algo, tag=tag,
                         study=study, limit=None)
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
        })
    shared = shared_offline(runs)
    if as_json:
        typer.echo(json.dumps({"key": key, "confidence": confidence, "groups": [
            {**r, "offline": _clean(r["offline"]), "online": _clean(r["online"])}
            for r in rows], "shared_offline": shared}, indent=2, default=str))
        return
    table = _table(rows, key, by[0], confidence)
    if shared:
        table.caption += ("\nshared offline phases (run <- the run whose end-of-offline "
                          "checkpoint it started from): "
                          + ", ".join(f"{v} <- {s}" for v, s in shared.items()))
    Console().print(table)


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
