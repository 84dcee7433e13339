"""`fino tune` as a newcomer meets it: the help, the budget stated up front (and refused when
long without --yes), the update rate read from `fino bench` figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fino.backends.base import TaskConfig
from fino.bench_estimate import SIZE_DIMS, UpdateRate, update_rate
from fino.cli.main import app
from fino.cli.tune import EXAMPLE
from fino.train.presets import build_run_config
from fino.tune.budget import Budget, networks, study_budget


def bench_file(path: Path, figures: list[dict]) -> Path:
    path.write_text("".join(json.dumps(f) + "\n" for f in figures))
    return path


def rate(value: float, size: str = "quick", variant: str = "compiled+onednn+fp32",
         algo: str = "fino", device: str = "cpu") -> dict:
    return {"figure": "updates_per_second", "shape": "cube-double", "variant": variant,
            "value": value, "unit": "updates/s", "size": size, "algo": algo, "device": device}


def cube(preset: str | None = "quick", sets: list[str] | None = None):
    return build_run_config(TaskConfig("cube-single"), preset=preset, overrides=sets or [])


def said(result) -> str:
    return " ".join(result.output.split())


def test_help_marks_task_required_shows_the_example_and_the_space_tables():
    result = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    text = said(result)
    assert "e.g. cube-single. [required]" in text
    assert "[params.NAME] tables" in text
    assert EXAMPLE in text
    assert "pip install optuna-dashboard" in text
    assert "`optuna-dashboard optuna.journal`" in text  # the default --optuna-storage


def test_tune_without_a_task_says_how_to_start_one():
    result = CliRunner().invoke(app, ["tune", "--trials", "50"])
    assert result.exit_code == 1
    assert f"--task is required, e.g. `{EXAMPLE}`" in said(result)


def test_a_long_budget_is_stated_and_refused_without_yes(tmp_path, monkeypatch):
    monkeypatch.setenv("FINO_BENCH_FILE", str(bench_file(tmp_path / "b.jsonl", [rate(100.0)])))
    work = tmp_path / "work"
    work.mkdir()
    result = CliRunner().invoke(app, [
        "tune", "--task", "cube-single", "--preset", "quick", "--trials", "50",
        "--db", str(work / "experiments.db"), "--optuna-storage", str(work / "optuna.journal")])
    text = said(result)
    assert result.exit_code == 1, result.output
    assert ("50 trials x 1 seed x (30,000 offline + 20,000 online steps) = 2,500,000 updates, "
            "profile cube.toml:quick, 2x256 networks; about 6h56m on this cpu at 100 updates/s"
            in text)
    assert "pass --yes to start it anyway, or ask for fewer --trials" in text
    assert list(work.iterdir()) == []  # nothing queued, no study created


def test_the_paper_budget_without_figures_is_refused_and_suggests_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("FINO_BENCH_FILE", str(tmp_path / "none.jsonl"))
    result = CliRunner().invoke(app, [
        "tune", "--task", "cube-single", "--trials", "50", "--db", str(tmp_path / "e.db"),
        "--optuna-storage", str(tmp_path / "j")])
    text = said(result)
    assert result.exit_code == 1, result.output
    assert ("= 75,000,000 updates, profile cube.toml:paper, 4x512 networks; no `fino bench` "
            "figure for these networks on cpu: run `fino bench`") in text
    assert "of unknown length here: pass --yes to start it anyway, or use --preset quick" in text
    assert not (tmp_path / "e.db").exists() and not (tmp_path / "j").exists()


def test_budget_needs_confirmation_only_past_an_hour_or_unknown_at_the_paper_steps():
    quick, paper = cube("quick"), cube(None)
    fast = UpdateRate(100.0, "quick", "cpu", Path("b"))
    assert Budget(quick, 1, 0, 2, fast).seconds == pytest.approx(1000.0)
    assert not Budget(quick, 3, 0, 2, fast).needs_confirmation  # 3000 s
    assert Budget(quick, 4, 0, 2, fast).needs_confirmation  # 4000 s
    assert not Budget(quick, 40, 39, 2, fast).needs_confirmation  # one trial left
    assert Budget(quick, 40, 39, 2, fast).updates == 2 * 50_000
    assert not Budget(quick, 50, 0, 1, None).needs_confirmation  # unknown, not the paper's
    assert Budget(paper, 1, 0, 1, None).needs_confirmation
    assert not Budget(paper, 5, 5, 1, None).needs_confirmation  # nothing left to train


def test_update_rate_matches_size_algorithm_device_and_variant(tmp_path):
    path = bench_file(tmp_path / "b.jsonl", [
        rate(10.0, size="paper"), rate(50.0), rate(30.0, variant="eager+onednn+fp32"),
        rate(40.0, algo="fql"), rate(500.0, device="cuda"), {"figure": "act_ms"}, rate(60.0)])
    (tmp_path / "b.jsonl").write_text((tmp_path / "b.jsonl").read_text() + "not json\n")
    found = update_rate(cube("quick"), [path])
    assert found is not None and (found.updates_per_second, found.size) == (60.0, "quick")
    eager = update_rate(cube("quick", ["train.compile=false"]), [path])
    assert eager is not None and eager.updates_per_second == 30.0
    assert update_rate(cube("quick", ["train.precision='bf16'"]), [path]).updates_per_second \
        == 60.0  # no bf16 figure: the latest of any variant
    assert update_rate(cube(None), [path]).updates_per_second == 10.0
    assert update_rate(cube("quick", ["agent.actor_hidden_dims=[64]"]), [path]) is None
    assert update_rate(cube("quick"), [tmp_path / "missing.jsonl"]) is None


def test_budget_reads_figures_from_the_bench_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FINO_BENCH_FILE", str(bench_file(tmp_path / "b.jsonl", [rate(25.0)])))
    budget = study_budget(cube("quick"), trials=2, done=0, seeds=1)
    assert budget.rate is not None and budget.rate.source == tmp_path / "b.jsonl"
    assert budget.seconds == pytest.approx(2 * 50_000 / 25.0)
    assert networks(cube("quick", ["agent.value_hidden_dims=[512,256]"])) == \
        "actor 2x256, value 512-256"


def test_estimate_sizes_are_the_benchmarks_sizes():
    from fino.bench import SIZES

    assert {name: dims for name, (dims, _) in SIZES.items()} == SIZE_DIMS
