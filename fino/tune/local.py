"""A study served in this process (`fino tune --workers N`): a local worker runs the study's
runs and no other, and the orchestrator takes its turn between the worker's claims."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fino.launch.local import LocalExecutor
from fino.launch.worker import OnInterrupt, Worker
from fino.tune.study import Orchestrator, Progress


class StudyWorker(Worker):
    """A worker that stops the orchestrator with it (Ctrl-C reaches the worker's handler)."""

    def __init__(self, orchestrator: Orchestrator, jobs: int, log: Callable[[str], None],
                 pack: int = 1) -> None:
        super().__init__(orchestrator.store, LocalExecutor(), jobs=jobs, only=[],
                         on_tick=self._tick, log=log, pack=pack)
        self.orchestrator = orchestrator
        self._next_check = 0.0

    def request_stop(self, on_interrupt: OnInterrupt | None = None) -> None:
        self.orchestrator.request_stop()
        super().request_stop(on_interrupt)

    def _tick(self) -> None:
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.orchestrator.poll_interval
        progress = self.orchestrator.step()
        self.only = self.orchestrator.run_ids()
        if self.orchestrator.gave_up:
            self.request_stop()
        if self.orchestrator.done(progress):
            # Only runs of pruned trials can be left: stop them as cancelled.
            self.request_stop(on_interrupt="cancel")


def serve(orchestrator: Orchestrator, jobs: int, log: Callable[[str], Any], *,
          pack: int = 1) -> Progress:
    """Run the study here, `jobs` processes at a time of up to `pack` runs each, until it is
    done or Ctrl-C (the worker's runs go back to the queue); then one last check of the
    trials."""
    StudyWorker(orchestrator, jobs, log, pack=pack).run()
    return orchestrator.step()
