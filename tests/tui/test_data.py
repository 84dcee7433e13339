"""The dashboard's data layer without the UI: incremental series, bands, thinning, table cells,
tags and the queue form's validation, on a real SQLite store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select

from fino.analysis.stats import mean_ci
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Event, Metric, Run
from fino_tui import actions
from fino_tui.actions import ActionError, FormError, QueueRequest
from fino_tui.curves import band, make_panels
from fino_tui.queries import (
    PageRequest,
    Progress,
    SeriesCache,
    checkpoints,
    eta,
    read_detail,
    read_page,
    runs_by_id,
    tail,
)
from fino_tui.widgets.metric_plot import thin
from fino_tui.widgets.run_table import fitting, middle_cut
from tests.inspect_fixtures import T0, Seeded
from tests.tui.conftest import NOW


def add_points(store: Store, run_id: int, steps: range, key: str = "eval/score") -> None:
    with store.write() as session:
        session.execute(insert(Metric), [{"run_id": run_id, "step": s, "key": key,
                                          "value": float(s), "wall_time": 0.0} for s in steps])


def test_series_cache_reads_only_new_steps_and_rereads_a_restarted_run(seeded: Seeded) -> None:
    store, run_id = seeded.store, seeded.running
    cache = SeriesCache()
    (run,) = runs_by_id(store, [run_id])
    first = cache.update(store, [run], ["eval/score"])[(run_id, "eval/score")]
    assert first[0].tolist() == [0, 500, 1000]
    add_points(store, run_id, range(1100, 1400, 100))
    grown = cache.update(store, [run], ["eval/score"])[(run_id, "eval/score")]
    assert grown[0].tolist() == [0, 500, 1000, 1100, 1200, 1300]
    # A retry resumes from its checkpoint and rewrites later steps: read afresh.
    with store.write() as session:
        session.execute(Metric.__table__.delete().where(Metric.run_id == run_id,
                                                        Metric.step > 500))
        session.get(Run, run_id).attempts += 1
    (run,) = runs_by_id(store, [run_id])
    again = cache.update(store, [run], ["eval/score"])[(run_id, "eval/score")]
    assert again[0].tolist() == [0, 500]


def test_series_cache_stays_bounded(seeded: Seeded) -> None:
    store, run_id = seeded.store, seeded.running
    cache = SeriesCache(max_points=100)
    (run,) = runs_by_id(store, [run_id])
    add_points(store, run_id, range(0, 1000), key="critic/loss")
    held = cache.update(store, [run], ["critic/loss"])[(run_id, "critic/loss")]
    assert len(held[0]) <= 100 and held[0][-1] == 999
    add_points(store, run_id, range(1000, 1500), key="critic/loss")
    held = cache.update(store, [run], ["critic/loss"])[(run_id, "critic/loss")]
    assert len(held[0]) <= 200 and held[0][-1] == 1499


def test_band_matches_mean_ci_column_by_column() -> None:
    matrix = np.array([[1.0, 2.0, 5.0], [2.0, np.nan, 6.0], [4.0, 3.0, 9.0]])
    mean, half = band(matrix)
    for column in range(3):
        expected = mean_ci(matrix[:, column])
        assert mean[column] == pytest.approx(expected[0])
        assert half[column] == pytest.approx(expected[1])
    single_mean, single_half = band(np.array([[1.0, 2.0]]))
    assert single_mean.tolist() == [1.0, 2.0] and np.isnan(single_half).all()


def test_thin_keeps_spikes_and_about_two_points_per_column() -> None:
    steps = np.arange(100_000)
    values = np.zeros(100_000)
    values[54_321], values[7] = 1e6, -1e6
    thin_steps, thin_values = thin(steps, values, columns=80)
    assert len(thin_steps) <= 160
    assert thin_values.max() == 1e6 and thin_values.min() == -1e6
    assert thin_steps[0] == 0 and thin_steps[-1] == 99_999


def test_panels_say_why_they_are_empty(seeded: Seeded) -> None:
    runs = runs_by_id(seeded.store, [seeded.fql[0]])
    panels = make_panels(runs, {}, ["policy/beta"], False, ["eval/score", "policy/entropy"])
    assert panels["policy/beta"].note == "not logged by these runs"
    assert make_panels([], {}, ["eval/score"], False, [])["eval/score"].note.startswith("no run")
    # A run still at work may log the key later: it is not logged *yet*.
    with_running = runs_by_id(seeded.store, [seeded.fql[0], seeded.running])
    panels = make_panels(with_running, {}, ["critic/loss"], False, ["eval/score"])
    assert panels["critic/loss"].note == "not logged yet"


def test_curve_labels_leave_out_what_the_run_names_share(seeded: Seeded) -> None:
    runs = runs_by_id(seeded.store, [seeded.fino[0], seeded.fql[0]])
    data = {(r.id, "eval/score"): (np.array([0, 1]), np.array([1.0, 2.0])) for r in runs}
    curves = make_panels(runs, data, ["eval/score"], False, ["eval/score"])["eval/score"].curves
    assert [c.label for c in curves] == [f"#{seeded.fino[0]} fino-s0",
                                         f"#{seeded.fql[0]} fql-s0"]
    alone = make_panels(runs[:1], data, ["eval/score"], False, ["eval/score"])["eval/score"]
    assert alone.curves[0].label == f"#{seeded.fino[0]} cube-single-fino-s0"


def test_page_rows_carry_progress_eta_and_elapsed(seeded: Seeded) -> None:
    page = read_page(seeded.store, PageRequest(limit=3), NOW)
    assert page.total == 11 and [r.id for r in page.rows] == [11, 10, 9]
    running = page.rows[2]
    assert running.progress == Progress(1200, 2000, True)
    assert running.elapsed_s == (NOW - (T0 + timedelta(minutes=80))).total_seconds()
    assert running.eta_s is None  # no update rate logged yet: no guess from the elapsed time
    # Its log intervals: the first slowed by compilation, one by an evaluation; the last
    # evaluation took 3 s, and two are left (steps 1500 and 2000).
    rates = [5.0, 100.0, 110.0, 100.0, 10.0, 90.0, 100.0]
    with seeded.store.write() as session:
        session.execute(insert(Metric), [
            *({"run_id": seeded.running, "step": 150 * (i + 1), "key": "time/updates_per_sec",
               "value": rate, "wall_time": 0.0} for i, rate in enumerate(rates)),
            {"run_id": seeded.running, "step": 1000, "key": "eval/seconds", "value": 3.0,
             "wall_time": 0.0}])
    running = read_page(seeded.store, PageRequest(limit=3), NOW).rows[2]
    assert running.eta_s == pytest.approx(800 / 100.0 + 2 * 3.0)  # the median rate


def test_eta_follows_the_recent_rate_not_one_slow_interval() -> None:
    steady = [100.0] * 9
    progress = Progress(500, 2000, False)
    assert eta("running", progress, steady) == 15.0
    # An interval that compiled or evaluated does not swing it; a lasting change does.
    assert eta("running", progress, [*steady[:8], 5.0]) == 15.0
    assert eta("running", progress, [50.0] * 5 + [100.0] * 4) == 30.0
    assert eta("running", progress, steady, eval_seconds=10.0, eval_interval=500) == 45.0
    assert eta("done", Progress(2000, 2000, True), steady) is None
    assert eta("running", progress, []) is None


def test_table_columns_fit_the_width() -> None:
    narrow, name = fitting(78)
    assert [c.key for c in narrow] == ["id", "name", "algo", "status", "progress", "score",
                                       "eta"]
    assert sum(c.width + 2 for c in narrow) - narrow[1].width + name + 3 <= 78
    assert name >= len("cube-single-t1-fino-s0")  # a default name whole at 80 columns
    for width in (40, 60, 100, 140):
        assert "algo" in [c.key for c in fitting(width)[0]]  # FINO and FQL told apart
    wide, _ = fitting(200)
    assert len(wide) == 13 and "pack" not in [c.key for c in wide]
    # The pack column only where a run shown trains in a pack, after the status.
    packed = [c.key for c in fitting(200, packed=True)[0]]
    assert packed[packed.index("status") + 1] == "pack" and len(packed) == 14
    assert "pack" not in [c.key for c in fitting(78, packed=True)[0]]
    # A long name keeps its end, where the profile, algorithm and seed are.
    assert middle_cut("cube-single-t1-quick-fino-s0", 22) == "cube-si…-quick-fino-s0"
    assert middle_cut("short", 22) == "short"


def test_tags_change_in_one_transaction_with_events(seeded: Seeded) -> None:
    ids = seeded.fino[:2]
    assert actions.parse_tag_changes("+best, -paper new") == ({"best", "new"}, {"paper"})
    with pytest.raises(ActionError):
        actions.parse_tag_changes("a,b c d e f?")
    message = actions.change_tags(seeded.store, ids, {"best"}, {"paper"})
    assert message == f"tags changed on run(s) {actions.id_spec(ids)}"
    with seeded.store.read() as session:
        assert set(session.scalars(select(Run.tags).where(Run.id.in_(ids)))) == {"best"}
        kinds = session.scalars(select(Event.kind).where(Event.run_id == ids[0])).all()
    assert "tags" in kinds


def test_seeds_parse_like_the_cli() -> None:
    from fino.cli.queue import parse_seeds as cli_parse_seeds

    for spec in ("0", "0-4", "0,2,5", "3,1-2,3"):
        assert actions.parse_seeds(spec) == cli_parse_seeds(spec)
    for bad in ("", "-1", "4-2", "a"):
        with pytest.raises(FormError):
            actions.parse_seeds(bad)


def test_the_form_names_the_field_at_fault() -> None:
    for request, field in ((QueueRequest(task=""), "task"),
                           (QueueRequest(task="no-such-task"), "task"),
                           (QueueRequest(task="cube-single", seeds="x"), "seeds"),
                           (QueueRequest(task="cube-single", preset="nope"), "preset"),
                           (QueueRequest(task="cube-single", overrides="agent.nope=1"),
                            "overrides"),
                           (QueueRequest(task="cube-single", overrides="bad"), "overrides")):
        with pytest.raises(FormError) as caught:
            actions.build_configs(request)
        assert caught.value.field == field, (request, str(caught.value))
    configs = actions.build_configs(QueueRequest(task="cube-single", preset="quick",
                                                 algo="fql", seeds="0-2"))
    assert [(c.algo, c.seed, c.preset) for c in configs] == [
        ("fql", 0, "cube.toml:quick"), ("fql", 1, "cube.toml:quick"),
        ("fql", 2, "cube.toml:quick")]


def test_id_spec_compresses_ranges() -> None:
    assert actions.id_spec([9, 3, 4, 5, 11, 12]) == "3-5,9,11-12"
    assert actions.id_spec([7]) == "7"


def test_detail_reads_logs_checkpoints_and_notices_a_removed_run(seeded: Seeded,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"x" * 10)
    (folder / "sub" / "old.pt").write_bytes(b"y")
    (folder / "worker.log").write_text("".join(f"line {i}\n" for i in range(50_000)))
    with seeded.store.write() as session:
        session.get(Run, seeded.failed).run_dir = str(folder)
    detail = read_detail(seeded.store, seeded.failed)
    assert detail is not None and detail.run.error.startswith("TrainingDiverged")
    assert detail.worker_log.endswith("line 49999\n")
    assert detail.worker_log.startswith("line ")  # cut at a whole line
    assert {c.path.name for c in detail.checkpoints} == {"checkpoint.pt", "old.pt"}
    assert [e.new_status for e in detail.events] == ["queued", "running", "failed"]
    queue.remove(seeded.store, [seeded.failed])
    assert read_detail(seeded.store, seeded.failed) is None
    assert tail(tmp_path / "missing.log") == "" and checkpoints(tmp_path / "missing") == []
