"""CPU threads for runs that share a machine's cores.

torch's CPU kernels run on OpenMP threads that, by default, spin-wait between parallel regions.
Alone on the machine that gains ~3%; beside other work the spinning threads take the cores the
other processes need (measured: beside one busy process a run fell to 0.36x its idle rate with
spinning threads, 0.61x with sleeping ones; benchmarks/results/shared-cores-cpu.md). So every
`fino` process waits passively, and a worker running `jobs` runs gives each an equal share of
the cores.
OpenMP reads these variables when it starts, so they are set in the child's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def wait_passively() -> None:
    """Let OpenMP threads sleep when idle (unless the user chose otherwise). Takes effect only
    if torch is not imported yet: the `fino` command calls it first thing."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def child_thread_env(jobs: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """OMP_NUM_THREADS (cores // jobs, at least 1) and OMP_WAIT_POLICY=PASSIVE for a run that
    shares the cores with jobs − 1 others; a value the user set is kept."""
    wanted = {"OMP_NUM_THREADS": str(max(1, available_cores() // max(1, jobs))),
              "OMP_WAIT_POLICY": "PASSIVE"}
    return {k: v for k, v in wanted.items() if k not in environ}
