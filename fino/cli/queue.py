"""`fino queue`: add runs, list, show, cancel, retry, priority, remove, reap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fino.algo.config import MAX_INT
from fino.cli.common import fail, open_store, parse_ids, parse_tags, plain, shown, styled_status
from fino.cli.options import DbOption

queue_app = typer.Typer(help="The run queue: add, list, show, cancel, retry, priority, rm, reap.",
                        no_args_is_help=True)
console = Console()


def parse_seeds(spec: str) -> list[int]:
    """`0-4`, `0,2,5` or `3`; a one-line error otherwise."""
    from fino.train.presets import parse_seeds as parse

    try:
        return parse(spec)
    except ValueError as exc:
        fail(f"--{exc}")


def check_priority(priority: int, option: str) -> None:
    """Priorities are stored as 32-bit integers."""
    if not -MAX_INT <= priority <= MAX_INT:
        fail(f"{option} {priority}: must be in [{-MAX_INT}, {MAX_INT}]")


@queue_app.command("add")
def add(
    task: Annotated[str, typer.Option(help="Task name or alias (as for `fino run`).")],
    preset: Annotated[str | None, typer.Option(help="Preset profile or file.")] = None,
    algo: Annotated[str, typer.Option(help="fino or fql.")] = "fino",
    seeds: Annotated[str, typer.Option(help="Seeds: 0-4, 0,2,5 or 3.")] = "0",
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override: SECTION.KEY=VALUE (repeatable).")] = None,
    backend: Annotated[str, typer.Option(help="Task backend or auto.")] = "auto",
    task_id: Annotated[int | None, typer.Option(help="OGBench singletask id 1..5.")] = None,
    dataset_dir: Annotated[str | None, typer.Option(help="OGBench dataset folder.")] = None,
    dataset: Annotated[str | None, typer.Option(help="gymnasium backend dataset.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    tag: Annotated[list[str] | None, typer.Option(help="Tag (repeatable).")] = None,
    max_attempts: Annotated[int, typer.Option(
        help="Attempts before a failing or lost run stays failed.")] = 1,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    db: DbOption = None,
) -> None:
    """Queue one run per seed; everything is validated before anything is written.

    Example: fino queue add --task cube-double --preset quick --algo fql --seeds 0-4 --tag sweep
    """
    from fino.backends.base import TaskConfig, TaskError
    from fino.store.queue import add_runs
    from fino.train.presets import build_run_config

    if not 1 <= max_attempts <= MAX_INT:
        fail(f"--max-attempts {max_attempts}: must be in [1, {MAX_INT}]")
    check_priority(priority, "--priority")
    tags = parse_tags(tag)
    try:
        configs = [build_run_config(
            TaskConfig(name=task, backend=backend, task_id=task_id, dataset_dir=dataset_dir,
                       dataset=dataset),
            preset=preset, algo=algo, seed=seed, overrides=set_ or [])
            for seed in parse_seeds(seeds)]
    except (TaskError, ValueError) as exc:
        fail(str(exc))
    store = open_store(db)
    ids = add_runs(store, configs, runs_dir=runs_dir, priority=priority, tags=tags,
                   max_attempts=max_attempts)
    console.print(f"queued {len(ids)} run(s): {', '.join(map(str, ids))} "
                  f"({configs[0].algo} on {shown(configs[0].task.name)}, preset "
                  f"{shown(configs[0].preset)})")
    typer.echo(" ".join(map(str, ids)))


@queue_app.command("list")
def list_(
    status: Annotated[list[str] | None, typer.Option(
        help="Statuses to show (repeatable). Default: queued and running.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    db: DbOption = None,
) -> None:
    """The queue: queued and running runs by claim order (priority, then age).

    Example: fino queue list --status failed --status lost
    """
    from sqlalchemy import select

    from fino.store.models import STATUSES, Run

    wanted = status or ["queued", "running"]
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        fail(f"unknown status {bad}; known: {', '.join(STATUSES)}")
    store = open_store(db, create=False)
    with store.read() as session:
        rows = session.execute(select(Run).where(Run.status.in_(wanted))
                               .order_by(Run.priority.desc(), Run.id).limit(limit)).scalars()
        table = Table(title=f"queue ({', '.join(wanted)})")
        for column in ("id", "name", "status", "priority", "attempts", "worker", "tags"):
            table.add_column(column)
        for run in rows:
            worker = f"{run.worker_host}:{run.worker_pid}" if run.worker_host else ""
            table.add_row(str(run.id), plain(run.name), styled_status(run.status),
                          str(run.priority), str(run.attempts), plain(worker, ""),
                          plain(run.tags, ""))
    console.print(table)


@queue_app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="Run id.")], db: DbOption = None) -> None:
    """One run: config, status history, error text.

    Example: fino queue show 12
    """
    from fino.cli.runs import show as runs_show

    runs_show(run_id, db=db)


def _report(outcome: dict[int, str]) -> None:
    for run_id, what in outcome.items():
        console.print(f"run {run_id}: {shown(what)}")
    if any(w.startswith(("unknown", "already", "is ")) for w in outcome.values()):
        raise typer.Exit(1)


@queue_app.command("cancel")
def cancel(ids: Annotated[list[str], typer.Argument(help="Run ids (3, 3-7).")],
           db: DbOption = None) -> None:
    """Cancel runs: queued ones at once, running ones are stopped by their worker within
    seconds (SIGTERM, then SIGKILL); metrics and the last checkpoint stay.

    Example: fino queue cancel 4 7-9
    """
    from fino.store.queue import request_cancel

    _report(request_cancel(open_store(db, create=False), parse_ids(ids)))


@queue_app.command("retry")
def retry(ids: Annotated[list[str], typer.Argument(help="Run ids.")],
          db: DbOption = None) -> None:
    """Requeue failed, lost, cancelled or pruned runs; they resume from their checkpoint.

    Example: fino queue retry 5
    """
    from fino.store.queue import retry as retry_runs

    _report(retry_runs(open_store(db, create=False), parse_ids(ids)))


@queue_app.command("priority")
def priority(
    ids: Annotated[list[str], typer.Argument(help="Run ids (3, 3-7).")],
    to: Annotated[int, typer.Option(help="The new priority (higher runs first; may be "
                                    "negative).")],
    db: DbOption = None,
) -> None:
    """Reorder the queue: set the priority of queued runs (workers claim the highest first,
    then the oldest).

    Example: fino queue priority 14-18 --to 10
    """
    from fino.store.queue import set_priority

    check_priority(to, "--to")
    _report(set_priority(open_store(db, create=False), parse_ids(ids), to))


@queue_app.command("rm")
def rm(ids: Annotated[list[str], typer.Argument(help="Run ids.")],
       db: DbOption = None) -> None:
    """Remove runs with their metrics and events (refused for running runs; folders stay).

    Example: fino queue rm 3-5
    """
    from fino.store.queue import QueueError, remove

    try:
        removed = remove(open_store(db, create=False), parse_ids(ids))
    except QueueError as exc:
        fail(str(exc))
    console.print(f"removed {len(removed)} run(s): {', '.join(map(str, removed))}")


@queue_app.command("reap")
def reap(
    expiry: Annotated[float, typer.Option(help="Seconds without a heartbeat.")] = 60.0,
    requeue: Annotated[bool, typer.Option(
        help="Requeue lost runs that have attempts left.")] = True,
    db: DbOption = None,
) -> None:
    """Mark running runs whose worker stopped heartbeating as lost.

    Example: fino queue reap --expiry 120
    """
    from fino.store.queue import reap as reap_runs

    lost = reap_runs(open_store(db, create=False), expiry_seconds=expiry,
                     requeue=requeue)
    console.print(f"{len(lost)} run(s) lost" + (f": {', '.join(map(str, lost))}" if lost else ""))
