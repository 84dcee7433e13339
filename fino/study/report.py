"""The study's report: the paper's table (offline -> online, mean ± 95% CI over seeds),
learning curves per task, and each qualitative claim checked against the numbers."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select

from fino.analysis.curves import align, band
from fino.analysis.stats import mean_ci, offline_and_final
from fino.store.db import Store
from fino.store.models import Run
from fino.store.queries import series_many
from fino.study.plan import Plan

KEY = "eval/score"


def study_tags(plan: Plan, budget: str, method: str) -> list[str]:
    return [f"study:{plan.name}", f"budget:{budget}", f"method:{method}"]


def study_runs(store: Store, plan: Plan, budget: str) -> dict[tuple[str, str, int], Run]:
    """The plan's runs in the store by (canonical task, method, seed)."""
    with store.read() as session:
        rows = session.execute(select(Run).where(
            Run.tags.contains(f"study:{plan.name}"))).scalars().all()
        session.expunge_all()
    out = {}
    for run in rows:
        tags = run.tag_list
        if f"budget:{budget}" not in tags:
            continue
        method = next((t.split(":", 1)[1] for t in tags if t.startswith("method:")), None)
        if method:
            out[(run.task, method, run.seed)] = run
    return out


@dataclass
class Cell:
    offline: tuple[float, float, int]
    online: tuple[float, float, int]
    curves: list


def summarise(store: Store, plan: Plan, budget: str) -> dict[tuple[str, str], Cell]:
    """(task, method) -> scores over the seeds whose runs are done."""
    runs = study_runs(store, plan, budget)
    done = {k: r for k, r in runs.items() if r.status == "done"}
    with store.read() as session:
        series = series_many(session, [r.id for r in done.values()], KEY)
    cells = {}
    tasks = list(dict.fromkeys(r.task for r in sorted(runs.values(), key=lambda r: r.id)))
    for task in tasks:
        for method in plan.methods:
            picked = [r for (t, m, _), r in done.items() if t == task and m == method.name]
            scores = [offline_and_final(zip(*(a.tolist() for a in series[r.id]), strict=True),
                                        r.config["train"]["offline_steps"])
                      for r in picked if r.id in series]
            cells[(task, method.name)] = Cell(
                offline=mean_ci([s.offline for s in scores if s.offline is not None]),
                online=mean_ci([s.final for s in scores if s.final is not None]),
                curves=[series[r.id] for r in picked if r.id in series])
    return cells


def _fmt(stat: tuple[float, float, int]) -> str:
    mean, half, n = stat
    if n == 0:
        return "–"
    return f"{mean:.1f} ± {half:.1f}" if n > 1 else f"{mean:.1f} (n=1)"


def _compare(a: tuple[float, float, int], b: tuple[float, float, int], name_a: str,
             name_b: str) -> str:
    """A verdict that never claims more than the intervals show."""
    (ma, ha, na), (mb, hb, nb) = a, b
    if na < 2 or nb < 2:
        return "not enough seeds"
    if ma - ha > mb + hb:
        return f"{name_a} higher (intervals disjoint)"
    if mb - hb > ma + ha:
        return f"{name_b} higher (intervals disjoint)"
    return f"inconclusive (intervals overlap; {name_a} {ma:.1f} vs {name_b} {mb:.1f})"


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{platform.system()} {platform.machine()}, {model}, {os.cpu_count()} logical "
            f"cores, Python {platform.python_version()}, torch {torch.__version__}")


def _dataset_rows(task: str, dataset_dir: str | None) -> str:
    from fino.backends.ogbench import dataset_files, parse_name

    try:
        env, dtype, _ = parse_name(task)
        train, _ = dataset_files(f"{env}-{dtype}-v0", dataset_dir)
        with np.load(train) as data:
            rows, episodes = len(data["terminals"]), int(data["terminals"].sum())
        return f"{rows - episodes:,} transitions ({episodes} episodes) in {train.name}"
    except (OSError, ValueError, KeyError):
        return "dataset not found on this machine"


def plot_task(task: str, cells: dict[tuple[str, str], Cell], plan: Plan, out: Path,
              offline_steps: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for method in plan.methods:
        curves = cells[(task, method.name)].curves
        aligned = align(curves) if curves else None
        if aligned is None:
            continue
        steps, matrix = aligned
        mean, half = band(matrix, 0.95)
        ax.plot(steps, mean, label=f"{method.name} (n={len(curves)})")
        if len(curves) > 1:
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
    ax.axvline(offline_steps, color="grey", linestyle="--", linewidth=1)
    ax.set_title(f"{task}: evaluation score, mean ± 95% CI over seeds")
    ax.set_xlabel("step (offline updates, then online env steps)")
    ax.set_ylabel("success rate (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(store: Store, plan: Plan, budget: str, out_dir: Path,
                 dataset_dir: str | None = None) -> Path:
    """`out_dir/report.md` plus one PNG per task; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = summarise(store, plan, budget)
    runs = study_runs(store, plan, budget)
    tasks = list(dict.fromkeys(t for t, _ in cells))
    methods = [m.name for m in plan.methods]
    statuses: dict[str, int] = {}
    for run in runs.values():
        statuses[run.status] = statuses.get(run.status, 0) + 1
    any_run = next(iter(runs.values()), None)
    offline_steps = any_run.config["train"]["offline_steps"] if any_run else 0
    lines = [
        f"# Reproduction study `{plan.name}` (budget `{budget}`)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {store} by "
        f"`fino study report {plan.path}`.",
        "",
        f"- Machine: {_machine()}",
        f"- Budget `{budget}` on preset `{plan.preset}`: " + ", ".join(
            f"`{s}`" for s in plan.budgets[budget]),
        f"- Seeds: {', '.join(map(str, plan.seeds))}; runs by status: "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        "- Score: success rate (%) over the evaluation episodes; offline = last evaluation of "
        "the offline phase, online = last evaluation; mean ± 95% Student-t CI over seeds.",
        "",
        "## Datasets",
        "",
        *[f"- {task}: {_dataset_rows(task, dataset_dir)}" for task in tasks],
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
        row = [f"{_fmt(cells[(task, m)].offline)} → {_fmt(cells[(task, m)].online)}"
               for m in methods]
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    lines += ["", "## The paper's qualitative claims, checked on these seeds", ""]
    checks = [("fino", "fql", "FINO ≥ FQL online"),
              ("fino", "fino-noise-only", "entropy guidance matters (FINO vs noise only)"),
              ("fino", "action-noise", "injected noise beats Gaussian action noise")]
    for task in tasks:
        lines.append(f"**{task}**")
        lines.append("")
        if (task, "fino") in cells and (task, "fql") in cells:
            lines.append("- offline scores FINO vs FQL (the paper: equal): " + _compare(
                cells[(task, "fino")].offline, cells[(task, "fql")].offline, "FINO", "FQL"))
        for a, b, claim in checks:
            if (task, a) in cells and (task, b) in cells:
                lines.append(f"- {claim}: " + _compare(cells[(task, a)].online,
                                                       cells[(task, b)].online, a, b))
        lines.append("")
    lines += ["## Learning curves", ""]
    for task in tasks:
        png = plot_task(task, cells, plan, out_dir / f"{task.split('-singletask')[0]}.png",
                        offline_steps)
        lines.append(f"![{task}]({png.name})")
    lines += ["", "What would settle the inconclusive comparisons: more seeds (the intervals "
              "shrink as 1/sqrt(n)) and the paper's budget (1M + 500k steps) on a GPU machine "
              f"(`fino study run {plan.path} --budget paper`).", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
