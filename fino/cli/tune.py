"""`fino tune`: Optuna studies over the injected noise, the candidate count and more."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from fino.cli.common import fail, open_store, plain, shown
from fino.cli.options import DbOption
from fino.cli.queue import parse_seeds
from fino.tune import DEFAULT_STORAGE

tune_app = typer.Typer(help="Optuna studies: run one, show it, export its best as a preset.",
                       invoke_without_command=True, no_args_is_help=False)
console = Console(stderr=True)
OptunaStorageOption = Annotated[str, typer.Option(
    "--optuna-storage", envvar="FINO_OPTUNA_STORAGE",
    help="Optuna's storage, apart from the experiments database: a journal file (default) or "
         "an RDB URL.")]


def _progress_table(study: str, trials: int, progress) -> Table:
    from fino.tune.summary import format_value

    table = Table(title=f"study {shown(study)}", show_header=False)
    table.add_row("trials", f"{progress.complete} complete, {progress.pruned} pruned, "
                  f"{progress.running} running, {progress.failed} failed (of {trials})")
    best = "-" if progress.best_value is None else (
        f"{progress.best_value:.2f} (trial {progress.best_trial}: "
        + ", ".join(f"{k}={format_value(v)}" for k, v in progress.best_params.items()) + ")")
    table.add_row("best so far", plain(best))
    return table


def storage_label(storage: str) -> str:
    """Optuna's storage for messages: an RDB URL with its password hidden, or the file path."""
    from fino.store.db import masked

    return masked(storage) if "://" in storage else storage


def _check_study_name(name: str) -> None:
    """The study's runs are tagged study:NAME: the name must make a valid tag."""
    from fino.store.text import TAG_CHARS, TagError, check_tag

    try:
        check_tag(f"study:{name}")
    except TagError:
        fail(f"study name {name!r}: use {TAG_CHARS} (its runs are tagged study:NAME); "
             "pass --study NAME")


