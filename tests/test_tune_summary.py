"""Reading a tuning study: the snapshot behind `fino tune show` and the dashboard's tuning view."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from fino.cli.main import app
from fino.tune.study import open_storage
from fino.tune.summary import snapshot, study_names
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
