"""`fino queue`: add runs, list, show, cancel, retry, priority, remove, reap."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fino.algo.config import MAX_INT
from fino.cli.common import (
    err_console,
    fail,
    open_store,
    parse_ids,
    parse_tags,
    plain,
    say_task_resolution,
    shown,
    styled_status,
)
from fino.cli.complete import complete_preset, complete_task
from fino.cli.options import DbOption, RunIdArg, RunIdsArg

if TYPE_CHECKING:
    from fino.config import RunConfig
    from fino.store.db import Store
    from fino.store.queue import Change

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


def run_names(name: str | None, configs: list) -> list[str] | None:
    """`--name` for one run, NAME-sSEED for several; None: the default names."""
    from fino.store.queue import given_names
    from fino.store.text import RunNameError

    if name is None:
        return None
    try:
        return given_names(name, configs)
    except RunNameError as exc:
        fail(str(exc))


@queue_app.command("add")
def add(
    task: Annotated[str, typer.Option(help="Task name or alias (as for `fino run`).",
                                      autocompletion=complete_task)],
    preset: Annotated[str | None, typer.Option(help="Preset profile or file.",
                                               autocompletion=complete_preset)] = None,
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
    name: Annotated[str | None, typer.Option(
        help="Run name (several seeds: NAME-sSEED). Default: task[-profile]-algo-sSEED.",
        show_default=False)] = None,
    max_attempts: Annotated[int, typer.Option(
        help="Attempts before a failing or lost run stays failed.")] = 1,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    allow_missing_data: Annotated[bool, typer.Option(
        help="Queue even though the task's dataset is not on this machine (for workers "
             "elsewhere).")] = False,
    from_offline: Annotated[list[str] | None, typer.Option(
        "--from-offline", metavar="ID",
        help="Start the online phase from these runs' end-of-offline checkpoints (the run of "
             "the same seed), instead of training the same offline phase again: the new runs "
             "may differ from them only in online settings (candidate count, β, exploration, "
             "balanced sampling, evaluation).", show_default=False)] = None,
    sink: Annotated[list[str] | None, typer.Option(
        "--sink", metavar="NAME",
        help="Also log the runs to this logger (repeatable; saved as train.sinks): "
             "tensorboard, wandb, mlflow or an installed plugin.", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Queue one run per seed, validated before anything is written.

    The dataset must be on this machine, and the profile's budget is printed with its time
    here.

    Example: fino queue add --task cube-double --preset quick --algo fql --seeds 0-4 --tag sweep
    """
    from fino.config import TaskConfig, TaskError
    from fino.sinks import check_sinks
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
            preset=preset, algo=algo, seed=seed, overrides=set_ or [],
            train_overrides={"sinks": tuple(sink) if sink else None})
            for seed in parse_seeds(seeds)]
        check_sinks(configs[0].train.sinks)
    except (TaskError, ValueError) as exc:
        fail(str(exc))
    say_task_resolution(task)
    missing = check_dataset(configs[0], allow_missing_data)
    store = open_store(db)
    if from_offline:
        configs = after_offline(store, configs, parse_ids(from_offline))
    ids = add_runs(store, configs, runs_dir=runs_dir, priority=priority, tags=tags,
                   max_attempts=max_attempts, names=run_names(name, configs))
    console.print(f"queued {len(ids)} run(s): {', '.join(map(str, ids))} "
                  f"({configs[0].algo} on {shown(configs[0].task.name)}, preset "
                  f"{shown(configs[0].preset)})")
    console.print(budget_text(configs[0], len(ids)), highlight=False)
    if missing:
        err_console.print(f"[yellow]warning:[/] {shown(missing)}; queued anyway "
                          "(--allow-missing-data)", highlight=False, soft_wrap=True)
    typer.echo(" ".join(map(str, ids)))


def after_offline(store: Store, configs: list[RunConfig], sources: list[int]
                  ) -> list[RunConfig]:
    """Each config started from the end-of-offline checkpoint of the source run of its seed;
    a clear error (nothing queued) for a missing run or checkpoint or another offline phase."""
    from dataclasses import replace

    from fino.algo.config import ConfigError
    from fino.store.queue import QueueError, get_run
    from fino.train.offline_start import OFFLINE_NAME, check_offline_match

    by_seed = {}
    for run_id in sources:
        try:
            run = get_run(store, run_id)
        except QueueError as exc:
            fail(str(exc))
        by_seed.setdefault(run.seed, run)
    started = []
    for config in configs:
        source = by_seed.get(config.seed)
        if source is None:
            fail(f"--from-offline: no run of seed {config.seed} among {sources}")
        path = Path(source.run_dir or "") / OFFLINE_NAME
        if not source.run_dir or not path.exists():
            fail(f"--from-offline: run {source.id} has no end-of-offline checkpoint ({path}): "
                 "it has not finished its offline phase yet")
        try:
            check_offline_match(source.config, config.to_dict(), f"run {source.id}")
        except ConfigError as exc:
            fail(f"--from-offline: {exc}")
        started.append(replace(config, from_offline=str(path)))
    return started


def check_dataset(config: RunConfig, allow_missing: bool) -> str | None:
    """Why the task's dataset is not on this machine (None: it is); refused in one line
    saying how to get it, unless the queue is served elsewhere (--allow-missing-data)."""
    from fino.backends.registry import missing_dataset
    from fino.config import TaskError

    try:
        missing = missing_dataset(config.task)
    except TaskError as exc:
        fail(str(exc))
    if missing and not allow_missing:
        fail(f"{missing}. Queueing for workers on another machine: add --allow-missing-data")
    return missing


