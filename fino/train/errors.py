"""Errors of a run that callers (CLI, worker) turn into messages and exit codes."""


class TrainingDiverged(RuntimeError):
    """A non-finite loss; the message says at which step and which loss."""


class RunDisowned(RuntimeError):
    """This attempt no longer holds its run (reclaimed, cancelled, removed, or its lease ran
    out): the process stops without writing anything more; the message says why."""
