"""`fino run`: train FINO (or FQL) offline-to-online on one task, with a live progress bar."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fino.algo.config import ConfigError
from fino.cli.common import fail, say_task_resolution
from fino.cli.complete import complete_preset, complete_task
from fino.config import CONFIG_NAME, RunConfig, TaskConfig, TaskError
from fino.exit_codes import ExitCode
from fino.metric_keys import (
    EVAL_LENGTH,
    EVAL_RETURN,
    EVAL_SCORE,
    POLICY_BETA,
    POLICY_ENTROPY,
    PROGRESS_ONLINE,
)
from fino.sinks import LoggerGroup, check_sinks, make_sinks
from fino.store.db import StoreError
from fino.train.checkpoint import CHECKPOINT_NAME, CheckpointError
from fino.train.errors import RunDisowned, TrainingDiverged
from fino.train.presets import build_run_config

if TYPE_CHECKING:
    from fino.store.lease import LeaseWatch
    from fino.train.trainer import Fence, RunSummary, Trainer

console = Console(stderr=True)


class RichProgress:
    """A progress bar: phase, step, last evaluation score, ETA. Once stopping, the phase says
    so until the run returns."""

    def __init__(self, progress: Progress, description: str, total: int) -> None:
        self.progress = progress
        self.task_id = progress.add_task(description, total=total, phase="", score="-")
        self.stopping: str | None = None

    def on_progress(self, step: int, total: int, phase: str, score: float | None) -> None:
        self.progress.update(self.task_id, completed=step, total=total,
                             phase=self.stopping or phase,
                             score="-" if score is None else f"{score:.1f}")

    def on_message(self, message: str) -> None:
        self.progress.update(self.task_id, phase=self.stopping or message)

    def on_stop(self, message: str) -> None:
        self.stopping = message
        self.progress.update(self.task_id, phase=message)


STOPPING = ("stopping: finishing this step or evaluation episode, then a checkpoint "
            "(Ctrl-C again: stop now, keeping the last checkpoint)")


class StopOnSignal:
    """The run's SIGINT/SIGTERM handler: the first signal asks the trainer to checkpoint and
    stop (said at once); a second Ctrl-C raises KeyboardInterrupt there and then, and the last
    checkpoint stays as it was (checkpoints are replaced atomically)."""

    def __init__(self, trainer: Trainer, listener: RichProgress | None = None) -> None:
        self.trainer, self.listener = trainer, listener

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.trainer.stop_requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.trainer.request_stop()
        if self.listener is not None:
            self.listener.on_stop(STOPPING)
        else:  # no bar (a worker's child logs to a file): one line, written signal-safely
            os.write(2, f"{signal.Signals(signum).name}: stopping at the next step or "
                        "evaluation episode, then a checkpoint\n".encode())


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed:>8,.0f}/{task.total:,}"),
                    TextColumn("[cyan]{task.fields[phase]}"),
                    TextColumn("score [green]{task.fields[score]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def default_run_dir(config: RunConfig) -> Path:
    short = config.task.name.replace("/", "_").replace("-singletask", "")
    return Path("runs") / f"{short}-{config.algo}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def execute(config: RunConfig, run_dir: Path, *, resume: bool, quiet: bool,
            sinks: list | None = None, fence: Fence | None = None) -> RunSummary:
    """Run to the end (or until SIGINT/SIGTERM, which checkpoint and stop cleanly)."""
    from fino.train.trainer import Trainer

    with progress_bar() as bar:
        listener = None if quiet else RichProgress(bar, f"{config.algo} seed {config.seed}",
                                                 config.train.total_steps)
        if listener:
            listener.on_message("loading task")
        trainer = Trainer(config, run_dir, progress=listener, resume=resume, sinks=sinks,
                          fence=fence)
        stop = StopOnSignal(trainer, listener)
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return trainer.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@contextmanager
def no_empty_folder(run_dir: Path) -> Iterator[None]:
    """A run that fails before it writes anything (unknown dataset, no such device) leaves no
    empty run folder, nor the empty parents it made; a folder holding anything stays."""
    made = [run_dir, *run_dir.parents]
    made = made[:next((i for i, p in enumerate(made) if p.exists()), len(made))]
    try:
        yield
    except BaseException:
        for folder in made:  # the run folder first, then its new parents
            with suppress(OSError):  # not empty, or gone: leave it
                folder.rmdir()
        raise


KNOWN_ERRORS = (ConfigError, TaskError, CheckpointError, TrainingDiverged, ValueError, StoreError)


def os_error_line(exc: BaseException) -> str:
    """An operating-system error as one line: what failed, on which file."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}: free space or fix the folder, then retry the run"
    return str(exc)


