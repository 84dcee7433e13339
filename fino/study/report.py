"""The study's report: the paper's table (offline -> online, mean ± 95% CI over seeds),
learning curves per task, each qualitative claim checked against the numbers, and the robust
aggregates across tasks (interquartile mean, probability of improvement)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select

from fino.analysis.curves import align, band
from fino.analysis.robust import (
    DEFAULT_REPS,
    DEFAULT_SEED,
    MIN_RUNS,
    Interval,
    all_tie,
    improvement_interval,
    iqm_interval,
)
from fino.analysis.stats import mean_ci, offline_and_final, seeds_to_resolve, welch_difference
from fino.provenance import MACHINE_MARK, machine, machine_of
from fino.store.db import Store
from fino.store.models import Event, Run
from fino.store.queries import series_many
from fino.study.plan import Plan

KEY = "eval/score"
# Secondary measure where no run succeeds: the task's reward summed over an episode.
RETURN_KEY = "eval/return"


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
    per_seed: dict[int, tuple[float | None, float | None]]  # seed -> (offline, final)


def summarise(store: Store, plan: Plan, budget: str,
              key: str = KEY) -> dict[tuple[str, str], Cell]:
    """(task, method) -> one evaluation metric (the score by default) over the seeds whose runs
    are done: offline = its last value of the offline phase, online = its last value."""
    runs = study_runs(store, plan, budget)
    done = {k: r for k, r in runs.items() if r.status == "done"}
    with store.read() as session:
        series = series_many(session, [r.id for r in done.values()], key)
    cells = {}
    with_results = {r.task for r in done.values()}
    tasks = [t for t in dict.fromkeys(c.task.name for _, _, c in plan.configs(budget))
             if t in with_results]  # in the plan's order
    for task in tasks:
        for method in plan.methods:
            picked = sorted((r for (t, m, _), r in done.items() if t == task and m == method.name),
                            key=lambda r: r.seed)
            scores = {r.seed: offline_and_final(
                zip(*(a.tolist() for a in series[r.id]), strict=True),
                r.config["train"]["offline_steps"]) for r in picked if r.id in series}
            cells[(task, method.name)] = Cell(
                offline=mean_ci([s.offline for s in scores.values() if s.offline is not None]),
                online=mean_ci([s.final for s in scores.values() if s.final is not None]),
                curves=[series[r.id] for r in picked if r.id in series],
                per_seed={seed: (s.offline, s.final) for seed, s in scores.items()})
    return cells


# Methods whose offline phase is trained and evaluated alike (the same η, the same best-of-K
# greedy evaluation): they differ only online. FQL is left out: its evaluation takes one sample.
OFFLINE_ALIKE = {"injected": ("fino", "fino-noise-only", "fino-balanced"),
                 "none": ("action-noise",)}


def offline_per_seed(cells: dict[tuple[str, str], Cell], task: str,
                     methods: tuple[str, ...]) -> list[float]:
    """One offline score per seed: the mean over those methods' finished runs of that seed, so
    that runs sharing (or repeating) an offline phase never count as extra seeds."""
    by_seed: dict[int, list[float]] = {}
    for method in methods:
        cell = cells.get((task, method))
        for seed, (offline, _) in (cell.per_seed.items() if cell else ()):
            if offline is not None:
                by_seed.setdefault(seed, []).append(offline)
    return [float(np.mean(v)) for _, v in sorted(by_seed.items())]


def _fmt(stat: tuple[float, float, int], planned: int = 0) -> str:
    """mean ± 95% CI; the number of seeds when fewer than planned."""
    mean, half, n = stat
    if n == 0:
        return "–"
    text = f"{mean:.1f} ± {half:.1f}" if n > 1 else f"{mean:.1f}"
    return text + (f" (n={n})" if n < planned or n == 1 else "")


def _scores(cell: Cell, which: int) -> list[float]:
    """The seeds' offline (0) or final (1) scores."""
    return [v[which] for v in cell.per_seed.values() if v[which] is not None]


