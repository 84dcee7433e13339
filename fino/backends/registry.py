"""Backends are plugins: entry points in the group `fino.backends` (see pyproject.toml)."""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points

from fino.backends.base import Backend, Task, TaskConfig, TaskError
from fino.backends.d4rl_names import no_minari_copy

GROUP = "fino.backends"


def backend_names() -> list[str]:
    """Names of the installed backends (nothing is imported)."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


@cache
def get_backend(name: str) -> Backend:
    """The backend plugin called `name`, imported and instantiated once."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise TaskError(f"unknown backend {name!r}; installed: {backend_names()}")
    try:
        return found[0].load()()
    except Exception as exc:  # a broken plugin must not hide the others
        raise TaskError(f"backend {name!r} failed to load: {type(exc).__name__}: {exc}") from exc


def resolve_backend(config: TaskConfig) -> Backend:
    """The backend named by the config, or (for `auto`) the one that owns the task name."""
    if config.backend != "auto":
        return get_backend(config.backend)
    # Before the backends are asked: OGBench would read antmaze-large-play-v0 as its own.
    d4rl = no_minari_copy(config.name)
    if d4rl:
        raise TaskError(d4rl)
    owners, broken, known = [], [], []
    for name in backend_names():
        try:
            backend = get_backend(name)
        except TaskError as exc:
            broken.append(str(exc))
            continue
        known += list(getattr(backend, "aliases", ()))
        if backend.owns(config.name):
            owners.append(backend)
    if not owners:
        close = difflib.get_close_matches(config.name, known, n=3)
        raise TaskError(
            f"unknown task {config.name!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + ": not an OGBench name or alias, nor a Minari id. "
            "For any other Gymnasium env use backend 'gymnasium' with a dataset "
            "(--backend gymnasium --dataset FILE.npz|MINARI_ID)."
            + (f" Not consulted: {'; '.join(broken)}" if broken else ""))
    return owners[0]


def canonical_task_name(config: TaskConfig) -> tuple[str, str]:
    """(backend name, canonical task name); raises TaskError for an unknown task."""
    backend = resolve_backend(config)
    return backend.name, backend.canonical_name(config)


def load_task(config: TaskConfig) -> Task:
    return resolve_backend(config).load(config)


def missing_dataset(config: TaskConfig) -> str | None:
    """Why the task's offline dataset is not on this machine, saying how to get it; None when
    it is (or the backend cannot tell). Looks at files only: nothing is loaded."""
    check = getattr(resolve_backend(config), "missing_dataset", None)
    return None if check is None else check(config)


def short_task_name(backend: str, task_name: str) -> str:
    """A short name of a canonical task for run names (the backend's `short_name`, e.g.
    cube-single-t1), else the task name with `/` as `_`."""
    try:
        short = getattr(get_backend(backend), "short_name", None)
        if short is not None:
            return short(task_name)
    except TaskError:
        pass
    return task_name.replace("/", "_")


def task_aliases() -> list[str]:
    """The short task names every installed backend accepts (for shell completion)."""
    names: set[str] = set()
    for name in backend_names():
        try:
            names.update(getattr(get_backend(name), "aliases", ()))
        except TaskError:
            continue
    return sorted(names)
