"""`fino tune`: Optuna studies over the injected noise, the candidate count and more."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from fino.cli.common import fail, open_store, plain, say_task_resolution, shown
from fino.cli.complete import complete_preset, complete_task
from fino.cli.options import DbOption
from fino.cli.queue import parse_seeds
from fino.exit_codes import ExitCode
from fino.tune import DEFAULT_STORAGE

if TYPE_CHECKING:
    from fino.tune.budget import Budget
    from fino.tune.study import Orchestrator, Parked, Progress

EXAMPLE = "fino tune --task cube-single --preset quick --trials 50"
tune_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
console = Console(stderr=True)
OptunaStorageOption = Annotated[str, typer.Option(
    "--optuna-storage", envvar="FINO_OPTUNA_STORAGE",
    help="Optuna's storage, apart from the experiments database: a journal file (default) or "
         "an RDB URL.")]


def _progress_table(study: str, trials: int, progress) -> Table:
    from fino.tune.summary import format_value

    table = Table(title=f"study {shown(study)}", show_header=False)
    parked = f", {progress.parked} parked" if progress.parked else ""
    table.add_row("trials", f"{progress.complete} complete, {progress.pruned} pruned, "
                  f"{progress.running} running, {progress.queued} queued{parked}, "
                  f"{progress.failed} failed (of {trials})")
    best = "-" if progress.best_value is None else (
        f"{progress.best_value:.2f} (trial {progress.best_trial}: "
        + ", ".join(f"{k}={format_value(v)}" for k, v in progress.best_params.items()) + ")")
    table.add_row("best so far", plain(best))
    return table


def storage_label(storage: str) -> str:
    """Optuna's storage for messages: an RDB URL with its password hidden, or the file path."""
    from fino.store.db import masked

    return masked(storage) if "://" in storage else storage