def summary_table(summary: RunSummary, config: RunConfig, run_dir: Path) -> Table:
    table = Table(title=f"{config.algo.upper()} on {config.task.name} (seed {config.seed})")
    for column in ("step", "phase", "score", "return", "length", "entropy", "beta"):
        table.add_column(column, justify="right")
    for e in summary.evaluations:
        phase = "online" if e.get(PROGRESS_ONLINE) else "offline"
        table.add_row(f"{e['step']:,}", phase, f"{e[EVAL_SCORE]:.1f}",
                      f"{e[EVAL_RETURN]:.1f}", f"{e[EVAL_LENGTH]:.0f}",
                      f"{e.get(POLICY_ENTROPY, float('nan')):.2f}",
                      f"{e.get(POLICY_BETA, float('nan')):.2f}")
    table.caption = (f"{summary.status} in {summary.wall_time / 60:.1f} min; offline score "
                     f"{_fmt(summary.offline_score)} -> final {_fmt(summary.final_score)}; "
                     f"files in {run_dir}")
    return table


def _fmt(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"


def run(
    task: Annotated[str | None, typer.Option(
        help="Task: an alias (cube-single, cube-double, puzzle-4x4, pointmaze, humanoidmaze, "
             "antmaze-large, ...), an OGBench singletask name, a Minari id or a D4RL name "
             "(antmaze-large-play-v2, pen-cloned-v1).",
        autocompletion=complete_task)] = None,
    preset: Annotated[str | None, typer.Option(
        help="Profile of the task's preset file (paper, quick), a presets/NAME, or FILE.toml"
             "[:PROFILE]. Default: paper.", autocompletion=complete_preset)] = None,
    algo: Annotated[str, typer.Option(help="fino, or fql (noise 0, one candidate).")] = "fino",
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    backend: Annotated[str, typer.Option(
        help="ogbench, minari, gymnasium or auto (from the task name).")] = "auto",
    task_id: Annotated[int | None, typer.Option(help="OGBench singletask id 1..5.")] = None,
    dataset_dir: Annotated[str | None, typer.Option(
        help="OGBench dataset folder (default ~/.ogbench/data).")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="gymnasium backend: an OGBench-format .npz or a Minari id.")] = None,
    offline_steps: Annotated[int | None, typer.Option(help="Offline updates.")] = None,
    online_steps: Annotated[int | None, typer.Option(help="Online env steps.")] = None,
    eval_interval: Annotated[int | None, typer.Option(help="Steps between evaluations.")] = None,
    eval_episodes: Annotated[int | None, typer.Option(help="Episodes per evaluation.")] = None,
    balanced: Annotated[bool | None, typer.Option(
        "--balanced/--uniform", help="50/50 offline/online batches (RLPD) or uniform (paper)."
    )] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads for this run.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting: SECTION.KEY=VALUE (agent., train., task.).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/...).")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue the run in this folder from its last checkpoint.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar or table.")] = False,
    run_id: Annotated[list[int] | None, typer.Option(
        help="Run a queued run of the store (what `fino worker` starts); metrics go to the "
             "database too. Repeated: train those runs as one pack (`fino worker --pack`).")
    ] = None,
    db: Annotated[str | None, typer.Option(
        envvar="FINO_DB_URL", help="Database URL or SQLite path (default ./experiments.db).",
        show_default=False)] = None,
    sink: Annotated[list[str] | None, typer.Option(
        "--sink", metavar="NAME",
        help="Also log to this logger (repeatable): tensorboard, wandb (offline), mlflow, or an "
             "installed plugin; its files go in the run folder. For a new run it is saved in "
             "the config (train.sinks); for a resumed or queued run, this attempt only.",
        show_default=False)] = None,
) -> None:
    """Train offline then online on one task; exit code 0 only when the run completes."""
    try:
        extra = check_sinks(sink or [])
    except ConfigError as exc:
        fail(str(exc))
    if run_id is not None and len(run_id) > 1:
        from fino.cli.run_pack import run_pack

        try:
            code = run_pack(run_id, db, quiet, extra)
        except KeyboardInterrupt:
            fail("stopped at once; each member's last checkpoint is intact",
                 code=ExitCode.INTERRUPTED)
        except (*KNOWN_ERRORS, OSError) as exc:
            fail(str(exc) if isinstance(exc, KNOWN_ERRORS) else os_error_line(exc))
        raise typer.Exit(code)
    sinks: list = []
    loggers = LoggerGroup([])  # the trainer leaves them open for curves.png
    lease: LeaseWatch | None = None
    run_dir: Path | None = None
    try:
        if run_id is not None:
            config, run_dir, is_resume, sinks, lease = _from_store(run_id[0], db)
        elif resume is not None:
            run_dir, is_resume = resume, True
            config_file = run_dir / CONFIG_NAME
            if not config_file.exists():
                raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG_NAME})")
            config = RunConfig.from_dict(json.loads(config_file.read_text()))
        else:
            if task is None:
                raise ConfigError("--task is required (or --resume RUN_DIR)")
            config = build_run_config(
                TaskConfig(name=task, backend=backend, task_id=task_id, dataset_dir=dataset_dir,
                           dataset=dataset),
                preset=preset, algo=algo, seed=seed, overrides=set_ or [],
                train_overrides={"offline_steps": offline_steps, "online_steps": online_steps,
                                 "eval_interval": eval_interval, "eval_episodes": eval_episodes,
                                 "balanced": balanced, "threads": threads,
                                 "sinks": extra or None})
            if not quiet:
                say_task_resolution(task)
            run_dir, is_resume = out or default_run_dir(config), False
            if (run_dir / CONFIG_NAME).exists():
                raise ConfigError(f"{run_dir} already holds a run; continue it with "
                                  f"`fino run --resume {run_dir}` or choose another --out")
        if not quiet:
            console.print(f"[bold]{config.algo}[/] on [bold]{config.task.name}[/] "
                          f"(preset {config.preset}, seed {config.seed}) -> {run_dir}")
        loggers.sinks += make_sinks([*config.train.sinks, *extra], run_dir, config)
        with no_empty_folder(run_dir), loggers.finished_on_error():
            summary = execute(config, run_dir, resume=is_resume, quiet=quiet,
                              sinks=[*sinks, loggers], fence=lease)
    except RunDisowned as exc:
        fail(f"stopped without writing: {exc}", code=ExitCode.DISOWNED)
    except KeyboardInterrupt:
        fail(forced_stop_message(run_dir), code=ExitCode.INTERRUPTED)
    except (*KNOWN_ERRORS, OSError) as exc:
        message = str(exc) if isinstance(exc, KNOWN_ERRORS) else os_error_line(exc)
        if lease is not None:  # the store keeps the reason even where the log cannot (full disk)
            lease.record_error(message)
        fail(message)
    try:
        if not quiet:
            console.print(summary_table(summary, config, run_dir))
        if summary.evaluations:
            from fino.train.plots import plot_runs

            plot_runs({config.algo: run_dir}, run_dir / "curves.png",
                      title=f"{config.algo} on {config.task.name}, seed {config.seed}",
                      offline_steps=config.train.offline_steps)
            loggers.artifact(run_dir / "curves.png")
    finally:
        loggers.finish()
    if summary.status != "done":
        console.print(f"[yellow]interrupted at step {summary.step}; continue with "
                      f"`fino run --resume {run_dir}`")
        raise typer.Exit(ExitCode.INTERRUPTED)


