"""`fino demo`: the main job, on the queue. Make sure the dataset exists, queue FINO and FQL
(quick preset, one seed), serve them with a two-job worker, then print `fino report` and write
`fino plot`'s PNG."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fino.backends.ogbench import dataset_files, parse_name
from fino.cli.common import fail, open_store
from fino.cli.complete import complete_preset, complete_task
from fino.cli.options import DbOption
from fino.cli.readout import fmt_duration
from fino.config import TaskConfig, TaskError
from fino.metric_keys import (
    CRITIC_LOSS,
    EVAL_RETURN,
    EVAL_SCORE,
    POLICY_ENTROPY,
    PROGRESS_ONLINE,
    UPDATES_PER_SEC,
)
from fino.status import RunStatus
from fino.train.presets import build_run_config

console = Console(stderr=True)
DEFAULT_TASK = "cube-single"
ALGOS = ("fino", "fql")


def ensure_dataset(task_name: str, episodes: int, dataset_dir: str | None) -> None:
    """Regenerate the task's OGBench dataset (official recipe) when it is not on disk."""
    env, dtype, _ = parse_name(task_name)
    dataset = f"{env}-{dtype}-v0"
    if all(p.exists() for p in dataset_files(dataset, dataset_dir)):
        return
    console.print(f"[bold]{dataset}[/] is not on disk: generating {episodes} episodes with "
                  "OGBench's recipe")
    generate = [sys.executable, "-m", "fino.cli.main", "data", "generate", dataset,
                "--episodes", str(episodes)] + (["--out", dataset_dir] if dataset_dir else [])
    if subprocess.run(generate).returncode != 0:
        raise typer.Exit(1)


