"""Rendering a study's report: the markdown (the paper's table, per-seed scores, the judged
claims, robust aggregates, cost and provenance) and one PNG of learning curves per task."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fino.analysis.curves import STEP_LABEL, mark_offline_end, plot_curve
from fino.metric_keys import EVAL_RETURN
from fino.provenance import machine
from fino.store.db import Store
from fino.store.models import Run
from fino.study.collect import (
    Cell,
    dataset_rows,
    minutes_by_task,
    remaining_cost,
    run_machines,
    shared_offline_methods,
    study_runs,
    summarise,
)
from fino.study.judge import all_equal, claim_lines, robust_section, runs_all_zero
from fino.study.plan import Plan


def _fmt(stat: tuple[float, float, int], planned: int = 0) -> str:
    """mean ± 95% CI; the number of seeds when fewer than planned."""
    mean, half, n = stat
    if n == 0:
        return "–"
    text = f"{mean:.1f} ± {half:.1f}" if n > 1 else f"{mean:.1f}"
    return text + (f" (n={n})" if n < planned or n == 1 else "")


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _stem(task: str) -> str:
    """A task's file name stem: cube-double-play-singletask-task2-v0 -> cube-double-play."""
    return task.split("-singletask")[0]


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _remaining(tasks: list[str], minutes: dict[str, list[float]]) -> str:
    """Coverage clause: what the runs not done yet would cost."""
    if not tasks:
        return ""
    total, unknown = remaining_cost(tasks, minutes)
    known = len(tasks) - unknown
    text = ""
    if known:
        text = (f"; the {_runs(known)} still to do on measured tasks would take about "
                f"{total / 60:.1f} run-hours at their task's median cost "
                f"({total / 120:.1f} h of wall clock with two workers)")
    if unknown:
        text += f"; no cost estimate yet for {_runs(unknown)} on tasks with no finished run"
    return text


def _where_and_how_long(runs: list[Run], machines: dict[int, str],
                        by_task: dict[str, list[float]]) -> list[str]:
    """Report lines: the machines the runs were made on, and minutes per run by task."""
    counts = Counter(machines.get(run.id, "") for run in runs)
    unknown = counts.pop("", 0)
    lines = ["- Runs made on: " + "; ".join(
        [f"{name} ({_runs(n)})" for name, n in counts.items()]
        + ([f"not recorded for {_runs(unknown)} (made before fino recorded machines)"]
           if unknown else []))]
    if by_task:
        lines.append("- Cost: wall-clock minutes per run, median (range) by task: " + "; ".join(
            f"{task} {np.median(m):.1f} ({min(m):.1f}–{max(m):.1f}, n={len(m)})"
            for task, m in by_task.items()))
    return lines


def _shared_offline(runs: dict[tuple[str, str, int], Run]) -> list[str]:
    """A report line: which methods started their online phase from another's offline phase."""
    shared = shared_offline_methods(runs)
    if not shared:
        return []
    return ["- Shared offline phases (trained once, the same for the same seed): " + "; ".join(
        f"{method} from {source}'s ({_runs(n)})" for (method, source), n in shared.items())]


