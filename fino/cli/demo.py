"""`fino demo`: the main job. Make sure the dataset exists, train FINO and FQL side by side with
the quick preset, and compare them (a table and a PNG of the learning curves)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fino.backends.base import TaskConfig, TaskError
from fino.backends.ogbench import dataset_files, parse_name
from fino.cli.common import fail
from fino.train.presets import build_run_config

console = Console(stderr=True)
DEFAULT_TASK = "cube-single"


def _tail_step(path: Path) -> int:
    """The step of the last record in a metrics.jsonl that is being written."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0


def _last_score(run_dir: Path) -> str:
    path = run_dir / "eval.csv"
    if not path.exists():
        return "-"
    rows = path.read_text().splitlines()
    return rows[-1].split(",")[3] if len(rows) > 1 else "-"


def demo(
    task: Annotated[str, typer.Option(help="A regenerable OGBench task.")] = DEFAULT_TASK,
    preset: Annotated[str, typer.Option(help="Preset profile.")] = "quick",
    seed: Annotated[int, typer.Option(help="Seed of both runs.")] = 0,
    episodes: Annotated[int, typer.Option(
        help="Episodes to generate when the dataset is missing.")] = 100,
    dataset_dir: Annotated[str | None, typer.Option(
        help="OGBench dataset folder (default ~/.ogbench/data).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the two runs.")] = None,
) -> None:
    """Train FINO and FQL (quick preset, one seed) side by side and compare them."""
    try:
        configs = {algo: build_run_config(TaskConfig(task, dataset_dir=dataset_dir),
                                          preset=preset, algo=algo, seed=seed)
                   for algo in ("fino", "fql")}
    except (TaskError, ValueError) as exc:
        fail(str(exc))
    name = configs["fino"].task.name
    env, dtype, _ = parse_name(name)
    dataset = f"{env}-{dtype}-v0"
    if not all(p.exists() for p in dataset_files(dataset, dataset_dir)):
        console.print(f"[bold]{dataset}[/] is not on disk: generating {episodes} episodes "
                      "with OGBench's recipe")
        generate = [sys.executable, "-m", "fino.cli.main", "data", "generate", dataset,
                    "--episodes", str(episodes)] + (["--out", dataset_dir] if dataset_dir else [])
        if subprocess.run(generate).returncode != 0:
            raise typer.Exit(1)
    root = out or Path("runs") / f"demo-{env}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    train = configs["fino"].train
    console.print(f"Training FINO and FQL on [bold]{name}[/] (preset {configs['fino'].preset}: "
                  f"{train.offline_steps:,} offline + {train.online_steps:,} online steps, "
                  f"evaluation every {train.eval_interval:,} over {train.eval_episodes} "
                  f"episodes), one core each -> {root}")
    children = {}
    for algo in configs:
        cmd = [sys.executable, "-m", "fino.cli.main", "run", "--task", task, "--preset", preset,
               "--algo", algo, "--seed", str(seed), "--threads", "1", "--quiet",
               "--out", str(root / algo)] + (["--dataset-dir", dataset_dir] if dataset_dir else [])
        (root / algo).mkdir(parents=True, exist_ok=True)
        log = (root / algo / "stderr.log").open("w")
        children[algo] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    total = train.total_steps
    with Progress(TextColumn("[bold]{task.description:>4}"), BarColumn(),
                  TextColumn("{task.completed:>7,.0f}/{task.total:,}"),
                  TextColumn("score [green]{task.fields[score]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
        bars = {algo: bar.add_task(algo.upper(), total=total, score="-") for algo in children}
        try:
            while any(child.poll() is None for child in children.values()):
                for algo in children:
                    bar.update(bars[algo], completed=_tail_step(root / algo / "metrics.jsonl"),
                               score=_last_score(root / algo))
                time.sleep(2.0)
        except KeyboardInterrupt:
            for child in children.values():
                child.terminate()  # each run checkpoints and can be resumed
            for child in children.values():
                child.wait()
            console.print(f"[yellow]stopped; resume each with `fino run --resume {root}/ALGO`")
            raise typer.Exit(130) from None
        for algo in children:
            bar.update(bars[algo], completed=_tail_step(root / algo / "metrics.jsonl"),
                       score=_last_score(root / algo))
    failed = [a for a, c in children.items() if c.returncode != 0]
    if failed:
        for algo in failed:
            console.print(f"[red]{algo} failed[/]; its log: {root / algo / 'stderr.log'}")
        raise typer.Exit(1)
    console.print(comparison_table({a: root / a for a in children}, name, seed))
    from fino.train.plots import plot_runs

    png = plot_runs({a.upper(): root / a for a in children}, root / "comparison.png",
                    title=f"FINO vs FQL on {name} (seed {seed}, preset {preset})",
                    offline_steps=train.offline_steps)
    console.print(f"Learning curves: {png}")


def comparison_table(runs: dict[str, Path], task: str, seed: int) -> Table:
    table = Table(title=f"{task}, seed {seed}: score (success %) over evaluation episodes")
    for column in ("method", "offline score", "final score", "best", "final entropy",
                   "final β", "minutes"):
        table.add_column(column, justify="right")
    for algo, run_dir in runs.items():
        s = json.loads((run_dir / "summary.json").read_text())
        last = s["evaluations"][-1]
        table.add_row(algo.upper(), f"{s['offline_score']:.1f}", f"{s['final_score']:.1f}",
                      f"{s['best_score']:.1f}", f"{last.get('policy/entropy', float('nan')):.2f}",
                      f"{last['policy/beta']:.2f}" if "policy/beta" in last else "-",
                      f"{s['wall_time'] / 60:.1f}")
    table.caption = ("One seed: a demonstration, not evidence. Rank methods over several seeds "
                     "(see the reproduction study).")
    return table