def forced_stop_message(run_dir: Path | None) -> str:
    """What a second Ctrl-C left: the last checkpoint, untouched, or none yet."""
    if run_dir is None:
        return "stopped before the run started"
    if (run_dir / CHECKPOINT_NAME).exists():
        return (f"stopped at once; the last checkpoint in {run_dir} is intact: continue with "
                f"`fino run --resume {run_dir}`")
    return f"stopped at once, before the first checkpoint; nothing to resume in {run_dir}"


def _from_store(run_id: int, db: str | None
                ) -> tuple[RunConfig, Path, bool, list, LeaseWatch | None]:
    """A queued run's config and folder; it resumes when its folder holds a checkpoint. Started
    by a worker, the attempt's lease fences every write (watched in the background)."""
    from fino.store.db import Store
    from fino.store.lease import watch_from_env
    from fino.store.queue import QueueError, get_run
    from fino.store.sink import DatabaseSink

    store = Store(db, create=False)
    try:
        run = get_run(store, run_id)
    except QueueError as exc:
        raise ConfigError(str(exc)) from None
    watch = watch_from_env(store, run_id)
    config = RunConfig.from_dict(run.config)
    run_dir = Path(run.run_dir or f"runs/{run_id:06d}")
    resume = (run_dir / CHECKPOINT_NAME).exists()
    return config, run_dir, resume, [DatabaseSink(store, run_id, lease=watch)], watch
