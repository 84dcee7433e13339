"""`fino runs`: list runs with their latest numbers, show one run, compare runs and their seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fino.cli.common import fail, open_store, parse_ids, parse_tags, plain, styled_status
from fino.cli.options import (
    AlgoOption,
    DbOption,
    KeyOption,
    RunIdArg,
    RunIdsArg,
    StatusOption,
    StudyOption,
    TagOption,
    TaskOption,
)
from fino.cli.readout import (
    check_key,
    elapsed,
    finite_or_none,
    fmt_ci,
    fmt_duration,
    fmt_num,
    fmt_step,
    fmt_time,
    read_store,
    total_steps,
    train_setting,
    user_errors,
)
from fino.metric_keys import EVAL_SCORE, POLICY_BETA, POLICY_ENTROPY, PROGRESS_ENV_STEPS
from fino.status import RunStatus
from fino.store.text import printable

runs_app = typer.Typer(help="Inspect and annotate runs: list, show, compare, tag, rename, note.",
                       no_args_is_help=True, add_completion=False)

# Written at every log interval, evaluation or episode: their newest step is the run's step.
PROGRESS_KEYS = (PROGRESS_ENV_STEPS, EVAL_SCORE, POLICY_ENTROPY, POLICY_BETA)
NARROW = 120  # terminal columns below which `runs list` leaves out task and start time
KEY_SETTINGS = (
    "train.offline_steps", "train.online_steps", "train.eval_interval", "train.eval_episodes",
    "train.balanced", "agent.alpha", "agent.q_agg", "agent.discount", "agent.noise_scale",
    "agent.noise_schedule", "agent.num_candidates", "agent.exploration", "agent.entropy_target",
    "agent.beta_init", "agent.batch_size", "agent.lr", "task.task_id", "task.success_timing",
    "train.device", "train.matmul_precision",
)


@runs_app.command("list")
def list_(
    status: StatusOption = None,
    task: TaskOption = None,
    algo: AlgoOption = None,
    tag: TagOption = None,
    study: StudyOption = None,
    search: Annotated[str | None, typer.Option(
        show_default=False, help="Only runs whose name, task, tags or notes contain this.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many rows (the next page).")] = 0,
    sort: Annotated[str, typer.Option(
        help="Order by: id, name, task, algo, seed, status, priority, created_at, started_at, "
             "finished_at.")] = "id",
    ascending: Annotated[bool, typer.Option("--ascending", help="Oldest first.")] = False,
    db: DbOption = None,
) -> None:
    """Runs, newest first, with progress and their latest score, entropy and β.

    Example: fino runs list --status running --status done --task cube --algo fino
    """
    from fino.store.queries import count_runs, latest_metrics, list_runs

    filters: dict[str, Any] = dict(status=status, task=task, algo=algo, tag=tag, text=search,
                                   study=study)
    store = read_store(db)
    with user_errors(), store.read() as session:
        runs = list_runs(session, **filters, order_by=sort, descending=not ascending,
                         limit=limit, offset=offset)
        total = count_runs(session, **filters)
        latest = latest_metrics(session, [r.id for r in runs], PROGRESS_KEYS)
    console = Console()
    # A narrow terminal drops what the default name (task-algo-sSEED) repeats, the start time
    # and then entropy and β, but keeps the algorithm: a name given with --name may not say it.
    hidden = {"task", "started"} if console.width < NARROW else set()
    if console.width < NARROW - 20:
        hidden |= {"seed", "entropy", "β", "pack"}
    if not any(run.pack_id for run in runs):
        hidden.add("pack")
    table = Table(title="runs", caption=f"{offset + 1 if runs else 0}-{offset + len(runs)} "
                                        f"of {total} runs", caption_justify="left",
                  box=box.SIMPLE_HEAD)
    columns = (("id", "right"), ("name", "left"), ("task", "left"), ("algo", "left"),
               ("seed", "right"), ("status", "left"), ("pack", "left"), ("progress", "right"),
               ("score", "right"), ("entropy", "right"), ("β", "right"), ("started", "left"),
               ("elapsed", "right"))
    for name, justify in columns:
        if name not in hidden:
            table.add_column(name, justify=justify, overflow="ellipsis")  # type: ignore[arg-type]
    for run in runs:
        values = latest.get(run.id, {})
        cells = {"id": str(run.id), "name": plain(run.name), "task": plain(run.task),
                 "algo": plain(run.algo), "seed": str(run.seed),
                 "status": styled_status(run.status), "pack": plain(run.pack_id),
                 "progress": _progress(run, values),
                 "score": fmt_num(_value(values, EVAL_SCORE)),
                 "entropy": fmt_num(_value(values, POLICY_ENTROPY), 2),
                 "β": fmt_num(_value(values, POLICY_BETA), 2),
                 "started": fmt_time(run.started_at)[5:16] if run.started_at else "-",
                 "elapsed": fmt_duration(elapsed(run))}
        table.add_row(*(cells[name] for name, _ in columns if name not in hidden))
    console.print(table)


def _value(values: dict[str, tuple[int, float | None]], key: str) -> float | None:
    return values[key][1] if key in values else None


def _progress(run: Any, values: dict[str, tuple[int, float | None]]) -> str:
    if run.status == RunStatus.DONE:
        return "100%"
    total = total_steps(run)
    step = max((s for s, _ in values.values()), default=None)
    if step is None or not total:
        return "-"
    return f"{min(100.0, 100 * step / total):.0f}%"


def checkpoints_text(run_dir: str | None) -> str:
    """The checkpoints a run folder keeps: the last few by step, and the end of the offline
    phase (online variants may start from it)."""
    from fino.train.checkpoint import CHECKPOINT_NAME, kept_checkpoints
    from fino.train.offline_start import OFFLINE_NAME

    if not run_dir or not Path(run_dir).is_dir():
        return "-"
    folder = Path(run_dir)
    parts = [f"step {step} ({path.relative_to(folder)})" for step, path in
             kept_checkpoints(folder)]
    if not parts and (folder / CHECKPOINT_NAME).exists():
        parts.append(CHECKPOINT_NAME)  # a run folder from before checkpoints were kept
    if (folder / OFFLINE_NAME).exists():
        parts.append(f"end of offline ({OFFLINE_NAME})")
    return ", ".join(parts) or "-"


@runs_app.command("show")
def show(
    run_id: RunIdArg,
    full: Annotated[bool, typer.Option("--full", help="Print the whole config as JSON.")
                    ] = False,
    db: DbOption = None,
) -> None:
    """One run: settings and preset, status history, latest metrics, error text, run folder.

    Example: fino runs show 12 --full
    """
    from fino.analysis.groups import flatten
    from fino.analysis.stats import offline_and_final
    from fino.store.queries import get_runs, latest_metrics, metric_keys, run_events, series

    store = read_store(db)
    with user_errors(), store.read() as session:
        (run,) = get_runs(session, [run_id])
        events = run_events(session, run_id)
        keys = metric_keys(session, [run_id])
        latest = latest_metrics(session, [run_id], keys).get(run_id, {})
        scores = offline_and_final(zip(*series(session, run_id, EVAL_SCORE), strict=True),
                                   train_setting(run, "offline_steps"))
    console = Console()
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    worker = f"{run.worker_host}:{run.worker_pid}" if run.worker_host else "-"
    for label, value in (
        ("status", styled_status(run.status)), ("task", plain(f"{run.task} ({run.backend})")),
        ("algo / seed", plain(f"{run.algo} / {run.seed}")), ("preset", plain(run.preset)),
        ("tags", plain(run.tags)),
        ("study / trial", plain(f"{run.study} / {run.trial}") if run.study else "-"),
        ("priority", str(run.priority)), ("attempts", f"{run.attempts} of {run.max_attempts}"),
        ("worker", plain(worker)), *([("pack", plain(run.pack_id))] if run.pack_id else []),
        ("created", fmt_time(run.created_at)),
        ("started", fmt_time(run.started_at)), ("finished", fmt_time(run.finished_at)),
        ("elapsed", fmt_duration(elapsed(run))), ("heartbeat", fmt_time(run.heartbeat_at)),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("scores", f"offline {fmt_num(scores.offline)} -> final {fmt_num(scores.final)} "
                   f"(best {fmt_num(scores.best)}, eval/score)"),
        ("run folder", plain(run.run_dir)),
        ("checkpoints", plain(checkpoints_text(run.run_dir))),
        ("notes", plain(run.notes, multiline=True)),
    ):
        info.add_row(label, value)
    console.print(Panel(info, title=Text(f"run {run.id}: ") + plain(run.name),
                        title_align="left"))

    flat = flatten(run.config or {})
    settings = Table(title="settings", show_header=False, title_justify="left")
    settings.add_column(style="bold")
    settings.add_column()
    for key in KEY_SETTINGS:
        if key in flat:
            settings.add_row(key, plain(flat[key]))
    history = Table(title="status history", title_justify="left")
    for column in ("time", "event", "status", "message"):
        history.add_column(column)
    for event in events:
        change = (f"{event.old_status or '∅'} -> {styled_status(event.new_status)}"
                  if event.new_status else "")
        history.add_row(fmt_time(event.time), plain(event.kind), change,
                        plain(event.message, "", multiline=True))
    metrics = Table(title="latest metrics", title_justify="left")
    for column, justify in (("key", "left"), ("step", "right"), ("value", "right")):
        metrics.add_column(column, justify=justify)  # type: ignore[arg-type]
    for key in sorted(latest):
        step, value = latest[key]
        metrics.add_row(plain(key), f"{step:,}", "-" if value is None else f"{value:.5g}")
    console.print(Group(settings, history))
    console.print(metrics if latest else "[dim]no metrics yet[/]")
    if run.error:
        console.print(Panel(plain(run.error, multiline=True), title="error",
                            border_style="red", title_align="left"))
    if full:
        console.print_json(json.dumps(run.config))


@runs_app.command("compare")
def compare(
    ids: RunIdsArg,
    key: KeyOption = EVAL_SCORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")
                       ] = False,
    db: DbOption = None,
) -> None:
    """Offline, final and best value of a key per run, and mean ± 95% CI per group of seeds.

    A group: runs with the same task, algorithm and config except the seed.

    Example: fino runs compare 1-10 --key eval/score
    """
    from fino.analysis.groups import group_runs
    from fino.analysis.stats import mean_ci, offline_and_final
    from fino.store.queries import get_runs, metric_keys, resolve_run_ids, series_many

    store = read_store(db)
    with user_errors(), store.read() as session:
        run_ids = resolve_run_ids(session, ids)
        runs = get_runs(session, run_ids)
        check_key(key, metric_keys(session, run_ids), f"runs {', '.join(ids)}")
        data = series_many(session, run_ids, key)
    with user_errors():
        groups = group_runs(runs)
    exclude = ["task"] if len({r.task for r in runs}) == 1 else []
    label_of = {r.id: g.label(exclude) for g in groups for r in g.runs}
    per_run = []
    for run in runs:
        steps, values = data.get(run.id, ((), ()))
        s = offline_and_final(zip(steps, values, strict=True), train_setting(run, "offline_steps"))
        per_run.append({"id": run.id, "name": run.name, "group": label_of[run.id],
                        "seed": run.seed, "status": run.status, "offline": s.offline,
                        "final": s.final, "best": s.best, "final_step": s.final_step})
    by_id = {row["id"]: row for row in per_run}
    per_group = []
    for group in groups:
        rows = [by_id[r.id] for r in group.runs]
        per_group.append({"group": group.label(exclude), "seeds": group.seeds, **{
            what: dict(zip(("mean", "ci95", "n"), mean_ci(
                [r[what] for r in rows if r[what] is not None]), strict=True))
            for what in ("offline", "final", "best")}})
    if as_json:
        typer.echo(json.dumps({"key": key, "runs": per_run, "groups": _json_safe(per_group)},
                              indent=2))
        return
    console = Console()
    table = Table(title=f"{key} per run")
    for column, justify in (("id", "right"), ("name", "left"), ("group", "left"),
                            ("seed", "right"), ("status", "left"), ("offline", "right"),
                            ("final", "right"), ("best", "right"), ("at step", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in per_run:
        table.add_row(str(row["id"]), plain(row["name"]), plain(row["group"]),
                      str(row["seed"]), styled_status(row["status"]), fmt_num(row["offline"]),
                      fmt_num(row["final"]), fmt_num(row["best"]), fmt_step(row["final_step"]))
    console.print(table)
    if any(len(g.runs) > 1 for g in groups):
        summary = Table(title=f"{key} per group: mean ± 95% CI over seeds")
        for column, justify in (("group", "left"), ("seeds", "left"), ("n", "right"),
                                ("offline", "right"), ("final", "right"), ("best", "right")):
            summary.add_column(column, justify=justify)  # type: ignore[arg-type]
        for row in per_group:
            summary.add_row(plain(row["group"]), ",".join(map(str, row["seeds"])),
                            str(row["final"]["n"]),
                            *(fmt_ci(*row[w].values()) for w in ("offline", "final", "best")))
        console.print(summary)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return finite_or_none(value)
    return value


# ---- annotating runs ---------------------------------------------------------------------------


@runs_app.command("tag")
def tag(
    ids: RunIdsArg,
    add: Annotated[list[str] | None, typer.Option(
        "--add", show_default=False, help="Tag to add (repeatable).")] = None,
    remove: Annotated[list[str] | None, typer.Option(
        "--remove", show_default=False, help="Tag to remove (repeatable).")] = None,
    db: DbOption = None,
) -> None:
    """Add or remove tags of runs.

    Tags are letters, digits and . _ - : @ /; `fino runs list --tag T` finds them.

    Example: fino runs tag 3-7 --add paper --remove draft
    """
    from fino.cli.queue import sentences
    from fino.store.queue import QueueError, change_tags

    if not add and not remove:
        fail("nothing to change: give --add TAG and/or --remove TAG")
    added, removed = parse_tags(add), parse_tags(remove)
    store = open_store(db, create=False)
    try:
        outcome = change_tags(store, parse_ids(ids), added, removed)
    except QueueError as exc:
        fail(str(exc))
    for run_id, what in sentences(outcome).items():
        typer.echo(printable(f"run {run_id}: {what}"))
    if any(change.failed for change in outcome.values()):
        raise typer.Exit(1)


@runs_app.command("rename")
def rename(
    run_id: RunIdArg,
    name: Annotated[str, typer.Argument(help="The new name.", show_default=False)],
    db: DbOption = None,
) -> None:
    """Give a run a new name; its folder keeps its path.

    Example: fino runs rename 12 cube-single-alpha300-s0
    """
    from fino.store.queue import QueueError
    from fino.store.queue import rename as rename_run
    from fino.store.text import RunNameError

    try:
        old = rename_run(open_store(db, create=False), run_id, name)
    except (QueueError, RunNameError) as exc:
        fail(str(exc))
    typer.echo(printable(f"run {run_id}: {old} -> {name}"))


@runs_app.command("note")
def note(
    run_id: RunIdArg,
    text: Annotated[str, typer.Argument(
        help="The note; it replaces the run's notes ('' clears them).", show_default=False)],
    db: DbOption = None,
) -> None:
    """Write a note on a run; `fino runs show` prints it.

    Example: fino runs note 12 "diverged after the lr change; rerun with agent.lr=1e-4"
    """
    from fino.store.queue import QueueError, set_note

    try:
        set_note(open_store(db, create=False), run_id, text)
    except QueueError as exc:
        fail(str(exc))
    typer.echo(f"run {run_id}: note {'cleared' if not text else 'saved'}")