class DemoProgress:
    """One bar per run, fed from the store every couple of seconds: the phase (also the silent
    ones: loading, the step-0 evaluation, compiling) and an ETA from the logged update rate."""

    def __init__(self, store, run_ids: dict[str, int], total: int) -> None:
        self.store, self.run_ids, self.total = store, run_ids, total
        self.bar = Progress(TextColumn("[bold]{task.description:>4}"), BarColumn(),
                            TextColumn("{task.completed:>7,.0f}/{task.total:,}"),
                            TextColumn("{task.fields[phase]}"),
                            TextColumn("score [green]{task.fields[score]}"),
                            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                            console=console)
        self.bars = {algo: self.bar.add_task(algo.upper(), total=total, phase="queued",
                                             score="-", eta="-") for algo in run_ids}
        self._next = 0.0

    def tick(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._next:
            return
        self._next = time.monotonic() + 2.0
        from fino.store.queries import event_kinds, latest_metrics, statuses

        ids = list(self.run_ids.values())
        keys = (CRITIC_LOSS, EVAL_SCORE, PROGRESS_ONLINE, UPDATES_PER_SEC)
        with self.store.read() as session:
            latest = latest_metrics(session, ids, keys)
            status = statuses(session, ids)
            events = event_kinds(session, ids, ("started", "compiling"))
        for algo, run_id in self.run_ids.items():
            got = latest.get(run_id, {})
            step = max((s for s, _ in got.values()), default=0)
            score = got.get(EVAL_SCORE, (0, None))[1]
            phase = demo_phase(status.get(run_id, "?"), got, {k for i, k in events if i == run_id})
            rate = got.get(UPDATES_PER_SEC, (0, None))[1]
            self.bar.update(self.bars[algo], completed=step, phase=phase,
                            score="-" if score is None else f"{score:.0f}%",
                            eta=eta_text(self.total - step, rate, phase))


def demo_phase(status: RunStatus | str, latest: dict[str, tuple[int, float | None]],
               events: set[str]) -> str:
    """What a run is doing, also before its first logged step (the store's metrics and the
    trainer's `started` and `compiling` events)."""
    if status != RunStatus.RUNNING:
        return str(status)
    if "started" not in events:
        return "loading the task"
    if EVAL_SCORE not in latest:
        return "evaluating at step 0"
    if CRITIC_LOSS not in latest:
        return "compiling" if "compiling" in events else "training"
    online = latest.get(PROGRESS_ONLINE, (0, 0.0))[1]
    return "online" if online else "offline"


def eta_text(steps_left: int, updates_per_second: float | None, phase: str) -> str:
    """Time left at the last logged update rate (the offline rate stands in for the online
    phase until it is measured; evaluations come on top)."""
    if phase == RunStatus.DONE:
        return "0s"
    if not updates_per_second or updates_per_second <= 0:
        return "-"
    return f"~{fmt_duration(steps_left / updates_per_second)}"


def demo(
    task: Annotated[str, typer.Option(help="A regenerable OGBench task.",
                                      autocompletion=complete_task)] = DEFAULT_TASK,
    preset: Annotated[str, typer.Option(help="Preset profile.",
                                        autocompletion=complete_preset)] = "quick",
    seed: Annotated[int, typer.Option(help="Seed of both runs.")] = 0,
    episodes: Annotated[int, typer.Option(
        help="Episodes to generate when the dataset is missing.")] = 100,
    dataset_dir: Annotated[str | None, typer.Option(
        help="OGBench dataset folder (default ~/.ogbench/data).")] = None,
    out: Annotated[Path, typer.Option(help="The comparison PNG.")] = Path("runs/demo.png"),
    db: DbOption = None,
) -> None:
    """Run FINO and FQL side by side on one task and compare them.

    Queues both (quick preset, one seed each), runs them with a worker (one core each), then
    prints the report and writes the learning curves.

    Example: fino demo --task cube-double --seed 1
    """
    from fino.cli.plot import plot
    from fino.cli.report import report
    from fino.launch.local import LocalExecutor
    from fino.launch.worker import Worker
    from fino.store.queue import add_runs, get_run

    try:
        configs = [build_run_config(TaskConfig(task, dataset_dir=dataset_dir), preset=preset,
                                    algo=algo, seed=seed, overrides=["train.threads=1"])
                   for algo in ALGOS]
    except (TaskError, ValueError) as exc:
        fail(str(exc))
    name, train = configs[0].task.name, configs[0].train
    ensure_dataset(name, episodes, dataset_dir)
    store = open_store(db)
    ids = add_runs(store, configs, priority=100, tags=["demo"])
    console.print(f"Queued FINO (run {ids[0]}) and FQL (run {ids[1]}) on [bold]{name}[/] in "
                  f"{store}: preset {configs[0].preset}, {train.offline_steps:,} offline + "
                  f"{train.online_steps:,} online steps, evaluation every "
                  f"{train.eval_interval:,} over {train.eval_episodes} episodes")
    progress = DemoProgress(store, dict(zip(ALGOS, ids, strict=True)), train.total_steps)
    with progress.bar:
        worker = Worker(store, LocalExecutor(), jobs=2, until_empty=True, only=ids,
                        on_tick=progress.tick, log=lambda m: progress.bar.console.log(m))
        worker.run()
        progress.tick(force=True)
    statuses = {run_id: get_run(store, run_id).status for run_id in ids}
    if any(s != RunStatus.DONE for s in statuses.values()):
        for run_id, status in statuses.items():
            if status != RunStatus.DONE:
                console.print(f"run {run_id}: [red]{status}[/]; see `fino runs show {run_id}`")
        raise typer.Exit(1)
    spec = [str(i) for i in ids]
    report(spec, db=db)
    plot(spec, key=[EVAL_SCORE, POLICY_ENTROPY, EVAL_RETURN], out=out,
         title=f"FINO vs FQL on {name} (seed {seed}, preset {preset})", db=db)
    console.print("One seed is a demonstration, not evidence: rank methods over several seeds "
                  f"(fino queue add --task {task} --preset {preset} --seeds 0-4 ...).")
