"""The local executor: each run is a child process on this machine."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child: get SIGTERM when the worker dies, even by SIGKILL, so an orphaned run
    checkpoints and stops instead of training unsupervised (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalExecutor:
    """Child processes in their own session (Ctrl-C in the terminal reaches the worker only;
    the worker decides what the children get)."""

    name = "local"

    def submit(self, run_id: int, command: list[str], env: dict[str, str],
               log_path: Path) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, **env}, start_new_session=True,
                                    preexec_fn=die_with_parent)

    def poll(self, handle: subprocess.Popen) -> int | None:
        return handle.poll()

    def cancel(self, handle: subprocess.Popen, *, force: bool = False) -> None:
        if handle.poll() is None:
            handle.send_signal(signal.SIGKILL if force else signal.SIGTERM)
