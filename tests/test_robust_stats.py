"""Robust aggregates over success rates full of zeros: the interquartile mean and the probability
of improvement with stratified-bootstrap intervals, performance profiles, and where `fino report`,
`fino plot --profile` and the study report show them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import trim_mean
from typer.testing import CliRunner

from fino.analysis.robust import (
    Interval,
    all_tie,
    improvement_interval,
    iqm,
    iqm_interval,
    performance_profile,
    probability_of_improvement,
)
from fino.analysis.stats import mean_ci, welch_difference
from fino.cli.main import app
from fino.study.report import Cell, robust_section
from tests.inspect_fixtures import Seeded, seed_store

REPS = 500  # enough for the properties pinned here, and fast


def test_iqm_is_the_mean_of_the_middle_half_of_all_runs_and_tasks() -> None:
    scores = [[0.0, 0.0, 10.0, 100.0], [20.0, 30.0, 40.0, 50.0]]
    # Pooled and sorted: 0 0 | 10 20 30 40 | 50 100; two cut at each end.
    assert iqm(scores) == 25.0 == trim_mean(np.concatenate(scores), 0.25)
    assert iqm_interval(scores, reps=REPS).estimate == 25.0


def test_point_estimates_match_rliables_metrics() -> None:
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 5, size=(6, 3)) * 25.0  # (runs, tasks), with ties
    y = rng.integers(0, 5, size=(4, 3)) * 25.0
    assert iqm(x.T) == pytest.approx(metrics.aggregate_iqm(x))
    assert probability_of_improvement(x.T, y.T) == pytest.approx(
        metrics.probability_of_improvement(x, y))


def test_iqm_interval_holds_its_estimate_and_repeats_with_its_seed() -> None:
    scores = np.random.default_rng(1).uniform(0, 100, size=(3, 5))  # 3 tasks, 5 runs each
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    first = iqm_interval(scores, reps=REPS, seed=3)
    assert first is not None and first.low <= first.estimate <= first.high
    assert first.low < first.high and (first.runs, first.tasks) == (15, 3)
    assert iqm_interval(scores, reps=REPS, seed=3) == first
    assert iqm_interval(scores, reps=REPS, seed=4) != first
    assert (np.random.get_state()[1] == before).all()  # numpy's global generator untouched


def test_probability_of_improvement_is_half_for_the_same_scores_and_one_when_dominating(
) -> None:
    runs = [[10.0, 40.0, 40.0, 70.0], [0.0, 5.0, 90.0]]
    same = improvement_interval(runs, runs, reps=REPS)
    assert same is not None and same.estimate == 0.5 and same.low < 0.5 < same.high
    above = [[v + 100.0 for v in task] for task in runs]
    assert improvement_interval(above, runs, reps=REPS) == Interval(1.0, 1.0, 1.0, 7, 2,
                                                                    runs_y=7)
    assert probability_of_improvement(runs, above) == 0.0
    # Ties count half: 10 vs 10 is half a win, 20 vs 10 a whole one.
    assert probability_of_improvement([[10.0, 20.0]], [[10.0]]) == 0.75


def test_all_zero_scores_give_an_iqm_of_zero_and_a_tie_that_says_nothing() -> None:
    zeros = [[0.0, 0.0, 0.0], [0.0, 0.0]]
    assert iqm_interval(zeros, reps=REPS) == Interval(0.0, 0.0, 0.0, 5, 2)
    tie = improvement_interval(zeros, [[0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], reps=REPS)
    assert tie is not None and (tie.estimate, tie.low, tie.high) == (0.5, 0.5, 0.5)
    assert all_tie(zeros, zeros) and not all_tie([[0.0, 50.0]], [[0.0, 0.0]])


def test_a_single_task_is_resampled_over_its_runs() -> None:
    one = iqm_interval([[10.0, 20.0, 30.0, 40.0, 50.0]], reps=REPS)
    assert one is not None and (one.runs, one.tasks) == (5, 1)
    assert 10.0 <= one.low < one.estimate == 30.0 < one.high <= 50.0


def test_tasks_with_fewer_than_two_runs_are_left_out_and_none_left_gives_none() -> None:
    assert iqm_interval([[55.0]], reps=REPS) is None
    partial = iqm_interval([[55.0], [10.0, 20.0, 30.0]], reps=REPS)
    assert partial is not None and (partial.tasks, partial.left_out, partial.runs) == (1, 1, 3)
    assert improvement_interval([[1.0]], [[1.0, 2.0]], reps=REPS) is None
    # Different run counts per task and per method: every run is kept.
    uneven = improvement_interval([[1.0, 2.0], [3.0, 4.0, 5.0]], [[0.0, 1.0, 2.0, 3.0], [9.0, 9.0]],
                                  reps=REPS)
    assert uneven is not None and (uneven.runs, uneven.runs_y, uneven.tasks) == (5, 6, 2)


def test_performance_profile_is_the_fraction_of_runs_above_each_threshold() -> None:
    scores = [[0.0, 50.0, 100.0], [0.0, 0.0]]
    tau = np.array([0.0, 49.0, 50.0, 99.0, 100.0])
    profile, low, high = performance_profile(scores, tau, reps=REPS)
    assert profile.tolist() == pytest.approx([2 / 5, 2 / 5, 1 / 5, 1 / 5, 0.0])
    assert (low <= profile).all() and (profile <= high).all() and high[0] > low[0]
    again = performance_profile(scores, tau, reps=REPS)
    assert all((a == b).all() for a, b in zip(again, (profile, low, high), strict=True))


def test_seeds_that_agree_give_a_zero_width_interval_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_ci([-20.0, -20.0, -20.0]) == (-20.0, 0.0, 3)
        diff, half, _ = welch_difference([-20.0, -20.0], [-20.0, -5.0])
    assert (diff, round(half, 1)) == (-7.5, 95.3)


def test_the_study_report_gives_iqm_and_probability_of_improvement_with_n() -> None:
    def cell(per_seed: dict[int, tuple[float, float]]) -> Cell:
        return Cell(offline=mean_ci([v[0] for v in per_seed.values()]),
                    online=mean_ci([v[1] for v in per_seed.values()]), curves=[],
                    per_seed=per_seed)

    zeros = {0: (0.0, 0.0), 1: (0.0, 0.0)}
    cells = {("t1", "fino"): cell(zeros), ("t1", "fql"): cell(zeros),
             ("t2", "fino"): cell({0: (20.0, 80.0), 1: (22.0, 90.0), 2: (24.0, 70.0)}),
             ("t2", "fql"): cell({0: (20.0, 30.0), 1: (21.0, 40.0)})}
    text = "\n".join(robust_section(cells, ["t1", "t2"], ["fino", "fql"]))
    assert "## Robust aggregates (rliable)" in text
    assert "| fql | " in text and "4 runs, 2 task(s) |" in text
    # A tie on t1, every FINO run above every FQL run on t2, whichever runs are resampled.
    assert "- P(fino > fql), online scores: 0.75 [0.75, 0.75] (n=5/4 runs over 2 task(s))" in text
    zero_only = "\n".join(robust_section({k: v for k, v in cells.items() if k[0] == "t1"},
                                         ["t1"], ["fino", "fql"]))
    assert "| fino | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] | 2 runs, 1 task(s) |" in zero_only
    assert ("- P(fino > fql), online scores: 0.50 [0.50, 0.50] (n=2/2 runs over 1 task(s)); "
            "every run ties") in zero_only


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    data = seed_store(tmp_path_factory.mktemp("store"))
    yield data
    data.store.dispose()


def fino(seeded: Seeded, *args: str):
    return CliRunner().invoke(app, list(args), env={"FINO_DB_URL": seeded.url, "COLUMNS": "220"})


def test_report_adds_iqm_with_its_interval_and_probability_of_improvement(seeded: Seeded
                                                                          ) -> None:
    result = fino(seeded, "report")
    assert result.exit_code == 0, result.output
    _, _, robust = result.output.partition("interquartile mean [95% bootstrap CI]")
    row = next(line for line in robust.splitlines() if line.startswith("│ cube-single"))
    assert "22.0 [" in row and "-> 70.0 [" in row  # seeds 20, 22, 24 -> 60, 70, 80
    said = " ".join(robust.split())
    assert "P(fino balanced=False > fql balanced=False), online: 1.00 [1.00, 1.00]" in said
    data = json.loads(fino(seeded, "report", "--json").output)
    fino_online = next(g for g in data["groups"] if g["method"] == "fino balanced=False"
                       )["iqm"]["online"]
    assert fino_online["estimate"] == 70.0 and 60.0 <= fino_online["low"] < 70.0
    pair = data["robust"]["probability_of_improvement"][1]
    assert (pair["x"], pair["y"], pair["online"]["estimate"]) == (
        "fino balanced=False", "fql balanced=False", 1.0)
    assert data["robust"]["reps"] == 2000


def test_plot_profile_writes_a_png_of_one_curve_per_method(seeded: Seeded, tmp_path: Path
                                                           ) -> None:
    out = tmp_path / "profile.png"
    ids = f"{seeded.fino[0]}-{seeded.balanced[-1]}"
    result = fino(seeded, "plot", ids, "--profile", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    both = fino(seeded, "plot", ids, "--profile", "-k", "eval/score", "-k", "eval/return")
    assert both.exit_code == 1 and "--profile draws one key" in both.output