def _gains(cell: Cell) -> list[float]:
    """Each seed's online − offline score (what fine-tuning added)."""
    return [on - off for off, on in cell.per_seed.values() if off is not None and on is not None]


def _seed_pairs(cells: dict[tuple[str, str], Cell], task: str
                ) -> list[tuple[float | None, float | None]]:
    """The (offline, online) end values of every run of the task."""
    return [pair for (t, _), cell in cells.items() if t == task
            for pair in cell.per_seed.values()]


def _end_values(pairs: list[tuple[float | None, float | None]]) -> list[float]:
    """Every recorded value of those pairs, missing ones left out."""
    return [v for pair in pairs for v in pair if v is not None]


def runs_all_zero(cells: dict[tuple[str, str], Cell], task: str) -> int:
    """How many runs the task has when every one ends both phases at 0%, else 0."""
    pairs = _seed_pairs(cells, task)
    ends = _end_values(pairs)
    return len(pairs) if ends and not any(ends) else 0


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _minutes(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds() / 60


def _compare(a: list[float], b: list[float], name_a: str, name_b: str) -> str:
    """The difference of means with its 95% Welch interval, and a verdict that never claims
    more than that interval shows."""
    if len(a) < 2 or len(b) < 2:
        return f"not enough seeds ({name_a} n={len(a)}, {name_b} n={len(b)})"
    if len(set(a) | set(b)) == 1:
        return (f"{name_a} and {name_b} are {a[0]:.1f} on every seed (n={len(a)}/{len(b)}): "
                "nothing to compare")
    diff, half, _ = welch_difference(a, b)
    text = (f"{name_a} {np.mean(a):.1f} vs {name_b} {np.mean(b):.1f}, difference "
            f"{diff:+.1f} ± {half:.1f} (95% Welch CI, n={len(a)}/{len(b)})")
    if diff - half > 0:
        return f"{name_a} higher: {text}"
    if diff + half < 0:
        return f"{name_b} higher: {text}"
    needed = seeds_to_resolve(a, b)
    if needed is None:
        hint = "no number of seeds resolves a zero difference" if diff == 0 else (
            "more than 1000 seeds per method would be needed at this spread")
    else:
        hint = (f"about {needed} seeds per method would resolve a difference this large at "
                "this spread")
    return f"inconclusive (the interval holds 0; {hint}): {text}"


CLAIMS = [("fino", "fql", "FINO ≥ FQL online"),
          ("fino", "fino-noise-only", "entropy guidance matters (FINO vs noise only)"),
          ("fino", "action-noise", "injected noise beats Gaussian action noise")]


def claim_lines(cells: dict[tuple[str, str], Cell], task: str) -> list[str]:
    """The paper's claims (and the comparisons that explain them) on one task, each judged by
    the 95% Welch interval of the difference over seeds, for whatever metric `cells` holds."""
    lines = []
    if (task, "fino") in cells and (task, "fql") in cells:
        lines.append("- offline scores FINO vs FQL (the paper: equal): " + _compare(
            _scores(cells[(task, "fino")], 0), _scores(cells[(task, "fql")], 0), "fino", "fql"))
    for a, b, claim in CLAIMS:
        if (task, a) in cells and (task, b) in cells:
            lines.append(f"- {claim}: " + _compare(_scores(cells[(task, a)], 1),
                                                   _scores(cells[(task, b)], 1), a, b))
    # Where offline scores differ, what fine-tuning added is the fairer reading of "online".
    for a, b in (("fino", "fql"), ("fino-balanced", "fino")):
        if (task, a) in cells and (task, b) in cells:
            lines.append(f"- online gain (online − offline), {a} vs {b}: " + _compare(
                _gains(cells[(task, a)]), _gains(cells[(task, b)]), a, b))
    injected = offline_per_seed(cells, task, OFFLINE_ALIKE["injected"])
    plain = offline_per_seed(cells, task, OFFLINE_ALIKE["none"])
    if injected and plain:
        lines.append(
            "- offline phase, injected noise vs none, evaluated alike (best of K candidates; "
            "per seed the mean of fino, noise-only and balanced runs vs action-noise, whose "
            "offline phase is FQL's training): " + _compare(injected, plain, "injected", "none"))
    if (task, "fql") in cells and (task, "action-noise") in cells:
        lines.append(
            "- evaluation rule, same offline training (η=0): one sample (fql) vs the best "
            "of K candidates by Q (action-noise, as FINO evaluates): " + _compare(
                _scores(cells[(task, "fql")], 0), _scores(cells[(task, "action-noise")], 0),
                "fql", "action-noise"))
    if (task, "fino-balanced") in cells and (task, "fino") in cells:
        lines.append("- balanced 50/50 sampling vs uniform (not a claim of the paper; its "
                     "suggested remedy for distribution shift): " + _compare(
                         _scores(cells[(task, "fino-balanced")], 1),
                         _scores(cells[(task, "fino")], 1), "fino-balanced", "fino"))
    return lines


def _interval(interval: Interval | None, digits: int = 1) -> str:
    """'70.0 [60.0, 80.0]', or why there is none."""
    if interval is None:
        return f"– (needs ≥ {MIN_RUNS} runs on a task)"
    return f"{interval.estimate:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def _left_out(interval: Interval | None) -> str:
    if interval is None or not interval.left_out:
        return ""
    return f"; {interval.left_out} task(s) with fewer than {MIN_RUNS} runs left out"


def robust_section(cells: dict[tuple[str, str], Cell], tasks: list[str],
                   methods: list[str]) -> list[str]:
    """Report lines: per method the IQM of all runs × tasks with its 95% stratified-bootstrap
    CI, and P(X > Y) for each pair the claims compare (as rliable defines them)."""

    def by_task(method: str, which: int) -> list[list[float]]:
        return [_scores(cells[(t, method)], which) if (t, method) in cells else []
                for t in tasks]

    lines = ["## Robust aggregates (rliable)", "",
             "Interquartile mean (IQM: the mean of the middle 50% of all runs × tasks, a task "
             "with more runs weighing more) with its 95% stratified-bootstrap CI "
             f"({DEFAULT_REPS} resamples of the seeds within each task, seed {DEFAULT_SEED}), "
             "and the probability of improvement P(X > Y): the chance that a run of X scores "
             "above a run of Y on a task (ties count half), averaged over the tasks; as "
             "rliable defines them (Agarwal et al. 2021). One outlier seed moves neither much; "
             "where every run scores 0, the IQM is 0 [0, 0] and P(X > Y) is 0.5, a tie that "
             "says nothing either way.", "",
             "| method | offline IQM [95% CI] | online IQM [95% CI] | n |", "|---|---|---|---|"]
    for method in methods:
        offline = iqm_interval(by_task(method, 0))
        online = iqm_interval(by_task(method, 1))
        runs = f"{online.runs} runs, {online.tasks} task(s)" if online else "–"
        lines.append(f"| {method} | {_interval(offline)} | {_interval(online)} | {runs}"
                     f"{_left_out(online)} |")
    lines.append("")
    pairs = [(a, b, 1) for a, b, _ in CLAIMS]
    if "fino" in methods and "fql" in methods:
        pairs.insert(0, ("fino", "fql", 0))  # the paper: equal offline
    for a, b, which in pairs:
        if a not in methods or b not in methods:
            continue
        x, y = by_task(a, which), by_task(b, which)
        p = improvement_interval(x, y)
        text = f"- P({a} > {b}), {('offline', 'online')[which]} scores: {_interval(p, 2)}"
        if p is not None:
            text += (f" (n={p.runs}/{p.runs_y} runs over {p.tasks} task(s)"
                     f"{_left_out(p)})")
            if all_tie(x, y):
                text += "; every run ties (all the same score): no evidence either way"
        lines.append(text)
    return [*lines, ""]


def all_equal(cells: dict[tuple[str, str], Cell], task: str) -> bool:
    """Whether every offline and online value of the task's runs is the same number."""
    return len(set(_end_values(_seed_pairs(cells, task)))) <= 1


def return_section(store: Store, plan: Plan, budget: str, cells: dict[tuple[str, str], Cell],
                   tasks: list[str], out_dir: Path, offline_steps: int) -> list[str]:
    """Report lines (and a PNG per task): the evaluation return of the tasks where no run
    succeeds, a secondary measure of partial progress (nothing when every task has a success)."""
    zero = [task for task in tasks if runs_all_zero(cells, task)]
    if not zero:
        return []
    returns = summarise(store, plan, budget, key=RETURN_KEY)
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


def _stem(task: str) -> str:
    """A task's file name stem: cube-double-play-singletask-task2-v0 -> cube-double-play."""
    return task.split("-singletask")[0]


def run_machines(store: Store, run_ids: list[int]) -> dict[int, str]:
    """The machine each run last started on, from its events (runs made before fino recorded
    machines have none)."""
    with store.read() as session:
        rows = session.execute(select(Event.run_id, Event.message).where(
            Event.run_id.in_(run_ids), Event.message.contains(MACHINE_MARK)).order_by(
            Event.id)).all()
    return {run_id: name for run_id, message in rows if (name := machine_of(message))}


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def minutes_by_task(runs: list[Run]) -> dict[str, list[float]]:
    """Wall-clock minutes of each finished run, by task."""
    by_task: dict[str, list[float]] = {}
    for run in runs:
        if (minutes := _minutes(run)) is not None:
            by_task.setdefault(run.task, []).append(minutes)
    return by_task


def remaining_cost(tasks: list[str], minutes: dict[str, list[float]]) -> tuple[float, int]:
    """Minutes the runs still to do (one task each) would take at the median cost of their
    task's finished runs, and how many of them have no finished run to estimate from."""
    medians = {task: float(np.median(m)) for task, m in minutes.items() if m}
    return (sum(medians.get(task, 0.0) for task in tasks),
            sum(task not in medians for task in tasks))


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


def shared_offline_methods(runs: dict[tuple[str, str, int], Run]) -> Counter[tuple[str, str]]:
    """(method, method whose offline phase it started from) -> number of runs."""
    method_of = {str(Path(run.run_dir)): key[1] for key, run in runs.items() if run.run_dir}
    shared: Counter[tuple[str, str]] = Counter()
    for (_, method, _), run in runs.items():
        path = (run.config or {}).get("from_offline")
        if path:
            shared[method, method_of.get(str(Path(path).parent), "a run outside the study")] += 1
    return shared


def _shared_offline(runs: dict[tuple[str, str, int], Run]) -> list[str]:
    """A report line: which methods started their online phase from another's offline phase."""
    shared = shared_offline_methods(runs)
    if not shared:
        return []
    return ["- Shared offline phases (trained once, the same for the same seed): " + "; ".join(
        f"{method} from {source}'s ({_runs(n)})" for (method, source), n in shared.items())]


def _dataset_rows(task: str, dataset_dir: str | None) -> str:
    from fino.backends.base import NPZ_READ_ERRORS, error_text
    from fino.backends.ogbench import dataset_files, parse_name

    try:
        env, dtype, _ = parse_name(task)
        train, _ = dataset_files(f"{env}-{dtype}-v0", dataset_dir)
        if not train.exists():
            return "dataset not found on this machine"
        with np.load(train, allow_pickle=False) as data:
            rows, episodes = len(data["terminals"]), int(data["terminals"].sum())
        return f"{rows - episodes:,} transitions ({episodes} episodes) in {train.name}"
    except (KeyError, *NPZ_READ_ERRORS) as exc:
        return f"dataset unreadable on this machine ({error_text(exc)})"


def plot_task(task: str, cells: dict[tuple[str, str], Cell], plan: Plan, out: Path,
              offline_steps: int, what: str = "evaluation score",
              unit: str = "success rate (%)") -> Path:
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
    ax.set_title(f"{task}: {what}, mean ± 95% CI over seeds")
    ax.set_xlabel("step (offline updates, then online env steps)")
    ax.set_ylabel(unit)
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
