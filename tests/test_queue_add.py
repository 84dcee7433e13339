"""`fino queue add` as a newcomer meets it: a dataset missing here is refused with how to get
it (or queued anyway with --allow-missing-data), the resolved profile's budget is printed with
its time here by `fino bench`'s figures, and algorithm names are case-insensitive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fino.cli.main import app
from fino.store.db import Store
from fino.store.models import Run
from tests.queue_fixtures import pendulum_npz

PAPER_FIGURE = {"figure": "updates_per_second", "shape": "cube-double",
                "variant": "compiled+onednn+fp32", "value": 10.0, "unit": "updates/s",
                "size": "paper", "algo": "fino", "device": "cpu"}


@pytest.fixture
def no_figures(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FINO_BENCH_FILE", str(tmp_path / "no-figures.jsonl"))


def add(*args: str, db: Path) -> object:
    result = CliRunner().invoke(app, ["queue", "add", *args, "--db", str(db)],
                                env={"COLUMNS": "400"})
    return result


def stored_runs(db: Path) -> list[Run]:
    store = Store(str(db), create=False)
    with store.read() as session:
        runs = list(session.execute(select(Run).order_by(Run.id)).scalars())
    store.dispose()
    return runs


def ogbench_files(folder: Path, dataset: str) -> Path:
    """Both files of an OGBench dataset, as the presence check sees them (it reads nothing)."""
    folder.mkdir(exist_ok=True)
    for suffix in ("", "-val"):
        (folder / f"{dataset}{suffix}.npz").write_bytes(b"")
    return folder


def test_a_regenerable_dataset_missing_here_is_refused_with_the_command(tmp_path, no_figures):
    db = tmp_path / "experiments.db"
    result = add("--task", "cube-double", "--dataset-dir", str(tmp_path / "data"), db=db)
    assert result.exit_code == 1, result.output
    assert f"fino data generate cube-double-play-v0 --out {tmp_path / 'data'}" in result.output
    assert "--allow-missing-data" in result.output
    assert not db.exists()  # nothing written


def test_a_dataset_that_cannot_be_regenerated_says_so(tmp_path, no_figures):
    result = add("--task", "humanoidmaze", "--dataset-dir", str(tmp_path),
                 db=tmp_path / "experiments.db")
    assert result.exit_code == 1
    assert "cannot be regenerated here" in result.output
    assert "fino data download humanoidmaze-medium-navigate-v0" in result.output


def test_a_missing_minari_dataset_is_refused(tmp_path, no_figures, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    result = add("--task", "D4RL/pen/cloned-v2", db=tmp_path / "experiments.db")
    assert result.exit_code == 1
    assert "fino data download D4RL/pen/cloned-v2" in result.output


def test_a_missing_dataset_file_of_the_gymnasium_backend_is_refused(tmp_path, no_figures):
    result = add("--task", "Pendulum-v1", "--backend", "gymnasium", "--dataset",
                 str(tmp_path / "gone.npz"), db=tmp_path / "experiments.db")
    assert result.exit_code == 1 and "gone.npz does not exist" in result.output


def test_allow_missing_data_queues_with_a_warning_and_states_the_paper_budget(tmp_path,
                                                                             no_figures):
    db = tmp_path / "experiments.db"
    result = add("--task", "humanoidmaze", "--dataset-dir", str(tmp_path), "--seeds", "0-1",
                 "--allow-missing-data", db=db)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "queued anyway" in result.output
    assert ("each run: profile humanoidmaze.toml:paper, 1,000,000 offline + 500,000 online "
            "steps, 4x512 networks") in result.output
    assert "run `fino bench` for an estimate" in result.output
    assert len(stored_runs(db)) == 2


def test_the_time_estimate_comes_from_the_latest_matching_bench_figure(tmp_path, monkeypatch):
    figures = tmp_path / "figures.jsonl"
    older = {**PAPER_FIGURE, "value": 5.0}
    other_size = {**PAPER_FIGURE, "size": "quick", "value": 1000.0}
    figures.write_text("".join(json.dumps(f) + "\n" for f in (older, PAPER_FIGURE, other_size)))
    monkeypatch.setenv("FINO_BENCH_FILE", str(figures))
    data = ogbench_files(tmp_path / "data", "cube-double-play-v0")
    result = add("--task", "cube-double", "--dataset-dir", str(data),
                 db=tmp_path / "experiments.db")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    # 1.5M updates at 10 updates/s: 150,000 s
    assert "about 1d17h of updates per run at 10 updates/s on this cpu" in result.output
    assert str(figures) in result.output


def test_what_fino_bench_recorded_in_this_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("FINO_BENCH_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    recorded = tmp_path / "bench-results" / "bench.jsonl"
    recorded.parent.mkdir()
    recorded.write_text(json.dumps({**PAPER_FIGURE, "size": "quick", "algo": "fql",
                                    "value": 50.0}) + "\n")
    data = ogbench_files(tmp_path / "data", "cube-double-play-v0")
    result = add("--task", "cube-double", "--preset", "quick", "--algo", "fql",
                 "--dataset-dir", str(data), db=tmp_path / "experiments.db")
    assert result.exit_code == 0, result.output
    # 30k + 20k updates at 50 updates/s
    assert "about 16m40s of updates per run at 50 updates/s on this cpu" in result.output
    assert "bench-results/bench.jsonl" in result.output


def test_algorithm_names_are_case_insensitive(tmp_path, no_figures):
    db = tmp_path / "experiments.db"
    dataset = pendulum_npz(tmp_path / "pendulum.npz", n=50)
    result = add("--task", "Pendulum-v1", "--backend", "gymnasium", "--dataset", str(dataset),
                 "--algo", "FQL", db=db)
    assert result.exit_code == 0, result.output
    [run] = stored_runs(db)
    assert run.algo == "fql" and run.config["algo"] == "fql" and "-fql-" in run.name
    listed = CliRunner().invoke(app, ["runs", "list", "--algo", "FQL", "--db", str(db)])
    assert listed.exit_code == 0 and run.name in listed.output, listed.output