def dashboard_hint(storage: str) -> str:
    """Where to see a study's parallel coordinates and parameter importances: optuna-dashboard,
    a separate install (not a dependency), reads the same storage."""
    return (f"parallel coordinates and parameter importances: optuna-dashboard "
            f"{escape(shlex.quote(storage_label(storage)))} (pip install optuna-dashboard)")


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
    task: Annotated[str | None, typer.Option(
        help="Task name or alias, e.g. cube-single. [dim red]\\[required][/]",
        show_default=False, autocompletion=complete_task)] = None,
    trials: Annotated[int, typer.Option(help="Trials to complete (pruned ones count).")] = 20,
    backend: Annotated[str, typer.Option(help="Task backend or auto.")] = "auto",
    task_id: Annotated[int | None, typer.Option(help="OGBench singletask id 1..5.")] = None,
    dataset_dir: Annotated[str | None, typer.Option(help="OGBench dataset folder.")] = None,
    dataset: Annotated[str | None, typer.Option(help="gymnasium backend dataset.")] = None,
    preset: Annotated[str | None, typer.Option(help="Preset profile or file.",
                                               autocompletion=complete_preset)] = None,
    seeds: Annotated[str, typer.Option(help="Seeds per trial: 0-2, 0,1 or 0.")] = "0",
    parallel: Annotated[int, typer.Option(help="Trials in flight at once.")] = 1,
    pack: Annotated[int, typer.Option(
        help="Runs per pack: trials are asked in batches of PACK/seeds (at most --parallel) "
             "that share the candidate count and every other setting a pack cannot vary, so "
             "that a `fino worker --pack N` (or --workers here) trains a batch as one pack."
    )] = 1,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid.")] = "tpe",
    pruner: Annotated[str, typer.Option(
        help="median (on online evaluations) or none.")] = "median",
    study: Annotated[str | None, typer.Option(
        help="Study name (default TASK-PRESET); the same name continues it.")] = None,
    space: Annotated[Path | None, typer.Option(
        help="TOML search space (\\[params.NAME] tables of type/low/high/log/choices).")
    ] = None,
    tune_alpha: Annotated[bool, typer.Option(
        help="Also tune alpha (log-uniform, [α/3, 3α] around the preset's).")] = False,
    tune_schedule: Annotated[bool, typer.Option(
        help="Also tune the noise schedule (exp or paper).")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Fixed overrides for every run: SECTION.KEY=VALUE.")] = None,
    workers: Annotated[int, typer.Option(
        help="Run the study's trials here, this many runs at a time (its runs only); 0: "
             "leave them to `fino worker` processes.")] = 0,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Start without asking when the budget is over an hour here.")
    ] = False,
    sampler_seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    poll: Annotated[float, typer.Option(help="Seconds between checks.")] = 2.0,
    runs_dir: Annotated[Path, typer.Option(
        help="Where the trials' run folders go (shared by all nodes on a cluster).")
    ] = Path("runs"),
    optuna_storage: OptunaStorageOption = DEFAULT_STORAGE,
    db: DbOption = None,
) -> None:
    """Run an Optuna study on the queue (--task is required), or show or export one.

    Each trial is one run per seed, run by `fino worker` processes (or here, with --workers N);
    the final score averaged over seeds is the objective. The budget is stated first and asked
    for when it is over an hour on this machine (--yes: no question). Ctrl-C cancels the
    queued runs of the trials in flight; the same command again requeues them and continues.
    Parallel coordinates and parameter importances, in a browser (a separate install, pip
    install optuna-dashboard): `optuna-dashboard optuna.journal` (or the --optuna-storage).

    Example: fino tune --task cube-single --preset quick --trials 50
    """
    if ctx.invoked_subcommand is not None:
        return
    if task is None:
        fail(f"--task is required, e.g. `{EXAMPLE}` (or `fino tune show` / `fino tune export`)")
    from fino.config import TaskConfig, TaskError
    from fino.train.presets import build_run_config
    from fino.tune.budget import study_budget
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
                         overrides=set_ or [], runs_dir=runs_dir, pack=pack)
        _agree_to(study_budget(base, trials, _trials_done(optuna_storage, name),
                               len(spec.seeds)), yes)
        store = open_store(db)
        orchestrator = Orchestrator(
            store, spec, open_storage(optuna_storage),
            sampler=make_sampler(sampler, params, sampler_seed, batch=parallel > 1),
            pruner=make_pruner(pruner, base.train.offline_steps), poll_interval=poll)
    except (TaskError, SpaceError, TuneError, ValueError) as exc:
        fail(str(exc))
    say_task_resolution(task)
    console.print(f"study [bold]{shown(name)}[/]: {trials} trials x {len(spec.seeds)} seed(s) "
                  f"on {shown(base.task.name)}, tuning "
                  f"{shown(', '.join(p.name for p in params))}; Optuna storage "
                  f"{shown(storage_label(optuna_storage))}, runs in {shown(store)}")
    progress = _run(orchestrator, name, trials, workers, pack)
    console.print(_progress_table(name, trials, progress))
    if orchestrator.gave_up:
        orchestrator.park()
        fail(orchestrator.gave_up)
    console.print(dashboard_hint(optuna_storage), highlight=False, soft_wrap=True)
    if not orchestrator.done(progress):
        _say_parked(orchestrator.park(), name)
        raise typer.Exit(ExitCode.INTERRUPTED)


def _run(orchestrator: Orchestrator, name: str, trials: int, workers: int,
         pack: int = 1) -> Progress:
    """Follow the study with a live table (and, with `workers`, run its trials here) until
    it is done or Ctrl-C; why trials wait is printed once it is known."""
    said: list[str | None] = [None]
    with Live(console=console, refresh_per_second=2, transient=True) as live:
        def update(progress: Progress) -> None:
            live.update(_progress_table(name, trials, progress))
            if progress.hint and progress.hint != said[0]:
                live.console.print(f"[yellow]{escape(progress.hint)}")
            said[0] = progress.hint

        orchestrator.on_update = update
        if workers:
            from fino.tune.local import serve

            return serve(orchestrator, workers, live.console.log, pack=pack)
        previous = signal.signal(signal.SIGINT, lambda *_: orchestrator.request_stop())
        try:
            return orchestrator.run()
        finally:
            signal.signal(signal.SIGINT, previous)


def _say_parked(parked: Parked, name: str) -> None:
    """What Ctrl-C left behind, and how to continue."""
    if parked.cancelled:
        console.print(f"[yellow]stopped: cancelled the queued run(s) "
                      f"{' '.join(map(str, parked.cancelled))} so that no worker starts them; "
                      f"the same command requeues them and continues study {shown(name)}")
    else:
        console.print(f"[yellow]stopped; the same command continues study {shown(name)}")
    if parked.running:
        ids = " ".join(map(str, parked.running))
        console.print(f"run(s) {ids} keep running on their worker(s): the same command "
                      f"follows them; `fino queue cancel {ids}` stops them")