@tune_app.callback()
def tune(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Task name or alias.")] = None,
    trials: Annotated[int, typer.Option(help="Trials to complete (pruned ones count).")] = 20,
    backend: Annotated[str, typer.Option(help="Task backend or auto.")] = "auto",
    task_id: Annotated[int | None, typer.Option(help="OGBench singletask id 1..5.")] = None,
    dataset_dir: Annotated[str | None, typer.Option(help="OGBench dataset folder.")] = None,
    dataset: Annotated[str | None, typer.Option(help="gymnasium backend dataset.")] = None,
    preset: Annotated[str | None, typer.Option(help="Preset profile or file.")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds per trial: 0-2, 0,1 or 0.")] = "0",
    parallel: Annotated[int, typer.Option(help="Trials in flight at once.")] = 1,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid.")] = "tpe",
    pruner: Annotated[str, typer.Option(
        help="median (on online evaluations) or none.")] = "median",
    study: Annotated[str | None, typer.Option(
        help="Study name (default TASK-PRESET); the same name continues it.")] = None,
    space: Annotated[Path | None, typer.Option(
        help="TOML search space ([params.NAME] type/low/high/log/choices).")] = None,
    tune_alpha: Annotated[bool, typer.Option(
        help="Also tune alpha (log-uniform, [α/3, 3α] around the preset's).")] = False,
    tune_schedule: Annotated[bool, typer.Option(
        help="Also tune the noise schedule (exp or paper).")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Fixed overrides for every run: SECTION.KEY=VALUE.")] = None,
    workers: Annotated[int, typer.Option(
        help="Local `fino worker` processes to start for the study (0: use running ones).")
    ] = 0,
    sampler_seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    poll: Annotated[float, typer.Option(help="Seconds between checks.")] = 2.0,
    runs_dir: Annotated[Path, typer.Option(
        help="Where the trials' run folders go (shared by all nodes on a cluster).")
    ] = Path("runs"),
    optuna_storage: OptunaStorageOption = DEFAULT_STORAGE,
    db: DbOption = None,
) -> None:
    """Tune on the queue: each trial is one run per seed; workers run them; the final score
    averaged over seeds is the objective. Ctrl-C and the same command again continue.

    Example: fino tune --task cube-double --preset quick --trials 50 --seeds 0-2 --parallel 4
    """
    if ctx.invoked_subcommand is not None:
        return
    if task is None:
        fail("--task is required (or use `fino tune show` / `fino tune export`)")
    from fino.backends.base import TaskConfig, TaskError
    from fino.train.presets import build_run_config
    from fino.tune.space import SpaceError, default_space, load_space
    from fino.tune.study import (
        Orchestrator,
        StudySpec,
        TuneError,
        make_pruner,
        make_sampler,
        open_storage,
    )

    try:
        task_config = TaskConfig(name=task, backend=backend, task_id=task_id,
                                 dataset_dir=dataset_dir, dataset=dataset)
        base = build_run_config(task_config, preset=preset, overrides=set_ or [])
        params = load_space(space) if space else default_space(
            base.agent.alpha if tune_alpha else None, tune_schedule)
        name = study or f"{base.task.name.replace('/', '_')}-{preset or 'paper'}"
        _check_study_name(name)
        spec = StudySpec(name=name, task=task_config, space=params, trials=trials,
                         seeds=parse_seeds(seeds), preset=preset, parallel=parallel,
                         overrides=set_ or [], runs_dir=runs_dir)
        store = open_store(db)
        orchestrator = Orchestrator(
            store, spec, open_storage(optuna_storage),
            sampler=make_sampler(sampler, params, sampler_seed),
            pruner=make_pruner(pruner, base.train.offline_steps), poll_interval=poll)
    except (TaskError, SpaceError, TuneError, ValueError) as exc:
        fail(str(exc))
    console.print(f"study [bold]{shown(name)}[/]: {trials} trials x {len(spec.seeds)} seed(s) "
                  f"on {shown(base.task.name)}, tuning "
                  f"{shown(', '.join(p.name for p in params))}; Optuna storage "
                  f"{shown(storage_label(optuna_storage))}, runs in {shown(store)}")
    children = [subprocess.Popen([sys.executable, "-m", "fino.cli.main", "worker",
                                  "--jobs", "1"], env={**os.environ, "FINO_DB_URL": store.url},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(workers)]
    previous = signal.signal(signal.SIGINT, lambda *_: orchestrator.request_stop())
    try:
        with Live(console=console, refresh_per_second=2) as live:
            orchestrator.on_update = lambda p: live.update(_progress_table(name, trials, p))
            progress = orchestrator.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        for child in children:
            child.send_signal(signal.SIGINT)  # they requeue unfinished runs
        for child in children:
            child.wait()
    console.print(_progress_table(name, trials, progress))
    if progress.complete + progress.pruned < trials:
        console.print(f"[yellow]stopped early; run the same command to continue {name}")
        raise typer.Exit(130)


@tune_app.command("show")
def show(
    study: Annotated[str | None, typer.Option(help="Study name (default: the only one).")
                     ] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write the optimisation history as a PNG here.")] = None,
    optuna_storage: OptunaStorageOption = DEFAULT_STORAGE,
) -> None:
    """Trials, the best parameters, parameter importances and (with --out) a history PNG.

    Example: fino tune show --study cube-double-quick --out history.png
    """
    import optuna

    from fino.tune.summary import format_value, open_readonly, study_names, summarise

    try:
        storage = open_readonly(optuna_storage)
    except FileNotFoundError as exc:
        fail(str(exc))
    names = study_names(storage)
    if study is None:
        if len(names) != 1:
            fail(f"name a study with --study; in {storage_label(optuna_storage)}: "
             f"{', '.join(names) or 'none'}")
        study = names[0]
    if study not in names:
        fail(f"no study {study!r} in {storage_label(optuna_storage)}; there are: "
             f"{', '.join(names) or 'none'}")
    loaded = optuna.load_study(study_name=study, storage=storage)
    shot = summarise(loaded)
    table = Table(title=f"study {shown(study)}: {len(shot.trials)} trials")
    for column in ("trial", "state", "value", "params", "runs"):
        table.add_column(column)
    for t in shot.trials:
        table.add_row(str(t.number), plain(t.state), "-" if t.value is None else f"{t.value:.2f}",
                      plain(", ".join(f"{k}={format_value(v)}" for k, v in t.params.items())),
                      ",".join(map(str, t.run_ids)))
    Console().print(table)
    best = shot.best
    if best is None:
        console.print("no complete trial yet")
        return
    Console().print(plain(f"best: trial {best.number}, value {best.value:.2f}, " + ", ".join(
        f"{k}={format_value(v)}" for k, v in best.params.items())))
    complete = [t for t in shot.trials if t.state == "complete"]
    if len(complete) >= 2:
        try:
            importances = optuna.importance.get_param_importances(loaded)
            Console().print(plain("importances: " + ", ".join(
                f"{k} {v:.2f}" for k, v in importances.items())))
        except (RuntimeError, ValueError) as exc:
            console.print(f"importances unavailable: {exc}")
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization.matplotlib import plot_optimization_history

        ax = plot_optimization_history(loaded)
        ax.figure.tight_layout()
        ax.figure.savefig(out, dpi=110)
        plt.close(ax.figure)
        Console().print(str(out))


@tune_app.command("export")
def export(
    study: Annotated[str, typer.Option(help="Study name.")],
    preset_out: Annotated[Path, typer.Option(help="The preset TOML to write.")],
    optuna_storage: OptunaStorageOption = DEFAULT_STORAGE,
    db: DbOption = None,
) -> None:
    """Write the best trial's settings as a preset that states its source.

    Example: fino tune export --study cube-double-quick --preset-out presets/cube-double-tuned.toml
    """
    import optuna

    from fino.tune.export import write_preset
    from fino.tune.study import open_storage

    try:
        loaded = optuna.load_study(study_name=study, storage=open_storage(optuna_storage))
        best = loaded.best_trial
    except (KeyError, ValueError) as exc:
        fail(f"study {study!r}: {exc}")
    store = open_store(db, create=False)
    path = write_preset(store, loaded, best, preset_out)
    Console().print(f"wrote {path} (trial {best.number}, value {best.value:.2f})")
