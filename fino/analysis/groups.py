"""Runs grouped as seeds of one experiment: same task, algorithm and config except the seed
(and settings that change only how fast a run goes), labelled by what tells the groups apart."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fino.store.models import Run

# Config fields that do not change what a run learns, only where and how fast it runs (a run
# started from a shared offline phase learns what it would have learnt alone).
EXECUTION_FIELDS = frozenset({
    "seed", "train.threads", "train.device", "train.compile", "train.matmul", "train.eval_envs",
    "train.log_interval", "train.save_interval", "task.dataset_dir", "from_offline",
    "train.keep_checkpoints", "train.sinks",
})
RUN_FIELDS = ("task", "algo", "preset", "backend", "study")  # columns of `runs`
MAX_LABEL_FIELDS = 3


class GroupError(ValueError):
    """A grouping field that no run has."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Hashable]:
    """{'agent.alpha': 10.0, 'train.balanced': False, ...}; lists become tuples."""
    flat: dict[str, Hashable] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = tuple(value) if isinstance(value, list) else value
    return flat


def experiment_fields(run: Run) -> dict[str, Hashable]:
    """The run's config without its seed and execution settings: equal for seeds of one
    experiment."""
    flat = flatten(run.config or {})
    flat.setdefault("algo", run.algo)
    flat.setdefault("task.name", run.task)
    return {k: v for k, v in flat.items() if k not in EXECUTION_FIELDS}


def field_value(run: Run, name: str) -> Hashable:
    if name in RUN_FIELDS:
        return getattr(run, name)
    return flatten(run.config or {}).get(name)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


@dataclass
class Group:
    """Runs that differ only by seed (when split) or share the `by` values."""

    by: dict[str, Hashable]
    runs: list[Run] = field(default_factory=list)
    settings: dict[str, Hashable] = field(default_factory=dict)  # what sets it apart

    def label(self, exclude: Iterable[str] = ()) -> str:
        """e.g. 'fino', 'fino exploration=action_noise', 'cube-single fql'."""
        skip = set(exclude)
        parts = [format_value(v) for k, v in self.by.items() if k not in skip and v is not None]
        names = _short_names(self.settings)
        shown = [f"{names[k]}={format_value(v)}" for k, v in self.settings.items()]
        if len(shown) > MAX_LABEL_FIELDS:
            shown = [*shown[:MAX_LABEL_FIELDS], f"+{len(shown) - MAX_LABEL_FIELDS} more"]
        if shown:
            parts.append(", ".join(shown))
        return " ".join(parts) or "all runs"

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)


def group_runs(runs: Sequence[Run], by: Sequence[str] = ("task", "algo"), *,
               split: bool = True) -> list[Group]:
    """Groups of `runs` by the `by` fields (run columns or config paths such as
    `train.balanced`); with `split`, runs whose configs differ beyond the seed (ablations, other
    presets) are separate groups, each labelled with the fields that differ."""
    if not runs:
        return []
    known = set(RUN_FIELDS).union(*(flatten(r.config or {}) for r in runs))
    unknown = [name for name in by if name not in known]
    if unknown:
        raise GroupError(f"cannot group by {', '.join(unknown)}; use run fields "
                         f"({', '.join(RUN_FIELDS)}) or config paths such as train.balanced")
    groups: dict[tuple[Hashable, ...], Group] = {}
    fields_of: dict[tuple[Hashable, ...], dict[str, Hashable]] = {}
    for run in runs:
        by_values = {name: field_value(run, name) for name in by}
        fields = experiment_fields(run)
        key = tuple(by_values.values())
        if split:
            key += tuple(sorted(fields.items(), key=lambda item: item[0]))
        group = groups.setdefault(key, Group(by=by_values))
        group.runs.append(run)
        fields_of.setdefault(key, fields)
    if split:
        _name_differences(groups, fields_of)
    return sorted(groups.values(),
                  key=lambda g: (*(_sort_key(v) for v in g.by.values()), g.label()))


def _name_differences(groups: dict[tuple[Hashable, ...], Group],
                      fields_of: dict[tuple[Hashable, ...], dict[str, Hashable]]) -> None:
    """Sets each group's `settings` to the fields that differ between groups sharing its `by`
    values; the same fields for every group, so columns line up across tasks."""
    siblings: dict[tuple[Hashable, ...], list[tuple[Hashable, ...]]] = {}
    for key, group in groups.items():
        siblings.setdefault(tuple(group.by.values()), []).append(key)
    differing: set[str] = set()
    for keys in siblings.values():
        if len(keys) < 2:
            continue
        paths = set().union(*(fields_of[k] for k in keys))
        differing |= {p for p in paths if len({fields_of[k].get(p) for k in keys}) > 1}
    # The preset first: it usually explains the other differences.
    ordered = sorted(differing, key=lambda p: (p != "preset", p))
    for key, group in groups.items():
        group.settings = {p: fields_of[key].get(p) for p in ordered}


def _short_names(settings: Mapping[str, Any]) -> dict[str, str]:
    """The last part of each path (noise_scale), the whole path where that is ambiguous."""
    leaves = [p.rsplit(".", 1)[-1] for p in settings]
    return {p: leaf if leaves.count(leaf) == 1 else p
            for p, leaf in zip(settings, leaves, strict=True)}


def _sort_key(value: Hashable) -> tuple[int, str]:
    return (value is None, format_value(value))
