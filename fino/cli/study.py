"""`fino study`: the reproduction study on the queue (run it, then report what seeds show)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from fino.cli.common import fail, open_store
from fino.cli.options import DbOption

if TYPE_CHECKING:
    from fino.config import RunConfig
    from fino.store.db import Store
    from fino.study.plan import Plan

study_app = typer.Typer(help="The reproduction study: queue its runs, report the results.",
                        no_args_is_help=True)
console = Console(stderr=True)
PlanArg = Annotated[Path, typer.Argument(
    help="The study plan: a TOML file, or the name of one that ships with fino (repro).")]
BudgetOption = Annotated[str, typer.Option(help="Budget of the plan: cpu or paper.")]


@study_app.command("run")
def run(
    plan_file: PlanArg,
    budget: BudgetOption = "cpu",
    workers: Annotated[int, typer.Option(
        help="Serve the study's runs with this many local jobs until they are done "
             "(0: only queue them).")] = 2,
    task: Annotated[list[str] | None, typer.Option(
        help="Only this task of the plan (repeatable; default: all).")] = None,
    method: Annotated[list[str] | None, typer.Option(
        help="Only this method of the plan (repeatable; default: all).")] = None,
    dataset_dir: Annotated[str | None, typer.Option(help="OGBench dataset folder.")] = None,
    share_offline: Annotated[bool, typer.Option(
        help="Methods that train the same offline phase (e.g. FINO and its variants without "
             "guidance or with balanced sampling) train it once: the others start their "
             "online phase from the first one's run of the same seed.")] = True,
    db: DbOption = None,
) -> None:
    """Queue the plan's runs not queued yet and serve them.

    Rerunning continues the study; missing datasets are generated first. Methods that share
    an offline phase with an earlier method of the plan are queued once that method's run of
    their seed has finished it (--no-share-offline: all at once, each training its own).

    Example: fino study run repro --budget cpu --workers 2
    Part of it: fino study run repro --task cube-single --method fino
    """
    from fino.cli.demo import ensure_dataset
    from fino.launch.local import LocalExecutor
    from fino.launch.worker import Worker
    from fino.study.plan import PlanError, load_plan, offline_leaders, select_part
    from fino.study.report import study_runs

    try:
        plan = load_plan(plan_file)
        configs = select_part(plan, plan.configs(budget), task or [], method or [])
    except (PlanError, ValueError) as exc:
        fail(str(exc))
    _check_tags(plan, budget, [m for _, m, _ in configs])
    store = open_store(db)
    for task in dict.fromkeys(c.task.name for _, _, c in configs):
        ensure_dataset(task, plan.episodes, dataset_dir)
    leaders = offline_leaders(configs) if share_offline else {}
    queued, waiting = queue_study(store, plan, budget, configs, leaders)
    console.print(f"study {plan.name} ({budget}): {len(configs)} runs selected, "
                  f"{len(configs) - len(queued) - waiting} already in {store}, "
                  f"{len(queued)} queued now" + (f", {waiting} wait for the offline phase they "
                                                 "share" if waiting else ""))
    if not workers:
        if waiting:
            console.print("rerun `fino study run` once the runs they start from have finished "
                          "their offline phase to queue the rest")
        return
    wanted = {(c.task.name, m, c.seed) for _, m, c in configs}
    while True:
        mine = [r.id for k, r in study_runs(store, plan, budget).items() if k in wanted]
        Worker(store, LocalExecutor(), jobs=workers, until_empty=True, only=mine,
               log=console.log).run()
        if not waiting:
            break
        queued, waiting = queue_study(store, plan, budget, configs, leaders)
        if not queued:  # a run they wait for is served elsewhere and not there yet
            console.print(f"{waiting} runs still wait for the offline phase they share (their "
                          "source runs are being served elsewhere); rerun `fino study run` "
                          "later")
            return
        console.print(f"{len(queued)} runs queued from the offline phase they share")
    console.print(f"done; `fino study report {plan_file} --budget {budget}` writes the report")


def queue_study(store: Store, plan: Plan, budget: str, configs: list[tuple[str, str, RunConfig]],
                leaders: dict[tuple[str, str], str]) -> tuple[list[int], int]:
    """Queue the plan's runs not in the store yet: (ids queued, runs waiting). A run whose
    method shares its offline phase with a leader method (`leaders`) starts from the leader's
    run of its seed once that run has its end-of-offline checkpoint; it waits while that run
    has yet to get there, and trains its own offline phase when the leader's run ended without
    one (or is not part of this study)."""
    from dataclasses import replace

    from fino.store.models import FINISHED
    from fino.store.queue import add_runs, run_name
    from fino.study.report import study_runs, study_tags
    from fino.train.offline_start import OFFLINE_NAME

    existing = study_runs(store, plan, budget)
    selected = {(t, m) for t, m, _ in configs}
    ids: list[int] = []
    waiting = 0
    for task, method, config in configs:
        if (task, method, config.seed) in existing:
            continue
        leader = leaders.get((task, method))
        source = existing.get((task, leader, config.seed)) if leader else None
        if leader and source is None and (task, leader) in selected:
            waiting += 1  # its leader's run is queued in this same call
            continue
        if source is not None:
            path = Path(source.run_dir or "") / OFFLINE_NAME
            if source.run_dir and path.exists():
                config = replace(config, from_offline=str(path))
            elif source.status not in FINISHED:
                waiting += 1
                continue
        ids += add_runs(store, [config], tags=study_tags(plan, budget, method),
                        names=[run_name(config, method)])
    return ids, waiting


def _check_tags(plan: Plan, budget: str, methods: list[str]) -> None:
    """The study's runs are tagged study:NAME, budget:BUDGET and method:METHOD: each must be a
    valid tag."""
    from fino.store.text import TagError, check_tags
    from fino.study.report import study_tags

    try:
        for method in dict.fromkeys(methods):
            check_tags(study_tags(plan, budget, method))
    except TagError as exc:
        fail(f"{plan.path}: {exc} (the study's runs are tagged with its name, budget and "
             "method)")


@study_app.command("report")
def report(
    plan_file: PlanArg,
    budget: BudgetOption = "cpu",
    out: Annotated[Path | None, typer.Option(
        help="Folder for report.md and the PNGs (default benchmarks/results/NAME-BUDGET).")
    ] = None,
    dataset_dir: Annotated[str | None, typer.Option(help="OGBench dataset folder.")] = None,
    db: DbOption = None,
) -> None:
    """Write the markdown report (table, claims, learning curves) from the runs in the store.

    Example: fino study report repro --budget cpu
    """
    from fino.study.plan import PlanError, load_plan
    from fino.study.report import study_runs, write_report

    try:
        plan = load_plan(plan_file)
    except PlanError as exc:
        fail(str(exc))
    store = open_store(db, create=False)
    if not study_runs(store, plan, budget):
        fail(f"no runs of study {plan.name} (budget {budget}) in {store}; run "
             f"`fino study run {plan_file} --budget {budget}` first")
    path = write_report(store, plan, budget,
                        out or Path("benchmarks/results") / f"{plan.name}-{budget}", dataset_dir)
    typer.echo(str(path))


@study_app.command("export")
def export(
    plan_file: PlanArg,
    budget: BudgetOption = "cpu",
    out: Annotated[Path | None, typer.Option(
        help="File to write (.jsonl or .jsonl.gz; default "
             "benchmarks/results/NAME-BUDGET/runs.jsonl.gz).")] = None,
    db: DbOption = None,
) -> None:
    """Write the study's done runs to one file, to merge with other machines' results.

    The file holds each run's config, tags, timing and evaluation series; `fino study import`
    reads it.

    Example: fino study export repro --budget cpu
    """
    from fino.study.archive import export_study
    from fino.study.plan import PlanError, load_plan

    try:
        plan = load_plan(plan_file)
    except PlanError as exc:
        fail(str(exc))
    path = out or Path("benchmarks/results") / f"{plan.name}-{budget}" / "runs.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    count = export_study(open_store(db, create=False), plan, budget, path)
    console.print(f"{count} done runs of study {plan.name} ({budget}) written to {path}")


@study_app.command("import")
def import_(
    archive: Annotated[Path, typer.Argument(help="A file written by `fino study export`.")],
    db: DbOption = None,
) -> None:
    """Add the runs of a study archive to the store, skipping those it holds.

    Then `fino study report` covers them, and `fino study run` does not run them again.

    Example: fino study import benchmarks/results/repro-cpu/runs.jsonl.gz
    """
    from fino.study.archive import ArchiveError, import_study

    store = open_store(db)
    try:
        added, skipped = import_study(store, archive)
    except ArchiveError as exc:
        fail(str(exc))
    console.print(f"{added} runs added to {store}, {skipped} already there")
