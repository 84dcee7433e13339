"""A read-only snapshot of a tuning study (trials, counts, best, history) for `fino tune show`
and the dashboard's tuning view. Reading never writes to Optuna's storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, running, pruned, fail, waiting
    value: float | None  # the objective (mean final score over the trial's seeds)
    params: dict[str, Any]
    run_ids: tuple[int, ...]
    last_report: tuple[int, float] | None  # (step, mean score) last reported to the pruner


@dataclass(frozen=True)
class StudySnapshot:
    name: str
    trials: tuple[TrialRow, ...]
    counts: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # task, preset, seeds, key, space

    @property
    def best(self) -> TrialRow | None:
        """The complete trial of highest value (the study maximises)."""
        complete = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return max(complete, key=lambda t: t.value) if complete else None  # type: ignore

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(trial numbers, values, best so far) of the complete trials, in trial order."""
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
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


def snapshot(storage: optuna.storages.BaseStorage, name: str) -> StudySnapshot:
    """The study's trials now; KeyError when there is no such study."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise KeyError(f"no study {name!r}") from None
    return summarise(study)


def summarise(study: optuna.Study) -> StudySnapshot:
    """A loaded study's trials, counts and settings."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        reports = t.intermediate_values
        last = max(reports) if reports else None
        rows.append(TrialRow(
            number=t.number, state=_state(t.state), value=t.value, params=dict(t.params),
            run_ids=tuple(t.user_attrs.get("run_ids", ())),
            last_report=(last, reports[last]) if last is not None else None))
    counts = {s: sum(r.state == s for r in rows) for s in dict.fromkeys(r.state for r in rows)}
    return StudySnapshot(name=study.study_name, trials=tuple(rows), counts=counts,
                         settings=dict(study.user_attrs.get("fino", {})))


def _state(state: TrialState) -> str:
    return {TrialState.COMPLETE: "complete", TrialState.RUNNING: "running",
            TrialState.PRUNED: "pruned", TrialState.FAIL: "fail",
            TrialState.WAITING: "waiting"}[state]


def format_value(value: Any) -> str:
    """Parameter values for tables: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
