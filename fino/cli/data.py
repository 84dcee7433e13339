"""`fino data`: generate OGBench datasets locally, download published ones, list what is on disk."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fino.backends.datagen import (
    DEFAULT_DATASET_DIR,
    RECIPES,
    DatagenError,
    GenerationProgress,
    download_dataset,
    generate_dataset,
    local_datasets,
    recipe_for,
)
from fino.cli.common import say_task_resolution
from fino.exit_codes import ExitCode

data_app = typer.Typer(help="Datasets: generate OGBench sets locally, download, list.",
                       no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error: {escape(message)}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    for unit in ("B", "KB", "MB"):
        if num_bytes < 1000:
            return f"{num_bytes:.0f} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.1f} GB"


class _Bar:
    """Feeds GenerationProgress into a rich bar: steps drive the ETA, episodes are shown."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.task_id = progress.add_task(description, total=None, episodes="0/?", steps="0",
                                         rate="starting…")
        self.start = time.perf_counter()
        self.last: GenerationProgress | None = None

    def __call__(self, state: GenerationProgress) -> None:
        self.last = state
        elapsed = time.perf_counter() - self.start
        rate = f"{state.steps_done / elapsed:,.0f} steps/s" if state.steps_done else "starting…"
        self.progress.update(self.task_id, completed=state.steps_done, total=state.steps_total,
                             episodes=f"{state.episodes_done}/{state.episodes_total}",
                             steps=f"{state.steps_done:,}/{state.steps_total:,}", rate=rate)


@data_app.command()
def generate(
    name: Annotated[str, typer.Argument(
        help="OGBench dataset or task name, e.g. cube-single-play-v0 or "
             "cube-double-play-singletask-task2-v0.")],
    episodes: Annotated[int | None, typer.Option(
        help="Train episodes; val adds a tenth (at least 1). Default 100; the published sets "
             "have 1000 (500 for pointmaze-giant, 3000-5000 for the largest cube/puzzle).")] = None,
    out: Annotated[Path, typer.Option(help="Dataset directory.")] = Path(DEFAULT_DATASET_DIR),
    seed: Annotated[int, typer.Option(help="Seed; each episode derives its own from it.")] = 0,
    workers: Annotated[int | None, typer.Option(
        help="Processes (default: all cores). The files do not depend on it.")] = None,
    episode_length: Annotated[int | None, typer.Option(
        help="Raw env steps per episode (default: the recipe's, 1001 or 2001).")] = None,
    force: Annotated[bool, typer.Option(help="Replace existing files.")] = False,
) -> None:
    """Regenerate an OGBench dataset with the authors' published recipe (scripted oracles)."""
    try:
        recipe = recipe_for(name)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.fields[episodes]} episodes"),
                      TextColumn("{task.fields[steps]} steps"),
                      TextColumn("[cyan]{task.fields[rate]}"), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            bar = _Bar(progress, recipe.dataset)
            paths = generate_dataset(recipe.dataset, episodes=episodes, out_dir=out, seed=seed,
                                     workers=workers, episode_length=episode_length,
                                     overwrite=force, progress=bar)
    except DatagenError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"could not write to {out}: {e}")
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: nothing was written[/yellow]")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    seconds = time.perf_counter() - bar.start
    done = bar.last
    assert done is not None  # generate_dataset reports at least once
    files = ", ".join(f"{p} ({_size(p.stat().st_size)})" for p in paths)
    typer.echo(f"wrote {files} in {seconds:.1f} s: {done.episodes_total} episodes "
               f"(train + val), {done.steps_total:,} steps ({done.steps_total / seconds:,.0f} "
               f"steps/s)")


@data_app.command()
def download(
    name: Annotated[str, typer.Argument(
        help="OGBench dataset/task name (cube-double-play-v0), Minari id (D4RL/pen/cloned-v2) "
             "or D4RL name (pen-cloned-v1).")],
    out: Annotated[Path | None, typer.Option(
        help=f"Directory (default: OGBench {DEFAULT_DATASET_DIR}; Minari $MINARI_DATASETS_PATH "
             f"or ~/.minari/datasets).")] = None,
) -> None:
    """Download a published dataset with its library's own downloader (needs network)."""
    say_task_resolution(name)
    try:
        paths = download_dataset(name, out)
    except DatagenError as e:
        _fail(str(e))
    typer.echo("downloaded " + ", ".join(str(p) for p in paths))


@data_app.command("list")
def list_(
    directory: Annotated[Path, typer.Option("--dir", help="Dataset directory.")] = Path(
        DEFAULT_DATASET_DIR),
) -> None:
    """List the OGBench datasets on disk, with sizes and whether both files are there."""
    found = local_datasets(directory)
    if not found:
        typer.echo(f"no OGBench datasets in {directory}; make one with `fino data generate NAME` "
                   f"(e.g. {next(iter(RECIPES))})")
        return
    table = Table("dataset", "train", "val", "status", box=None)
    for d in found:
        status = ("ok" if d.complete else
                  "val file missing" if d.train_bytes is not None else "train file missing")
        table.add_row(d.name, _size(d.train_bytes), _size(d.val_bytes),
                      status if d.complete else f"[red]{status}[/red]")
    Console().print(table)
