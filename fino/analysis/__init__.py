"""Analysis of stored runs: statistics over seeds and grouping of runs into experiments."""

from fino.analysis.groups import Group, GroupError, group_runs
from fino.analysis.stats import RunScores, mean_ci, offline_and_final

__all__ = ["Group", "GroupError", "RunScores", "group_runs", "mean_ci", "offline_and_final"]
