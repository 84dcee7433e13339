"""The exit codes of `fino run` and `fino run-pack`, and the extra codes a pack member can end
with: named once, for the runs that exit with them and the worker that reads them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How a run's process ended; the worker files the run by it."""

    DONE = 0
    FAILED = 1
    # This attempt lost its run (reclaimed, cancelled, lease expired) and wrote nothing more:
    # the worker requeues or leaves the run as the store says (EX_TEMPFAIL).
    DISOWNED = 75
    # Stopped on request (Ctrl-C, SIGTERM) after a checkpoint: 128 + SIGINT, as shells report it.
    INTERRUPTED = 130


class MemberCode(IntEnum):
    """A pack member's outcome besides a single run's exit codes (written to the pack's result
    file): back in the queue untouched to train apart, or because the pack did not fit."""

    RELEASED = -75
    REFUSED = -76
