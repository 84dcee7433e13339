"""Presets: TOML files of hyperparameters with their source, one per task family.

A file has `source`, `tasks` (name prefixes it applies to), `[task]`, `[agent]`, `[train]`
(the paper's settings), named `[profiles.NAME]` with the same sections (e.g. `quick`), and
per-task `[overrides."TASK-PREFIX"]` sections. `--preset` names a profile of the task's family
file (`paper` = the file's base settings), a file in the presets folder, or a path
(`FILE.toml[:PROFILE]`). The files ship inside the package (fino.resources);
$FINO_PRESETS_DIR names another folder.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from fino.algo.config import MAX_INT, AgentConfig, ConfigError
from fino.backends.base import TaskConfig
from fino.backends.registry import canonical_task_name, resolve_backend
from fino.resources import PRESETS, data_dir
from fino.train.config import RunConfig, TrainConfig, build_section

BASE_PROFILE = "paper"
PRESETS_ENV = "FINO_PRESETS_DIR"
MAX_SEEDS = 1000  # seeds queued by one command: a typo (0-99999) must not queue a flood
_SECTIONS = ("task", "agent", "train")
_FILE_KEYS = {"source", "description", "tasks", "profiles", "overrides", *_SECTIONS}
_PROFILE_KEYS = {"source", "description", *_SECTIONS}
# Task keys a preset may set (the name and backend come from the command line).
_TASK_KEYS = {f.name for f in fields(TaskConfig)} - {"name", "backend"}


class PresetError(ConfigError):
    """A preset that cannot be used; the message names the file and the key."""


def presets_dir() -> Path:
    """$FINO_PRESETS_DIR, else the presets shipped with the package (a checkout's `presets/`).
    A folder that is missing is an error: runs must never fall back to defaults unseen."""
    env = os.environ.get(PRESETS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise PresetError(f"${PRESETS_ENV}={env}: no such folder")
        return path
    path = data_dir(PRESETS)
    if path is None:
        raise PresetError("the presets are missing: the installed package has no fino/_presets "
                          "(and this is no checkout with presets/); reinstall fino or set "
                          f"${PRESETS_ENV} to a folder of preset files")
    return path


def preset_files() -> list[Path]:
    """The preset files of presets_dir(); an empty folder is an error, like a missing one."""
    folder = presets_dir()
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise PresetError(f"no preset files (*.toml) in {folder}")
    return paths


@dataclass(frozen=True)
class Preset:
    """One parsed, validated preset file."""

    path: Path
    source: str
    description: str
    tasks: tuple[str, ...]
    base: dict[str, dict[str, Any]]
    profiles: dict[str, dict[str, dict[str, Any]]]
    overrides: dict[str, dict[str, dict[str, Any]]]

    def profile_names(self) -> list[str]:
        return [BASE_PROFILE, *self.profiles]

    def matches(self, task_name: str) -> bool:
        return any(task_name.startswith(prefix) for prefix in self.tasks)

    def sections(self, profile: str, task_name: str) -> dict[str, dict[str, Any]]:
        """Merged task/agent/train settings: base <- profile <- per-task override."""
        if profile != BASE_PROFILE and profile not in self.profiles:
            raise PresetError(f"{self.path}: no profile {profile!r}; it has "
                              f"{self.profile_names()}")
        layers = [self.base]
        if profile != BASE_PROFILE:
            layers.append(self.profiles[profile])
        layers += [o for prefix, o in self.overrides.items() if task_name.startswith(prefix)]
        merged: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
        for layer in layers:
            for section in _SECTIONS:
                merged[section].update(layer.get(section, {}))
        return merged


def load_preset(path: Path) -> Preset:
    """Parse and validate a preset file; every error names the file and the key."""
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise PresetError(f"preset file {path} does not exist") from exc
    except OSError as exc:
        raise PresetError(f"cannot read preset file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PresetError(f"{path}: not UTF-8 text (byte {exc.start} is "
                          f"{exc.object[exc.start]:#04x}); a preset is a UTF-8 TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from exc
    _keys(data, _FILE_KEYS, str(path))
    for key in ("source", "tasks"):
        if key not in data:
            raise PresetError(f"{path}: missing required key {key!r}")
    tasks = data["tasks"]
    if not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks):
        raise PresetError(f"{path}: 'tasks' must be a list of task-name prefixes")
    base = _sections(data, str(path))
    profiles = {}
    for name, profile in data.get("profiles", {}).items():
        where = f"{path} [profiles.{name}]"
        _keys(profile, _PROFILE_KEYS, where)
        profiles[name] = _sections(profile, where)
    overrides = {prefix: _sections(o, f'{path} [overrides."{prefix}"]')
                 for prefix, o in data.get("overrides", {}).items()}
    preset = Preset(path=path, source=str(data["source"]),
                    description=str(data.get("description", "")), tasks=tuple(tasks),
                    base=base, profiles=profiles, overrides=overrides)
    for profile in preset.profile_names():  # every combination must build a valid config
        for prefix in ["", *overrides]:
            merged = preset.sections(profile, prefix)
            where = f"{path} (profile {profile}{', ' + prefix if prefix else ''})"
            _build(merged, where)
    return preset


def _keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PresetError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _sections(table: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    out = {}
    for section in _SECTIONS:
        values = table.get(section, {})
        if not isinstance(values, dict):
            raise PresetError(f"{where}: [{section}] must be a table")
        if section == "task":
            _keys(values, _TASK_KEYS, f"{where} [task]")
        out[section] = dict(values)
    return out


def _build(merged: dict[str, dict[str, Any]], where: str) -> tuple[AgentConfig, TrainConfig]:
    try:
        agent = AgentConfig.from_dict(merged["agent"])
        train = build_section(TrainConfig, merged["train"], "train")
        TaskConfig(name="check", **merged["task"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise PresetError(f"{where}: {exc}") from exc
    return agent, train


def all_presets() -> list[Preset]:
    return [load_preset(p) for p in preset_files()]


def family_preset(task_name: str) -> Preset | None:
    """The preset file whose `tasks` prefixes match the canonical task name (longest wins)."""
    best: tuple[int, Path] | None = None
    for path in preset_files():
        preset = load_preset(path)
        for prefix in preset.tasks:
            if task_name.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), path)
    return load_preset(best[1]) if best else None


def find_preset(spec: str | None, task_name: str) -> tuple[Preset | None, str]:
    """(preset file, profile) for a `--preset` value and a canonical task name."""
    spec = spec or BASE_PROFILE
    path_part, _, profile = spec.partition(":")
    if path_part.endswith(".toml"):
        return load_preset(Path(path_part)), profile or BASE_PROFILE
    named = presets_dir() / f"{path_part}.toml"
    if named.exists():
        return load_preset(named), profile or BASE_PROFILE
    family = family_preset(task_name)
    if family is None:
        if spec == BASE_PROFILE:
            return None, BASE_PROFILE  # no preset for this task: the spec's defaults
        raise PresetError(f"no preset file in {presets_dir()} covers task {task_name!r}, so "
                          f"profile {spec!r} does not exist; give a file: --preset FILE.toml")
    if spec not in family.profile_names():
        raise PresetError(f"{family.path}: no profile {spec!r} for {task_name}; it has "
                          f"{family.profile_names()} (or name a preset file)")
    return family, spec


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set section.key=value` items (values parsed as TOML, bare words as strings)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in (*_SECTIONS, "run")}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise PresetError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. agent.alpha=300")
        if section not in out:
            raise PresetError(f"--set {item!r}: unknown section {section!r}; allowed: "
                              f"{sorted(out)}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[section][name] = value
    return out


def build_run_config(
    task: TaskConfig,
    *,
    preset: str | None = None,
    algo: str = "fino",
    seed: int = 0,
    overrides: list[str] | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Preset + `--set` overrides + explicit train options → a validated RunConfig whose task
    carries its canonical name and backend (aliases resolved; unknown tasks rejected)."""
    backend, task_name = canonical_task_name(task)
    task = replace(task, name=task_name, backend=backend)
    found, profile = find_preset(preset, task_name)
    merged = found.sections(profile, task_name) if found else {s: {} for s in _SECTIONS}
    sets = parse_overrides(overrides or [])
    for section in _SECTIONS:
        merged[section].update(sets[section])
    merged["train"].update({k: v for k, v in (train_overrides or {}).items() if v is not None})
    # Preset and --set first; what the command line names explicitly wins.
    task_values = {"name": task.name, "backend": task.backend, **merged["task"]}
    for key in ("task_id", "dataset_dir", "dataset"):
        if getattr(task, key) is not None:
            task_values[key] = getattr(task, key)
    label = f"{found.path.name}:{profile}" if found else "defaults"
    data = {"task": task_values, "agent": merged["agent"], "train": merged["train"],
            "algo": algo, "seed": seed, "preset": label, **sets["run"]}
    try:
        config = RunConfig.from_dict(data)
    except (ConfigError, TypeError) as exc:
        raise PresetError(f"{label}: {exc}") from exc
    check_task_options(config.task)
    return config


def check_task_options(task: TaskConfig) -> None:
    """The task's options against what its backend takes, before anything is queued (the
    backend itself checks them only when the run loads the task). The minari and gymnasium
    backends list their options in a module-level OPTIONS; ogbench passes them to the env as
    keyword arguments, which only building the env checks."""
    if not task.options:
        return
    backend = resolve_backend(task)
    allowed = getattr(sys.modules.get(type(backend).__module__), "OPTIONS", None)
    if allowed is not None:
        from fino.backends.minari import check_options

        check_options(task.options, tuple(allowed), backend.name)


def parse_seeds(spec: str) -> list[int]:
    """Seeds from `0-4`, `0,2,5` or `3` (in order, without repeats, at most MAX_SEEDS);
    ValueError otherwise."""
    seeds: list[int] = []
    try:
        for part in spec.split(","):
            if "-" in part.strip():
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo or lo < 0 or hi > MAX_INT or hi - lo >= MAX_SEEDS:
                    raise ValueError
                seeds += range(lo, hi + 1)
            else:
                seed = int(part)
                if not 0 <= seed <= MAX_INT:
                    raise ValueError
                seeds.append(seed)
    except ValueError:
        raise ValueError(f"seeds {spec!r}: use N, N-M or N,M,... with 0 <= N <= {MAX_INT} and "
                         f"at most {MAX_SEEDS} seeds") from None
    seeds = list(dict.fromkeys(seeds))
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"seeds {spec!r}: {len(seeds)} seeds; at most {MAX_SEEDS} at once")
    return seeds