def budget_text(config: RunConfig, runs: int) -> str:
    """Two lines: the resolved profile's budget per run, and its time on this machine by
    `fino bench`'s figures (or how to get one)."""
    from fino.bench_estimate import RESULTS_DIR, update_rate
    from fino.cli.readout import fmt_duration
    from fino.tune.budget import networks

    train = config.train
    budget = (f"each run: profile {shown(config.preset)}, {train.offline_steps:,} offline + "
              f"{train.online_steps:,} online steps, {networks(config)} networks, evaluation "
              f"every {train.eval_interval:,} steps over {train.eval_episodes} episodes")
    rate = update_rate(config)
    if rate is None:
        return (f"{budget}\ntime here: unknown, no `fino bench` figure for these networks on "
                f"{shown(train.device)}: run `fino bench` for an estimate")
    seconds = train.total_steps / rate.updates_per_second
    total = f"; {runs} runs one at a time: {fmt_duration(runs * seconds)}" if runs > 1 else ""
    source = (f"the repository's `fino bench` figures ({shown(rate.source.name)}, measured on "
              "a 2-vCPU development machine; `fino bench` measures this one)"
              if rate.source.parent == RESULTS_DIR
              else f"`fino bench` figures in {shown(rate.source)}")
    return (f"{budget}\ntime here: about {fmt_duration(seconds)} of updates per run at "
            f"{rate.updates_per_second:.3g} updates/s on this {rate.device}{total} (evaluation "
            f"not counted), by {source}")


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
    from fino.store.models import ACTIVE, STATUSES
    from fino.store.queries import claim_order

    wanted = status or list(ACTIVE)
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        fail(f"unknown status {bad}; known: {', '.join(STATUSES)}")
    store = open_store(db, create=False)
    with store.read() as session:
        rows = claim_order(session, wanted, limit)
        packed = any(run.pack_id for run in rows)  # a pack column only where runs share packs
        table = Table(title=f"queue ({', '.join(wanted)})")
        for column in ("id", "name", "status", "priority", "attempts", "worker",
                       *(["pack"] if packed else []), "tags"):
            table.add_column(column)
        for run in rows:
            worker = f"{run.worker_host}:{run.worker_pid}" if run.worker_host else ""
            pack = [plain(run.pack_id, "")] if packed else []
            table.add_row(str(run.id), plain(run.name), styled_status(run.status),
                          str(run.priority), str(run.attempts), plain(worker, ""), *pack,
                          plain(run.tags, ""))
    console.print(table)


@queue_app.command("show")
def show(run_id: RunIdArg, db: DbOption = None) -> None:
    """One run: config, status history, error text.

    Example: fino queue show 12
    """
    from fino.cli.runs import show as runs_show

    runs_show(run_id, db=db)


# How each command says that a run's status does not allow it.
CANCEL_REFUSED = "already {}"
RETRY_REFUSED = "is {}: not retried"
PRIORITY_REFUSED = "is {}: only queued runs have a priority to change"


def sentence(change: Change, refused: str = "is {}") -> str:
    """What a queue operation did to one run, in words ('priority 3', 'is done: not retried');
    `refused` holds the place of the status of a run the operation does not apply to."""
    from fino.store.queue import Outcome

    tags = ",".join(change.tags) or "none"
    match change.outcome:
        case Outcome.REFUSED:
            return refused.format(change.status)
        case Outcome.REPRIORITISED:
            return f"priority {change.priority}"
        case Outcome.RETAGGED:
            return f"tags {tags}"
        case Outcome.UNCHANGED:
            return f"tags unchanged ({tags})"
    return change.outcome.value


def sentences(outcome: dict[int, Change], refused: str = "is {}") -> dict[int, str]:
    return {run_id: sentence(change, refused) for run_id, change in outcome.items()}


def _report(outcome: dict[int, Change], refused: str) -> None:
    for run_id, what in sentences(outcome, refused).items():
        console.print(f"run {run_id}: {shown(what)}")
    if any(change.failed for change in outcome.values()):
        raise typer.Exit(1)


@queue_app.command("cancel")
def cancel(ids: RunIdsArg,
           db: DbOption = None) -> None:
    """Cancel runs; their metrics and last checkpoint stay.

    Queued runs are cancelled at once; running ones are stopped by their worker within
    seconds (SIGTERM, then SIGKILL).

    Example: fino queue cancel 4 7-9
    """
    from fino.store.queue import request_cancel

    _report(request_cancel(open_store(db, create=False), parse_ids(ids)), CANCEL_REFUSED)


@queue_app.command("retry")
def retry(ids: RunIdsArg,
          db: DbOption = None) -> None:
    """Requeue failed, lost, cancelled or pruned runs; they resume from their checkpoint.

    Example: fino queue retry 5
    """
    from fino.store.queue import retry as retry_runs

    _report(retry_runs(open_store(db, create=False), parse_ids(ids)), RETRY_REFUSED)


@queue_app.command("priority")
def priority(
    ids: RunIdsArg,
    to: Annotated[int, typer.Option(help="The new priority (higher runs first; may be "
                                    "negative).")],
    db: DbOption = None,
) -> None:
    """Reorder the queue: set the priority of queued runs.

    Workers claim the highest priority first, then the oldest run.

    Example: fino queue priority 14-18 --to 10
    """
    from fino.store.queue import set_priority

    check_priority(to, "--to")
    _report(set_priority(open_store(db, create=False), parse_ids(ids), to), PRIORITY_REFUSED)


@queue_app.command("rm")
def rm(ids: RunIdsArg,
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
