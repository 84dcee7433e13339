"""What a user can do to runs from the dashboard, as plain functions (no Textual): the only
writes the dashboard makes, each on an explicit action, plus the `fino` commands that write
files (export, PNG plot), run as child processes so that the dashboard never blocks on them."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fino.algo.config import MAX_INT
from fino.config import RunConfig
from fino.store import queue
from fino.store.db import Store
from fino.store.text import RunNameError, TagError, check_tag

if TYPE_CHECKING:
    from fino.config import TaskConfig

CLI_TIMEOUT_S = 600


class ActionError(RuntimeError):
    """An action that could not be done; the message says why, in the user's terms."""


def cli(*args: str) -> list[str]:
    """A `fino` command line with this interpreter (the dashboard's own environment)."""
    return [sys.executable, "-m", "fino.cli.main", *args]


def describe(outcome: dict[int, queue.Change], refused: str) -> str:
    """'run 3: cancelled; run 4: stopping'; `refused` says a run's status forbade it."""
    return "; ".join(f"run {run_id}: " + (refused.format(change.status)
                                           if change.outcome is queue.Outcome.REFUSED
                                           else change.outcome.value)
                     for run_id, change in outcome.items())


def cancel(store: Store, run_ids: Sequence[int]) -> str:
    return describe(queue.request_cancel(store, run_ids), "already {}")


def retry(store: Store, run_ids: Sequence[int]) -> str:
    return describe(queue.retry(store, run_ids), "is {}: not retried")


def remove(store: Store, run_ids: Sequence[int]) -> str:
    try:
        removed = queue.remove(store, list(run_ids))
    except queue.QueueError as exc:
        raise ActionError(str(exc)) from None
    return f"removed {len(removed)} run(s): {id_spec(removed)}"


# ---- tags --------------------------------------------------------------------------------------


def parse_tag_changes(spec: str) -> tuple[set[str], set[str]]:
    """'+paper -old new' → ({'paper', 'new'}, {'old'}); commas separate as spaces do."""
    add, drop = set(), set()
    for word in spec.replace(",", " ").split():
        name = word.lstrip("+-")
        try:
            check_tag(name)
        except TagError as exc:
            raise ActionError(str(exc)) from None
        (drop if word.startswith("-") else add).add(name)
    if not add and not drop:
        raise ActionError("no tags given: write +tag to add, -tag to remove")
    return add, drop


def change_tags(store: Store, run_ids: Sequence[int], add: Iterable[str],
                drop: Iterable[str]) -> str:
    """Add and remove tags of runs (one transaction, each change in the events)."""
    try:
        outcome = queue.change_tags(store, run_ids, add, drop)
    except (queue.QueueError, TagError) as exc:
        raise ActionError(str(exc)) from None
    changed = [i for i, change in outcome.items()
               if change.outcome is queue.Outcome.RETAGGED]
    if not changed:
        return "tags unchanged"
    return f"tags changed on run(s) {id_spec(changed)}"


# ---- queueing runs -----------------------------------------------------------------------------


class FormError(ValueError):
    """A field of the queue form that cannot be used; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class QueueRequest:
    """The queue form's fields, as `fino queue add` takes them."""

    task: str
    preset: str = ""
    algo: str = "fino"
    seeds: str = "0"
    overrides: str = ""  # SECTION.KEY=VALUE items, split as a shell would
    tags: str = ""
    priority: str = "0"
    backend: str = "auto"
    dataset: str = ""
    name: str = ""  # one run: its name; several: NAME-sSEED; empty: the default names


def parse_seeds(spec: str) -> list[int]:
    """`0-4`, `0,2,5` or `3` (the rules of `fino queue add --seeds`)."""
    from fino.train.presets import parse_seeds as parse

    try:
        return parse(spec)
    except ValueError as exc:
        raise FormError("seeds", str(exc)) from None


