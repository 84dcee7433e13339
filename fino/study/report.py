"""The study's report: the paper's table (offline -> online, mean ± 95% CI over seeds),
learning curves per task, each qualitative claim checked against the numbers, and the robust
aggregates across tasks (interquartile mean, probability of improvement).

Made in three steps, one module each: collecting the runs into cells (`fino.study.collect`),
judging the claims on them (`fino.study.judge`) and rendering markdown and PNGs
(`fino.study.render`). Their names are importable from here too."""

from fino.study.collect import (
    Cell,
    dataset_rows,
    minutes_by_task,
    remaining_cost,
    run_machines,
    shared_offline_methods,
    study_runs,
    study_tags,
    summarise,
)
from fino.study.judge import (
    CLAIMS,
    OFFLINE_ALIKE,
    _gains,
    all_equal,
    claim_lines,
    offline_per_seed,
    robust_section,
    runs_all_zero,
)
from fino.study.render import plot_task, return_section, write_report

__all__ = [
    "CLAIMS", "OFFLINE_ALIKE", "Cell", "_gains", "all_equal", "claim_lines", "dataset_rows",
    "minutes_by_task", "offline_per_seed", "plot_task", "remaining_cost", "return_section",
    "robust_section", "run_machines", "runs_all_zero", "shared_offline_methods", "study_runs",
    "study_tags", "summarise", "write_report",
]
