"""Reading a tuning study: the snapshot behind `fino tune show` and the dashboard's tuning view."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from fino.cli.main import app
from fino.store.db import Store
from fino.store.queue import claim_next
from fino.tune.study import open_storage
from fino.tune.summary import snapshot, study_names, study_run_status, trial_state
from tests.queue_fixtures import queue_pendulum
from tests.tune_fixtures import make_study


def test_snapshot_counts_trials_and_finds_the_best(tmp_path):
    journal = tmp_path / "optuna.journal"
    make_study(journal)
    storage = open_storage(str(journal))
    assert study_names(storage) == ["cube-tune"]
    shot = snapshot(storage, "cube-tune")
    assert shot.counts == {"complete": 2, "pruned": 1, "running": 1}
    assert shot.best is not None and (shot.best.number, shot.best.value) == (1, 55.0)
    assert shot.best.params == {"noise_scale": 0.3, "num_candidates": 8}
    running = shot.trials[3]
    assert (running.state, running.run_ids, running.last_report) == ("running", (7, 8),
                                                                      (5000, 20.0))
    numbers, values, best = shot.history()
    assert np.array_equal(numbers, [0, 1]) and np.array_equal(values, [40, 55])
    assert np.array_equal(best, [40, 55])
    assert shot.settings["task"] == "cube-double-play-singletask-task2-v0"


def test_tune_show_prints_trials_and_the_best(tmp_path):
    journal = tmp_path / "optuna.journal"
    make_study(journal)
    result = CliRunner().invoke(app, ["tune", "show", "--optuna-storage", str(journal)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "best: trial 1, value 55.00, noise_scale=0.3, num_candidates=8" in said
    assert "pruned" in said and "running" in said and "7,8" in said
    missing = CliRunner().invoke(app, ["tune", "show", "--study", "other",
                                       "--optuna-storage", str(journal)])
    assert missing.exit_code == 1 and "no study 'other'" in " ".join(missing.output.split())


def test_reading_a_missing_storage_is_an_error_and_creates_nothing(tmp_path):
    from fino.tune.summary import open_readonly

    for spec in (str(tmp_path / "optuna.journal"), f"sqlite:///{tmp_path / 'optuna.db'}"):
        result = CliRunner().invoke(app, ["tune", "show", "--optuna-storage", spec])
        assert result.exit_code == 1 and "no tuning storage" in " ".join(result.output.split())
    with pytest.raises(FileNotFoundError, match="fino tune --task"):
        open_readonly(str(tmp_path / "sub" / "optuna.journal"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("optuna_state", "runs", "parked", "expected"), [
    ("running", ["queued", "queued"], False, "queued"),
    ("running", ["queued", "running"], False, "running"),
    ("running", ["done", "queued"], False, "queued"),
    ("running", ["cancelled", "done"], True, "parked"),
    ("running", ["cancelled", "done"], False, "cancelled"),
    ("running", ["lost", "running"], False, "running"),
    ("running", ["failed", "done"], False, "failed"),
    ("running", ["done", "done"], False, "running"),
    ("running", [], False, "running"),
    ("complete", ["done"], False, "complete"),
    ("pruned", ["pruned", "cancelled"], False, "pruned"),
])
def test_a_trial_in_flight_shows_where_its_runs_are(optuna_state, runs, parked, expected):
    assert trial_state(optuna_state, runs, parked=parked) == expected


def test_tune_show_with_the_store_shows_a_waiting_trial_as_queued(tmp_path):
    journal = tmp_path / "optuna.journal"
    make_study(journal)  # trial 3 is running in Optuna, with runs 7 and 8
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    queue_pendulum(store, tmp_path / "p.npz", tmp_path / "runs", range(8), study="cube-tune")

    def state_of_trial_3() -> str:
        result = CliRunner().invoke(app, ["tune", "show", "--optuna-storage", str(journal),
                                          "--db", str(tmp_path / "experiments.db")])
        assert result.exit_code == 0, result.output
        row = next(line for line in result.output.splitlines() if "7,8" in line)
        return row.split("│")[2].strip()

    assert state_of_trial_3() == "queued"
    assert claim_next(store, host="h", pid=1, among=[8]) is not None
    assert state_of_trial_3() == "running"
    shot = snapshot(open_storage(str(journal)), "cube-tune", study_run_status(store, "cube-tune"))
    assert shot.counts == {"complete": 2, "pruned": 1, "running": 1}
