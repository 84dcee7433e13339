"""CPU threads for runs that share a machine's cores.

torch's CPU kernels run on OpenMP threads that, by default, spin-wait between parallel regions.
Alone on the machine that costs nothing; beside other work the spinning threads take cores the
other processes need. A worker running `jobs` runs gives each an equal share of the cores and
lets OpenMP threads sleep when idle (measured: benchmarks/results/shared-cores-cpu.md).
OpenMP reads these variables when it starts, so they are set in the child's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def child_thread_env(jobs: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """OMP_NUM_THREADS (cores // jobs, at least 1) and OMP_WAIT_POLICY=PASSIVE for a run that
    shares the cores with jobs − 1 others; a value the user set is kept."""
    wanted = {"OMP_NUM_THREADS": str(max(1, available_cores() // max(1, jobs))),
              "OMP_WAIT_POLICY": "PASSIVE"}
    return {k: v for k, v in wanted.items() if k not in environ}
