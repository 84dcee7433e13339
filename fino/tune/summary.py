"""A read-only snapshot of a tuning study (trials, counts, best, history) for `fino tune show`
and the dashboard's tuning view. Reading never writes to Optuna's storage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import TrialState

from fino.status import RunStatus

if TYPE_CHECKING:
    from fino.store.db import Store


class TrialView(StrEnum):
    """A trial as `fino tune show` and the dashboard show it: Optuna's state, or, for a trial
    in flight, where its runs are (see `trial_state`)."""

    COMPLETE = "complete"
    RUNNING = "running"
    PRUNED = "pruned"
    FAIL = "fail"
    WAITING = "waiting"
    QUEUED = "queued"  # its runs wait for a worker
    PARKED = "parked"  # Ctrl-C cancelled its queued runs; the same `fino tune` requeues them
    # A run of the trial failed, was lost or cancelled: the tuner tells Optuna at its next check.
    FAILED = "failed"
    LOST = "lost"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: TrialView
    value: float | None  # the objective (mean final score over the trial's seeds)
    params: dict[str, Any]
    run_ids: tuple[int, ...]
    last_report: tuple[int, float] | None  # (step, mean score) last reported to the pruner


@dataclass(frozen=True)
class StudySnapshot:
    name: str
    trials: tuple[TrialRow, ...]
    counts: dict[TrialView, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # task, preset, seeds, key, space

    @property
    def best(self) -> TrialRow | None:
        """The complete trial of highest value (the study maximises)."""
        complete = [t for t in self.trials if t.state == TrialView.COMPLETE and t.value is not None]
        return max(complete, key=lambda t: t.value) if complete else None  # type: ignore

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(trial numbers, values, best so far) of the complete trials, in trial order."""
        done = [t for t in self.trials if t.state == TrialView.COMPLETE and t.value is not None]
        numbers = np.array([t.number for t in done], dtype=float)
        values = np.array([t.value for t in done], dtype=float)
        return numbers, values, np.maximum.accumulate(values) if len(values) else values

    def best_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """The best so far as a staircase (it holds until a trial beats it), for plotting."""
        numbers, _, best = self.history()
        if not len(numbers):
            return numbers, best
        xs = np.repeat(numbers, 2)[1:]
        ys = np.repeat(best, 2)[:-1]
        return xs, ys


def open_readonly(spec: str) -> optuna.storages.BaseStorage:
    """Optuna's storage for reading: a journal file or SQLite database must exist (reading
    never creates one); an RDB URL is opened without creating tables."""
    if "://" in spec:
        from sqlalchemy.engine import make_url

        url = make_url(spec)
        database = url.database or ""
        if (url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
                and not database.startswith("file:")):
            _must_exist(Path(database))
        return optuna.storages.RDBStorage(spec, skip_table_creation=True,
                                          skip_compatibility_check=True)
    path = Path(spec).expanduser()
    _must_exist(path)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def _must_exist(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no tuning storage at {path}: start a study with `fino tune "
                                "--task TASK`, or pass --optuna-storage")


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]


def snapshot(storage: optuna.storages.BaseStorage, name: str,
             run_status: Mapping[int, str] | None = None) -> StudySnapshot:
    """The study's trials now; KeyError when there is no such study."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise KeyError(f"no study {name!r}") from None
    return summarise(study, run_status)


def summarise(study: optuna.Study, run_status: Mapping[int, str] | None = None
              ) -> StudySnapshot:
    """A loaded study's trials, counts and settings; with `run_status` (run id -> status,
    `study_run_status`), a trial in flight shows where its runs are."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        reports = t.intermediate_values
        last = max(reports) if reports else None
        run_ids = t.user_attrs.get("run_ids", ())
        state = _state(t.state)
        if run_status is not None:
            state = trial_state(state, [run_status[i] for i in run_ids if i in run_status],
                                parked=bool(t.user_attrs.get("parked")))
        rows.append(TrialRow(
            number=t.number, state=state, value=t.value, params=dict(t.params),
            run_ids=tuple(run_ids),
            last_report=(last, reports[last]) if last is not None else None))
    counts = {s: sum(r.state == s for r in rows) for s in dict.fromkeys(r.state for r in rows)}
    return StudySnapshot(name=study.study_name, trials=tuple(rows), counts=counts,
                         settings=dict(study.user_attrs.get("fino", {})))


def trial_state(optuna_state: TrialView | str, run_statuses: Sequence[RunStatus | str], *,
                parked: bool = False) -> TrialView:
    """A trial in flight as its runs show it (Optuna calls it running from the moment its runs
    are queued): running once a run is claimed, queued while they wait for a worker, parked
    when Ctrl-C cancelled its queued runs (the same `fino tune` requeues them), else its runs'
    failed, lost or cancelled until the tuner tells Optuna. Other trials keep Optuna's state."""
    if optuna_state != TrialView.RUNNING or not run_statuses:
        return TrialView(optuna_state)
    statuses = {RunStatus(s) for s in run_statuses}
    if RunStatus.RUNNING in statuses:
        return TrialView.RUNNING
    if RunStatus.QUEUED in statuses:
        return TrialView.QUEUED
    if parked and statuses <= {RunStatus.CANCELLED, RunStatus.DONE} and \
            RunStatus.CANCELLED in statuses:
        return TrialView.PARKED
    ended = (RunStatus.LOST, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PRUNED)
    # all done: the tuner tells the value at its next check
    return next((TrialView(s.value) for s in ended if s in statuses), TrialView.RUNNING)


def study_run_status(store: Store, name: str) -> dict[int, RunStatus]:
    """{run id: status} of the study's runs in the experiments database."""
    from fino.store.queries import study_statuses

    with store.read() as session:
        return study_statuses(session, name)


def _state(state: TrialState) -> TrialView:
    return {TrialState.COMPLETE: TrialView.COMPLETE, TrialState.RUNNING: TrialView.RUNNING,
            TrialState.PRUNED: TrialView.PRUNED, TrialState.FAIL: TrialView.FAIL,
            TrialState.WAITING: TrialView.WAITING}[state]


def format_value(value: Any) -> str:
    """Parameter values for tables: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
