"""The Ray executor: each run is a Ray task on the cluster with the resources asked for.

The task starts `fino run --run-id ID` as a child process on its node, so metrics and
heartbeats flow exactly as with the local executor: the run writes to the store named by
FINO_DB_URL (PostgreSQL for several hosts) and the worker process that submitted it heartbeats
it. Run folders (checkpoints, logs) must be on a path every node can reach (a shared file
system); object-store URLs are not supported.

If the driver (the `fino worker` that submitted the run) dies, what the run gets depends on
where Ray runs. With a local instance (`--address local`) the run gets SIGTERM and checkpoints.
On a cluster (`ray start`), Ray ends the job's task workers and SIGKILLs their children within a
second, so the run stops without checkpointing: the steps since its last checkpoint (at most
`train.save_interval`) are lost. Either way another worker reaps the run as `lost` when its
heartbeat expires, and its retry resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from fino.launch.executor import LOST
from fino.launch.local import die_with_parent

# A Ray worker that exits SIGKILLs its children by default; off for the run's task so that a
# local instance's run gets SIGTERM when the driver dies (on a cluster Ray still SIGKILLs it).
RUNTIME_ENV = {"env_vars": {"RAY_kill_child_processes_on_worker_exit": "false"}}


def _run_on_node(args: list[str], env: dict[str, str], log_path: str, grace: float) -> int:
    """Inside the Ray task: run `python ARGS` with the node's interpreter (the driver's path
    may not exist there); ray.cancel (KeyboardInterrupt here) becomes a SIGTERM to the run,
    which checkpoints and exits."""
    import sys

    command = [sys.executable, *args]
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # If the Ray worker process dies (node failure, a killed task), the run gets SIGTERM,
        # checkpoints and stops instead of training on unsupervised.
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, **env}, start_new_session=True,
                                 preexec_fn=die_with_parent)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGTERM)
            try:
                return child.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()
        finally:
            if child.poll() is None:
                child.kill()


def _probe(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on an unreachable host:port (Ray itself retries for minutes)."""
    if not address or address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r}: expected auto, local, HOST:PORT or "
                         "ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"cannot reach a Ray cluster at {address}: {exc}") from exc


class RayExecutor:
    """Submit runs as Ray tasks (`ray.init(address)`: `auto`, `ray://host:10001`, or None
    for a local instance)."""

    name = "ray"

    def __init__(self, address: str | None = "auto", cpus_per_run: float = 1.0,
                 gpus_per_run: float = 0.0, grace: float = 30.0,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ValueError("the ray executor needs Ray, which is not installed: "
                             "pip install 'fino[ray]'") from exc
        if cpus_per_run <= 0 or gpus_per_run < 0:
            raise ValueError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
        self.ray = ray
        if not ray.is_initialized():
            _probe(address)
            try:
                ray.init(address=address, log_to_driver=False, **(init_kwargs or {}))
            except (ConnectionError, RuntimeError) as exc:
                raise ValueError(f"cannot reach a Ray cluster at {address!r}: {exc}") from exc
        self.grace = grace
        self._remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0,
                                  runtime_env=RUNTIME_ENV)(_run_on_node)

    def submit(self, run_id: int, command: list[str], env: dict[str, str],
               log_path: Path) -> Any:
        return self._remote.options(name=f"fino-run-{run_id}").remote(
            command[1:], env, str(log_path), self.grace)

    def poll(self, handle: Any) -> int | None:
        ready, _ = self.ray.wait([handle], timeout=0)
        if not ready:
            return None
        try:
            return int(self.ray.get(handle))
        except self.ray.exceptions.TaskCancelledError:
            return 143
        except (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError,
                self.ray.exceptions.RayTaskError, self.ray.exceptions.ObjectLostError):
            return LOST

    def cancel(self, handle: Any, *, force: bool = False) -> None:
        self.ray.cancel(handle, force=force)
