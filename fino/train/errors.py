"""Errors of a run that callers (CLI, worker) turn into messages and exit codes."""


class TrainingDiverged(RuntimeError):
    """A non-finite loss; the message says at which step and which loss."""
