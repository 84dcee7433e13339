"""`fino worker`: serve the queue with a pool of child processes."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from fino.cli.common import fail, open_store
from fino.cli.options import DbOption

if TYPE_CHECKING:
    from fino.launch.worker import Worker

console = Console(stderr=True)


def worker(
    jobs: Annotated[int, typer.Option(help="Processes at a time (runs, or packs of runs).")
    ] = 1,
    pack: Annotated[str, typer.Option(
        help="Runs per process: N claims up to N queued runs that differ only in the seed and "
             "packable agent settings and trains them as one pack on batched weights; auto: 1 "
             "on a CPU, on CUDA as many as fit in the device's memory (up to 32).")] = "1",
    until_empty: Annotated[bool, typer.Option(
        help="Exit when the queue is empty and the runs are finished.")] = False,
    backend: Annotated[str, typer.Option(
        help="Execution backend plugin: local, or ray (runs as Ray tasks on a cluster).")
    ] = "local",
    address: Annotated[str | None, typer.Option(
        help="ray: the cluster (auto, ray://host:10001); default auto.")] = None,
    cpus_per_run: Annotated[float | None, typer.Option(help="ray: CPUs per run.")] = None,
    gpus_per_run: Annotated[float | None, typer.Option(
        help="ray: GPUs per run (0.25 packs four runs per GPU).")] = None,
    max_attempts: Annotated[int, typer.Option(
        help="Requeue a failed or lost run until it has had this many attempts.")] = 1,
    on_interrupt: Annotated[str, typer.Option(
        help="On Ctrl-C: requeue the running runs (they resume later) or cancel them.")
    ] = "requeue",
    heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats.")] = 5.0,
    expiry: Annotated[float, typer.Option(
        help="Seconds without a heartbeat before a run counts as lost.")] = 60.0,
    sink: Annotated[list[str] | None, typer.Option(
        "--sink", metavar="NAME",
        help="Also log every run it serves to this logger (repeatable): tensorboard, wandb, "
             "mlflow or an installed plugin (`fino run --sink`).", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Serve the queue: claim queued runs and run them.

    Runs are claimed by priority, then age, and each runs as `fino run --run-id ID`. Exits
    with code 1 when a run it settled failed or was lost.

    Examples: fino worker --jobs 2 --until-empty; fino worker --pack 16 (seeds of one
    config trained together);
    fino worker --backend ray --address auto --jobs 16 --gpus-per-run 0.25
    """
    from fino.launch.executor import get_executor
    from fino.launch.worker import Worker
    from fino.sinks import check_sinks

    if on_interrupt not in ("requeue", "cancel"):
        fail("--on-interrupt must be requeue or cancel")
    try:
        sinks = check_sinks(sink or [])
    except ValueError as exc:
        fail(str(exc))
    store = open_store(db)
    try:
        options = {k: v for k, v in {"address": address, "cpus_per_run": cpus_per_run,
                                     "gpus_per_run": gpus_per_run}.items() if v is not None}
        if options and backend != "ray":
            raise ValueError(f"--address/--cpus-per-run/--gpus-per-run are for --backend ray, "
                             f"not {backend}")
        executor = get_executor(backend, **options)
        pool = Worker(store, executor, jobs=jobs, until_empty=until_empty,
                      max_attempts=max_attempts, heartbeat_interval=heartbeat, expiry=expiry,
                      on_interrupt=on_interrupt,  # type: ignore[arg-type]
                      pack=pack, log=lambda m: console.log(m), sinks=sinks)
    except ValueError as exc:
        fail(str(exc))
    packs = f", up to {pool.pack_size} runs per pack" if pool.pack_size > 1 else ""
    console.log(f"worker {pool.host}:{pool.pid} serving {store} with {jobs} job(s) "
                f"({backend}{packs}); Ctrl-C stops the runs and {on_interrupt}s them")
    pool.run()
    report_settled(pool)
    if pool.refused:
        fail(f"a pack did not fit: {pool.refused}; its runs are queued again (use a smaller "
             "--pack)")


def report_settled(pool: Worker) -> None:
    """One summary line; exit code 1 when a run it settled failed or was lost."""
    counts = Counter(s.outcome.value for s in pool.finished.values())
    detail = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    console.log(f"worker stopped; {len(pool.finished)} run(s) settled"
                + (f": {detail}" if detail else ""))
    failed = pool.failures()
    if failed:
        listed = " ".join(map(str, failed))
        fail(f"{len(failed)} run(s) failed or were lost: {listed} (see `fino runs show "
             f"{failed[0]}`; requeue with `fino queue retry {listed}`)")