def build_configs(request: QueueRequest) -> list[RunConfig]:
    """One validated config per seed, exactly as `fino queue add` builds them."""
    from fino.config import TaskConfig, TaskError
    from fino.train.presets import PresetError, build_run_config

    if not request.task.strip():
        raise FormError("task", "a task is required, e.g. cube-single")
    if request.algo not in ("fino", "fql"):
        raise FormError("algo", f"algo {request.algo!r}: fino or fql")
    seeds = parse_seeds(request.seeds)
    try:
        overrides = shlex.split(request.overrides)
    except ValueError as exc:
        raise FormError("overrides", f"overrides: {exc}") from None
    task = TaskConfig(name=request.task.strip(), backend=request.backend.strip() or "auto",
                      dataset=request.dataset.strip() or None)
    try:
        return [build_run_config(task, preset=request.preset.strip() or None,
                                 algo=request.algo, seed=seed, overrides=overrides)
                for seed in seeds]
    except TaskError as exc:
        raise FormError("task", str(exc)) from None
    except (PresetError, ValueError) as exc:
        raise FormError(_at_fault(request, task, overrides), str(exc)) from None


def _at_fault(request: QueueRequest, task: TaskConfig, overrides: list[str]) -> str:
    """The field to blame for a config that does not build: the overrides when the preset
    builds without them (an unknown key such as agent.alpa=10), else the preset."""
    from fino.train.presets import build_run_config

    if not request.preset.strip() or not overrides:
        return "overrides" if overrides else "preset"
    try:
        build_run_config(task, preset=request.preset.strip(), algo=request.algo)
    except ValueError:
        return "preset"
    return "overrides"


def queue_runs(store: Store, request: QueueRequest, runs_dir: Path = Path("runs")) -> list[int]:
    """Validate everything, then queue one run per seed; returns their ids."""
    configs = build_configs(request)
    try:
        priority = int(request.priority or 0)
        if abs(priority) > MAX_INT:
            raise ValueError
    except ValueError:
        raise FormError("priority", f"priority {request.priority!r}: a whole number, at most "
                                    f"{MAX_INT} either way") from None
    try:
        add, _ = parse_tag_changes(request.tags) if request.tags.strip() else (set(), set())
    except ActionError as exc:
        raise FormError("tags", str(exc)) from None
    return queue.add_runs(store, configs, runs_dir=runs_dir, priority=priority, tags=add,
                          names=run_names(request.name.strip(), configs))


def run_names(name: str, configs: Sequence[RunConfig]) -> list[str] | None:
    """The form's name for one run, NAME-sSEED for several; None: the default names."""
    if not name:
        return None
    try:
        return queue.given_names(name, configs)
    except RunNameError as exc:
        raise FormError("name", str(exc)) from None


# ---- files: export and the PNG plot ------------------------------------------------------------


def id_spec(run_ids: Iterable[int]) -> str:
    """[3, 4, 5, 9] → '3-5,9' (what `fino` commands take)."""
    ids = sorted(set(run_ids))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def run_cli(args: Sequence[str], db_url: str) -> str:
    """Run a `fino` command against this database; its last output line (the file written),
    or ActionError with its error line."""
    env = {**os.environ, "FINO_DB_URL": db_url}  # not on the command line: it may hold a password
    try:
        done = subprocess.run(cli(*args), env=env, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActionError(f"fino {args[0]}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "error" in line.lower()),
                      lines[-1] if lines else f"exit code {done.returncode}")
        raise ActionError(f"fino {args[0]}: {reason.strip()}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def export_metrics(db_url: str, run_ids: Sequence[int], out: Path, fmt: str,
                   keys: Sequence[str] = ()) -> Path:
    args = ["export", id_spec(run_ids), "--format", fmt, "--out", str(out)]
    for key in keys:
        args += ["--key", key]
    run_cli(args, db_url)
    return out


def write_plot(db_url: str, run_ids: Sequence[int], key: str, out: Path, grouped: bool) -> Path:
    run_cli(["plot", id_spec(run_ids), "--key", key, "--out", str(out),
             "--group" if grouped else "--no-group"], db_url)
    return out


def plot_path(run_ids: Sequence[int], key: str, folder: Path = Path("plots")) -> Path:
    return folder / f"runs-{id_spec(run_ids).replace(',', '_')}-{key.replace('/', '-')}.png"


def open_file(path: Path) -> bool:
    """Open a file in the desktop's viewer, where there is one (xdg-open and a display)."""
    opener = shutil.which("xdg-open")
    if not opener or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    subprocess.Popen([opener, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    return True
