"""Training: the trainer (offline then online steps), evaluation, checkpoints, metric sinks."""