def plot_task(task: str, cells: dict[tuple[str, str], Cell], plan: Plan, out: Path,
              offline_steps: int, what: str = "evaluation score",
              unit: str = "success rate (%)") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for method in plan.methods:
        curves = cells[(task, method.name)].curves
        if curves:
            plot_curve(ax, curves, f"{method.name} (n={len(curves)})")
    mark_offline_end(ax, offline_steps)
    ax.set_title(f"{task}: {what}, mean ± 95% CI over seeds")
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def return_section(store: Store, plan: Plan, budget: str, cells: dict[tuple[str, str], Cell],
                   tasks: list[str], out_dir: Path, offline_steps: int) -> list[str]:
    """Report lines (and a PNG per task): the evaluation return of the tasks where no run
    succeeds, a secondary measure of partial progress (nothing when every task has a success)."""
    zero = [task for task in tasks if runs_all_zero(cells, task)]
    if not zero:
        return []
    # The secondary measure: the task's reward summed over an episode.
    returns = summarise(store, plan, budget, key=EVAL_RETURN)
    seeds = len(plan.seeds)
    methods = [m.name for m in plan.methods]
    lines = ["## Partial progress where no run succeeds (secondary)", "",
             "Where every run of a task ends both phases at 0% success, the evaluation return "
             "(the task's reward summed over an episode, mean over the evaluation episodes; "
             "OGBench singletask: −1 per step for each cube or button not in its goal state, "
             "mazes −1 per step until the goal; higher is better) can still show partial "
             "progress. It is not the paper's metric, and this reading was added after the "
             "success rates came out at 0: a hint of which way the methods lean, not a test of "
             "the paper's claims.", "",
             "| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for task in zero:
        row = [f"{_fmt(returns[(task, m)].offline, seeds)} → "
               f"{_fmt(returns[(task, m)].online, seeds)}" if (task, m) in returns else "–"
               for m in methods]
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    lines.append("")
    for task in zero:
        lines += [f"**{task}** (evaluation return)", ""]
        if all_equal(returns, task):
            lines += ["- every run has the same return at the end of both phases: no partial "
                      "progress to compare either.", ""]
            continue
        png = plot_task(task, returns, plan, out_dir / f"{_stem(task)}-return.png",
                        offline_steps, what="evaluation return", unit="return per episode")
        lines += [*claim_lines(returns, task), "", f"![{task}: return]({png.name})", ""]
    return lines


def write_report(store: Store, plan: Plan, budget: str, out_dir: Path,
                 dataset_dir: str | None = None) -> Path:
    """`out_dir/report.md` plus one PNG per task; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = summarise(store, plan, budget)
    runs = study_runs(store, plan, budget)
    planned = {(c.task.name, m, c.seed) for _, m, c in plan.configs(budget)}
    tasks = list(dict.fromkeys(t for t, _ in cells))
    methods = [m.name for m in plan.methods]
    seeds = len(plan.seeds)
    done_runs = [r for r in runs.values() if r.status == "done"]
    done_keys = {key for key, run in runs.items() if run.status == "done"}
    minutes = minutes_by_task(done_runs)
    missing_tasks = [t for t in dict.fromkeys(c.task.name for _, _, c in plan.configs(budget))
                     if t not in tasks]
    statuses: dict[str, int] = {}
    for run in runs.values():
        statuses[run.status] = statuses.get(run.status, 0) + 1
    any_run = next(iter(runs.values()), None)
    offline_steps = any_run.config["train"]["offline_steps"] if any_run else 0
    lines = [
        f"# Reproduction study `{plan.name}` (budget `{budget}`)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {store} by "
        f"`fino study report {plan.spec}`.",
        "",
        f"- Report written on: {machine()}",
        *_where_and_how_long(done_runs, run_machines(store, [r.id for r in done_runs]), minutes),
        *_shared_offline(runs),
        f"- Budget `{budget}` on preset `{plan.preset}`: " + ", ".join(
            f"`{s}`" for s in plan.budgets[budget]),
        f"- Seeds: {', '.join(map(str, plan.seeds))}; runs by status: "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        "- Score: success rate (%) over the evaluation episodes; offline = last evaluation of "
        "the offline phase, online = last evaluation; mean ± 95% Student-t CI over seeds.",
        f"- Coverage: {len(done_runs)} of the plan's {len(planned)} runs are done"
        + (f"; none done yet: {', '.join(missing_tasks)} (every method)"
           if missing_tasks else "")
        + _remaining([task for task, _, _ in planned - done_keys], minutes)
        + ". Cells with fewer seeds say n; a missing cell (–) has no finished run.",
        "",
        "## Datasets",
        "",
        *[f"- {task}: {dataset_rows(task, dataset_dir)}" for task in tasks],
        "",
        "## Methods",
        "",
        *[f"- `{m.name}`: {m.description}" for m in plan.methods],
        "",
        "## Results: offline -> online",
        "",
        "| task | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for task in tasks:
        row = [f"{_fmt(cells[(task, m)].offline, seeds)} → {_fmt(cells[(task, m)].online, seeds)}"
               for m in methods]
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    lines += ["", "## Per seed: offline -> online", ""]
    for task in tasks:
        lines += [f"**{task}**", "", "| method | " + " | ".join(
            f"seed {s}" for s in plan.seeds) + " |", "|---|" + "---|" * seeds]
        for m in methods:
            per_seed = cells[(task, m)].per_seed
            lines.append(f"| {m} | " + " | ".join(
                f"{_score(per_seed[s][0])} → {_score(per_seed[s][1])}" if s in per_seed
                else "–" for s in plan.seeds) + " |")
        lines.append("")
    lines += ["", "## The paper's qualitative claims, checked on these seeds", ""]
    for task in tasks:
        lines.append(f"**{task}**")
        lines.append("")
        if zeros := runs_all_zero(cells, task):
            lines += [f"- every run ({zeros}) ends both phases at 0%: at this budget the task "
                      "cannot rank the methods by success; nothing to compare (its evaluation "
                      "return: below).", ""]
            continue
        lines += [*claim_lines(cells, task), ""]
    lines += robust_section(cells, tasks, methods)
    lines += return_section(store, plan, budget, cells, tasks, out_dir, offline_steps)
    lines += ["## Learning curves", ""]
    for task in tasks:
        png = plot_task(task, cells, plan, out_dir / f"{_stem(task)}.png",
                        offline_steps)
        lines.append(f"![{task}]({png.name})")
    lines += ["", "What would settle the inconclusive comparisons: more seeds (the intervals "
              "shrink as 1/sqrt(n); each inconclusive line estimates how many, assuming the "
              "means and spreads seen so far hold) and the paper's budget (1M + 500k "
              f"steps) on a GPU machine (`fino study run {plan.spec} --budget paper`).", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