def _trials_done(storage: str, name: str) -> int:
    """Complete or pruned trials of the study (0 when there is no study yet); reads only."""
    from sqlalchemy.exc import SQLAlchemyError

    from fino.tune.summary import open_readonly, snapshot

    try:
        counts = snapshot(open_readonly(storage), name).counts
    except (FileNotFoundError, KeyError, SQLAlchemyError):
        return 0
    from fino.tune.summary import TrialView

    return counts.get(TrialView.COMPLETE, 0) + counts.get(TrialView.PRUNED, 0)


def _agree_to(budget: Budget, yes: bool) -> None:
    """State the budget; one over an hour here (or of unknown length at the paper's steps)
    starts only with --yes or the user's yes."""
    from fino.cli.readout import fmt_duration

    console.print(_budget_text(budget))
    if not budget.needs_confirmation or yes:
        return
    size = (f"about {fmt_duration(budget.seconds)} of training on this "
            f"{budget.rate.device}" if budget.rate and budget.seconds is not None
            else f"{budget.updates:,} updates at the paper's budget, of unknown length here")
    quick = (budget.config.preset or "").endswith(":quick")
    instead = "ask for fewer --trials" if quick else "use --preset quick"
    if not sys.stdin.isatty():
        fail(f"this study is {size}: pass --yes to start it anyway, or {instead}")
    typer.confirm(f"This study is {size}. Start it?", abort=True, err=True)


def _budget_text(budget: Budget) -> str:
    from fino.bench_estimate import RESULTS_DIR, size_of
    from fino.cli.readout import fmt_duration
    from fino.tune.budget import networks

    train, rate = budget.config.train, budget.rate
    trials = (f"{budget.trials} trials" if budget.done == 0 else
              f"{budget.trials_left} of {budget.trials} trials left")
    seeds = f"{budget.seeds} seed{'s' * (budget.seeds > 1)}"
    text = (f"budget: {trials} x {seeds} x ({train.offline_steps:,} offline + "
            f"{train.online_steps:,} online steps) = {budget.updates:,} updates, profile "
            f"{shown(budget.config.preset)}, {networks(budget.config)} networks; ")
    if rate is None or budget.seconds is None:
        if size_of(budget.config) is None:
            return text + "no time estimate (`fino bench` measures 4x512 and 2x256 networks)"
        return text + (f"no `fino bench` figure for these networks on {shown(train.device)}: "
                       "run `fino bench` for an estimate of the time here")
    where = (f"the repository's figures ({shown(rate.source.name)}, a 2-vCPU development "
             "machine; `fino bench` measures this one)" if rate.source.parent == RESULTS_DIR
             else f"`fino bench` figures in {shown(rate.source)}")
    return text + (f"about {fmt_duration(budget.seconds)} on this {rate.device} at "
                   f"{rate.updates_per_second:.3g} updates/s, one run at a time (evaluation "
                   f"not counted; {where})")


@tune_app.command("show")
def show(
    study: Annotated[str | None, typer.Option(help="Study name (default: the only one).")
                     ] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write the optimisation history as a PNG here.")] = None,
    optuna_storage: OptunaStorageOption = DEFAULT_STORAGE,
    db: DbOption = None,
) -> None:
    """Show a study: its trials, the best parameters and their importances.

    Trials in flight show where their runs stand (queued, running, parked); --out writes a
    history PNG.

    Example: fino tune show --study cube-double-quick --out history.png
    """
    import optuna

    from fino.tune.summary import (
        TrialView,
        format_value,
        open_readonly,
        study_names,
        summarise,
    )

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
    shot = summarise(loaded, _run_status(db, study))
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
    complete = [t for t in shot.trials if t.state == TrialView.COMPLETE]
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


def _run_status(db: str | None, study: str) -> dict[int, str] | None:
    """The study's runs' statuses, or None without an experiments database (Optuna's states
    are shown then)."""
    from fino.store.db import Store, StoreError
    from fino.tune.summary import study_run_status

    try:
        return study_run_status(Store(db, create=False), study)
    except StoreError:
        return None


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
