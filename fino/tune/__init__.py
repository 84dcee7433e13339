"""Optuna tuning of FINO's injected noise and candidate count (and whatever else a space names)."""
