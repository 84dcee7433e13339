"""A study plan from TOML: tasks, methods (named config changes), seeds and a budget.

Plans that ship with the package (benchmarks/studies/NAME.toml in the repository) are named by
NAME alone, e.g. `fino study run repro`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fino.backends.base import TaskConfig
from fino.resources import STUDIES, data_dir
from fino.train.config import RunConfig
from fino.train.presets import build_run_config, parse_seeds


class PlanError(ValueError):
    """A plan file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Method:
    name: str
    algo: str  # fino | fql
    sets: tuple[str, ...]  # --set items that make this method
    description: str


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path
    tasks: tuple[str, ...]
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    preset: str
    budgets: dict[str, tuple[str, ...]]  # budget name -> --set items (cpu, paper)
    episodes: int  # dataset episodes to generate when missing

    @property
    def spec(self) -> str:
        """How a command names this plan: its name when it is a packaged plan, else its path."""
        packaged = packaged_plans().get(self.path.stem) == self.path
        return self.path.stem if packaged else str(self.path)

    def configs(self, budget: str) -> list[tuple[str, str, RunConfig]]:
        """(task, method, config) for every run of the plan at `budget`."""
        if budget not in self.budgets:
            raise PlanError(f"{self.path}: no budget {budget!r}; it has {sorted(self.budgets)}")
        out = []
        for task in self.tasks:
            for method in self.methods:
                for seed in self.seeds:
                    sets = [*self.budgets[budget], *method.sets]
                    config = build_run_config(TaskConfig(task), preset=self.preset,
                                              algo=method.algo, seed=seed, overrides=sets)
                    out.append((task, method.name, config))
        return out


def offline_leaders(configs: list[tuple[str, str, RunConfig]]) -> dict[tuple[str, str], str]:
    """(task, method) -> the method whose offline phase it can start from: the first method of
    the plan (in its order) that trains the same offline phase on that task, for every method
    that is not that first one itself. Judged on each pair's lowest seed (seeds do not change
    which settings differ)."""
    from fino.train.offline_start import offline_difference

    first: dict[tuple[str, str], RunConfig] = {}
    for task, method, config in configs:
        if (task, method) not in first or config.seed < first[task, method].seed:
            first[task, method] = config
    leaders: dict[tuple[str, str], str] = {}
    for (task, method), config in first.items():
        for (other_task, other), source in first.items():
            if other_task != task:
                continue
            if other == method:
                break
            if offline_difference(source.to_dict(), config.to_dict()) is None:
                leaders[task, method] = other
                break
    return leaders


def select_part(plan: Plan, configs: list[tuple[str, str, RunConfig]], tasks: list[str],
                methods: list[str]) -> list[tuple[str, str, RunConfig]]:
    """The runs of `configs` on `tasks` with `methods` (empty: all); unknown names refused."""
    unknown = sorted(set(tasks) - set(plan.tasks))
    if unknown:
        raise PlanError(f"{plan.path}: no task(s) {unknown}; the plan has {list(plan.tasks)}")
    names = [m.name for m in plan.methods]
    unknown = sorted(set(methods) - set(names))
    if unknown:
        raise PlanError(f"{plan.path}: no method(s) {unknown}; the plan has {names}")
    return [(task, method, config) for task, method, config in configs
            if (not tasks or task in tasks) and (not methods or method in methods)]


def packaged_plans() -> dict[str, Path]:
    """name -> file of the plans that ship with the package."""
    folder = data_dir(STUDIES)
    return {p.stem: p for p in sorted(folder.glob("*.toml"))} if folder else {}


def resolve_plan(spec: Path) -> Path:
    """`spec` itself when it is a file or a path, else (a bare name) the packaged plan it names."""
    if spec.is_file() or spec.suffix or len(spec.parts) != 1:
        return spec
    shipped = packaged_plans()
    if str(spec) not in shipped:
        raise PlanError(f"study plan {spec} does not exist: give a plan file or the name of one "
                        f"that ships with fino ({', '.join(shipped) or 'none found'})")
    return shipped[str(spec)]


def load_plan(path: Path) -> Plan:
    """The plan in `path`, or the packaged plan named `path` (see resolve_plan)."""
    path = resolve_plan(path)
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PlanError(f"study plan {path} does not exist") from exc
    except OSError as exc:
        raise PlanError(f"cannot read study plan {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from exc
    allowed = {"name", "tasks", "seeds", "preset", "episodes", "budgets", "methods"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PlanError(f"{path}: unknown key(s) {unknown}; allowed {sorted(allowed)}")
    for key in ("name", "tasks", "methods", "budgets"):
        if key not in data:
            raise PlanError(f"{path}: missing {key!r}")
    methods = []
    for name, spec in data["methods"].items():
        extra = sorted(set(spec) - {"algo", "set", "description"})
        if extra:
            raise PlanError(f"{path} [methods.{name}]: unknown key(s) {extra}")
        methods.append(Method(name, spec.get("algo", "fino"), tuple(spec.get("set", [])),
                              spec.get("description", "")))
    try:
        seeds = tuple(parse_seeds(str(data.get("seeds", "0-4"))))
    except ValueError as exc:
        raise PlanError(f"{path}: {exc}") from exc
    plan = Plan(name=data["name"], path=path, tasks=tuple(data["tasks"]),
                methods=tuple(methods), seeds=seeds, preset=data.get("preset", "quick"),
                budgets={k: tuple(v) for k, v in data["budgets"].items()},
                episodes=int(data.get("episodes", 100)))
    for budget in plan.budgets:  # every run must build: fail before anything is queued
        try:
            plan.configs(budget)
        except ValueError as exc:
            raise PlanError(f"{path} (budget {budget}): {exc}") from exc
    return plan
