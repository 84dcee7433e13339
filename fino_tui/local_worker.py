"""A `fino worker` started from the dashboard: a child process in its own session (Ctrl-C in
the terminal does not reach it), stopped with SIGINT as a user would, so that it requeues its
running runs; its output goes to a log file."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from fino_tui.actions import cli

LOG_PATH = Path("runs") / "tui-worker.log"


class LocalWorker:
    """At most one worker process at a time."""

    def __init__(self, db_url: str, log_path: Path = LOG_PATH) -> None:
        self.db_url = db_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.jobs = 0
        self.stopping = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, jobs: int) -> int:
        """Start `fino worker --jobs N` on this database; returns its pid."""
        if self.running:
            raise RuntimeError(f"a worker started here is already running (pid {self.pid})")
        if jobs < 1:
            raise ValueError(f"jobs={jobs}: must be >= 1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "FINO_DB_URL": self.db_url}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cli("worker", "--jobs", str(jobs)), env=env,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.jobs, self.stopping = jobs, False
        return self.process.pid

    def stop(self) -> None:
        """Ask it to stop (SIGINT): it stops its runs, requeues them and exits."""
        if self.running and self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.stopping = True

    def state(self) -> str:
        """'off', 'running (pid N, J jobs)', 'stopping (pid N)' or 'exited (code C)'."""
        if self.process is None:
            return "off"
        code = self.process.poll()
        if code is None:
            return (f"stopping (pid {self.pid})" if self.stopping
                    else f"running (pid {self.pid}, {self.jobs} job{'s' * (self.jobs > 1)})")
        return "off" if self.stopping and code == 0 else f"exited (code {code})"
