"""Read-side queries, statistics over seeds and run grouping, on a real SQLite store."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fino.analysis import GroupError, group_runs, mean_ci, offline_and_final
from fino.store import queries
from fino.store.queries import (
    QueryError,
    count_runs,
    downsample,
    get_runs,
    latest_metrics,
    list_runs,
    resolve_run_ids,
    run_events,
    series,
    series_many,
)
from tests.inspect_fixtures import FINO_SEED0_BEST, SPIKY_POINTS, Seeded, seed_store

T_975_DF2 = 4.302652729911275  # Student t, two-sided 95%, 2 degrees of freedom (tables)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    data = seed_store(tmp_path_factory.mktemp("store"))
    yield data
    data.store.dispose()


def test_list_runs_filters_by_status_task_algo_and_whole_tags(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        assert [r.id for r in list_runs(s, status="running")] == [seeded.running]
        done_or_failed = {r.id for r in list_runs(s, status=["done", "failed"])}
        assert done_or_failed == {*seeded.fino, *seeded.fql, *seeded.balanced, seeded.failed}
        assert [r.id for r in list_runs(s, task="PUZZLE")] == [seeded.queued]
        fql = list_runs(s, algo="fql", status="done", descending=False)
        assert [r.id for r in fql] == seeded.fql
        assert [r.id for r in list_runs(s, tag="later")] == [seeded.queued]
        assert list_runs(s, tag="swe") == []  # part of a tag is not the tag
        assert [r.id for r in list_runs(s, text="3x3")] == [seeded.queued]


def test_list_runs_pages_do_not_overlap_and_count_matches(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        total = count_runs(s)
        pages = [list_runs(s, limit=4, offset=o) for o in range(0, total, 4)]
        ids = [r.id for page in pages for r in page]
        assert len(ids) == total == 11
        assert ids == sorted(ids, reverse=True)
        assert count_runs(s, status="done", algo="fino") == 5
        by_seed = list_runs(s, order_by="seed", descending=False, limit=3)
        assert [r.seed for r in by_seed] == [0, 0, 0]


def test_list_runs_rejects_unknown_status_order_and_paging(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        with pytest.raises(QueryError, match="unknown status bogus"):
            list_runs(s, status=["done", "bogus"])
        with pytest.raises(QueryError, match="cannot order by"):
            list_runs(s, order_by="config")
        with pytest.raises(QueryError, match="limit"):
            list_runs(s, limit=0)


def test_runs_stay_readable_after_the_read_session(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        runs = list_runs(s, limit=2)
    assert runs[0].name and runs[1].config["train"]["offline_steps"] == 1000


def test_latest_metrics_gives_each_keys_value_at_its_largest_step(
        seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    run_ids = [seeded.fino[0], seeded.fql[0], seeded.running, seeded.queued]
    keys = ["eval/score", "policy/beta", "progress/env_steps"]
    with seeded.store.read() as s:
        latest = latest_metrics(s, run_ids, keys)
        monkeypatch.setattr(queries, "CHUNK", 2)  # the same answer across several queries
        assert latest_metrics(s, run_ids, keys) == latest
    assert latest[seeded.fino[0]] == {"eval/score": (2000, 60.0), "policy/beta": (2000, 12.0),
                                      "progress/env_steps": (2000, 1000.0)}
    assert "policy/beta" not in latest[seeded.fql[0]]  # FQL has no β
    assert latest[seeded.running]["progress/env_steps"] == (1200, 200.0)
    assert latest[seeded.running]["eval/score"] == (1000, 23.0)
    assert seeded.queued not in latest


def test_series_is_in_step_order_and_reads_only_new_steps(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        steps, values = series(s, seeded.fino[0], "eval/score")
        assert steps.tolist() == [0, 500, 1000, 1500, 2000]
        assert values.tolist() == [0.0, 10.0, 20.0, FINO_SEED0_BEST, 60.0]
        newer = series(s, seeded.fino[0], "eval/score", after_step=1000)
        assert newer[0].tolist() == [1500, 2000]
        assert len(series(s, seeded.fino[0], "no/such/key")[0]) == 0
        many = series_many(s, [seeded.fino[0], seeded.fql[1], seeded.queued], "eval/score")
    assert set(many) == {seeded.fino[0], seeded.fql[1]}
    assert many[seeded.fino[0]][1].tolist() == values.tolist()


def test_series_downsampling_keeps_spikes_and_end_points(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        full = series(s, seeded.fino[0], "critic/q_loss")
        steps, values = series(s, seeded.fino[0], "critic/q_loss", max_points=50)
    assert len(full[0]) == SPIKY_POINTS
    assert 40 <= len(steps) <= 50
    assert steps[0] == 0 and steps[-1] == SPIKY_POINTS - 1
    assert {1234, 2345} <= set(steps.tolist())  # the one maximum and the one minimum
    assert np.all(np.diff(steps) > 0)
    assert values.max() == 100.0 and values.min() == -50.0


def test_downsample_keeps_each_buckets_min_and_max_and_skips_nan() -> None:
    rng = np.random.default_rng(0)
    steps = np.sort(rng.choice(100_000, size=5_000, replace=False))
    values = rng.normal(size=5_000)
    values[100] = np.nan
    out_steps, out_values = downsample(steps, values, 102)
    assert len(out_steps) <= 102
    assert not np.isnan(out_values).any()
    # Each of the 50 buckets of the interior contributes its own extremes.
    inner_steps, inner_values = steps[1:-1], values[1:-1]
    edges = np.linspace(inner_steps[0], inner_steps[-1], 51)
    for lo, hi in itertools.pairwise(edges):
        inside = (inner_steps >= lo) & (inner_steps < hi)
        if inside.any():
            chosen = set(out_steps.tolist())
            bucket = inner_values[inside]
            assert inner_steps[inside][np.nanargmax(bucket)] in chosen
            assert inner_steps[inside][np.nanargmin(bucket)] in chosen
    few_steps, _ = downsample(steps[:10], values[:10], 50)
    assert np.array_equal(few_steps, steps[:10])  # already short enough: unchanged
    with pytest.raises(QueryError):
        downsample(steps, values, 1)


def test_resolve_run_ids_accepts_ids_ranges_and_lists(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        assert resolve_run_ids(s, ["3", "1-2", "2,5"]) == [3, 1, 2, 5]
        assert resolve_run_ids(s, ["10-40"]) == [10, 11]  # a range takes the runs that exist
        with pytest.raises(QueryError, match="no run with id 99"):
            resolve_run_ids(s, ["1", "99"])
        with pytest.raises(QueryError, match="no run with an id in 50-60"):
            resolve_run_ids(s, ["50-60"])
        with pytest.raises(QueryError, match="not a run id"):
            resolve_run_ids(s, ["abc"])
        with pytest.raises(QueryError, match="no run with id 42"):
            get_runs(s, [1, 42])


def test_run_events_are_oldest_first(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        events = run_events(s, seeded.failed)
    assert [e.new_status for e in events] == ["queued", "running", "failed"]


def test_welch_difference_matches_scipys_welch_interval() -> None:
    from scipy.stats import ttest_ind

    from fino.analysis.stats import welch_difference

    a, b = [38.0, 52.0, 44.0, 61.0, 30.0], [48.0, 70.0, 66.0, 40.0, 58.0]
    diff, half, dof = welch_difference(a, b)
    assert dof == pytest.approx(ttest_ind(a, b, equal_var=False).df)
    ci = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (diff - half, diff + half) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert math.isnan(welch_difference([1.0], b)[0])  # one seed has no spread
    assert welch_difference([5.0, 5.0], [3.0, 3.0])[:2] == (2.0, 0.0)


def _with_moments(mean: float, sd: float, n: int) -> np.ndarray:
    """n values whose sample mean and standard deviation (ddof 1) are exactly these."""
    z = np.linspace(-1.0, 1.0, n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_seeds_to_resolve_is_the_first_n_whose_welch_interval_excludes_zero() -> None:
    from fino.analysis.stats import seeds_to_resolve, welch_difference

    a, b = [33.6, 28.0, 18.0, 34.0, 40.0, 48.0], [34.0, 26.0, 42.0, 38.0, 32.0]
    n = seeds_to_resolve(a, b)
    assert n is not None and n > len(b)  # inconclusive now, so more seeds than we have
    sa, sb = np.std(a, ddof=1), np.std(b, ddof=1)

    def half(k: int) -> float:
        return welch_difference(_with_moments(np.mean(a), sa, k),
                                _with_moments(np.mean(b), sb, k))[1]

    gap = abs(np.mean(a) - np.mean(b))
    assert half(n) < gap <= half(n - 1)
    assert seeds_to_resolve([1.0, 2.0], [1.0, 2.0]) is None  # equal means: never
    assert seeds_to_resolve([1.0], b) is None  # one seed has no spread
    assert seeds_to_resolve([5.0, 5.0], [3.0, 3.0]) == 2
    assert seeds_to_resolve([0.0, 10.0], [0.1, 9.9], max_n=50) is None  # far too many


def test_mean_ci_matches_the_hand_computed_student_t_interval() -> None:
    mean, half, n = mean_ci([60.0, 70.0, 80.0])
    assert (mean, n) == (70.0, 3)
    assert half == pytest.approx(T_975_DF2 * 10.0 / math.sqrt(3), rel=1e-9)
    assert mean_ci([60.0, 70.0, 80.0, float("nan")])[2] == 3  # non-finite values are left out
    one = mean_ci([5.0])
    assert one[0] == 5.0 and math.isnan(one[1]) and one[2] == 1
    assert mean_ci([])[2] == 0
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], confidence=1.0)


def test_offline_and_final_scores_split_at_the_offline_steps() -> None:
    evals = [(2000, 60.0), (0, 0.0), (1000, 20.0), (1500, 85.0), (500, float("nan"))]
    scores = offline_and_final(evals, 1000)
    assert (scores.offline, scores.final, scores.best, scores.final_step) == (20.0, 60.0, 85.0,
                                                                              2000)
    assert offline_and_final(evals, None).offline is None
    assert offline_and_final([], 1000).final is None


def test_group_runs_splits_ablations_and_names_what_differs(seeded: Seeded) -> None:
    with seeded.store.read() as s:
        runs = get_runs(s, [*seeded.fino, *seeded.fql, *seeded.balanced])
    groups = group_runs(runs)
    labels = {g.label(exclude=["task"]): [r.id for r in g.runs] for g in groups}
    assert labels == {"fino balanced=False": seeded.fino, "fino balanced=True": seeded.balanced,
                      "fql balanced=False": seeded.fql}
    pooled = group_runs(runs, ["task"], split=False)
    assert len(pooled) == 1 and pooled[0].label() == "cube-single"
    by_balanced = group_runs(runs, ["train.balanced"], split=False)
    assert sorted(len(g.runs) for g in by_balanced) == [2, 6]
    with pytest.raises(GroupError, match="cannot group by nope"):
        group_runs(runs, ["nope"])
