"""Optuna tuning of FINO's injected noise and candidate count (and whatever else a space names)."""

DEFAULT_STORAGE = "optuna.journal"  # where `fino tune` keeps its studies unless told
