"""Execution backends for the worker: submit a run's process, poll it, cancel it.

Plugins register under the entry-point group `fino.executors` (see pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

GROUP = "fino.executors"
LOST = -1000  # what poll() returns when the run's task or machine died without an exit code


class Executor(Protocol):
    """Where runs execute. Handles are opaque to the worker."""

    name: str

    def submit(self, run_id: int, command: list[str], env: dict[str, str],
               log_path: Path) -> Any:
        """Start `command` for the run, its output appended to `log_path`; return a handle."""

    def poll(self, handle: Any) -> int | None:
        """The exit code once the run's process has ended, else None."""

    def cancel(self, handle: Any, *, force: bool = False) -> None:
        """Ask the process to stop (SIGTERM: it checkpoints and exits); `force` kills it."""


def executor_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def get_executor(name: str, **options: Any) -> Executor:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise ValueError(f"unknown executor backend {name!r}; installed: {executor_names()}")
    return found[0].load()(**options)
