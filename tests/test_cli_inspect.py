"""`fino runs list/show/compare`, `fino report`, `fino plot` and `fino export` against a real
SQLite store: exit codes, the numbers printed, the files written."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fino.cli.main import app
from fino.store import queue
from tests.inspect_fixtures import Seeded, seed_store

FINO_FINAL = "70.0 ± 24.8"  # seeds 60, 70, 80: 70 ± t(0.975, 2) * 10 / sqrt(3)
FQL_FINAL = "35.0 ± 12.4"  # 30, 35, 40
FINO_OFFLINE, FQL_OFFLINE = "22.0 ± 5.0", "21.0 ± 2.5"  # 20, 22, 24 and 20, 21, 22


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    data = seed_store(tmp_path_factory.mktemp("store"))
    yield data
    data.store.dispose()


@pytest.fixture
def fino(seeded: Seeded):
    """Runs `fino ARGS...` against the seeded store, on a wide terminal."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env={"FINO_DB_URL": seeded.url, "COLUMNS": "220"})

    return invoke


def assert_user_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_runs_list_shows_progress_scores_and_filters(fino, seeded: Seeded) -> None:
    result = fino("runs", "list")
    assert result.exit_code == 0, result.output
    assert "cube-single-fino-s0" in result.output and "1-11 of 11 runs" in result.output
    running = fino("runs", "list", "--status", "running")
    row = next(line for line in running.output.splitlines() if "cube-single-fino-s3" in line)
    assert "running" in row and "60%" in row and "23.0" in row and "11.00" in row
    assert "1-1 of 1 runs" in running.output
    tagged = fino("runs", "list", "--tag", "sweep", "--algo", "fino")
    assert "puzzle-3x3-fino-s0" in tagged.output and "cube-single" not in tagged.output
    page = fino("runs", "list", "--limit", "3", "--offset", "3")
    assert "4-6 of 11 runs" in page.output


def test_runs_list_errors_are_one_line_and_exit_1(fino, tmp_path: Path) -> None:
    assert_user_error(fino("runs", "list", "--status", "bogus"), "unknown status bogus")
    assert_user_error(fino("runs", "list", "--db", str(tmp_path / "absent.db")),
                      "no database at")
    assert not (tmp_path / "absent.db").exists()
    (tmp_path / "text.db").write_text("not a database")
    assert_user_error(fino("runs", "list", "--db", str(tmp_path / "text.db")),
                      "not a database")
    assert_user_error(fino("runs", "list", "--sort", "config"), "cannot order by")


def test_runs_show_prints_settings_history_metrics_and_error(fino, seeded: Seeded) -> None:
    result = fino("runs", "show", str(seeded.failed))
    assert result.exit_code == 0, result.output
    for text in ("TrainingDiverged: non-finite loss at step 700", "running -> failed",
                 "/tmp/runs/cube-single-fql-s3", "train.offline_steps", "cube:quick"):
        assert text in result.output
    done = fino("runs", "show", str(seeded.fino[0]), "--full")
    assert "offline 20.0 -> final 60.0 (best 85.0" in done.output
    assert "policy/beta" in done.output and '"noise_scale": 0.1' in done.output
    assert_user_error(fino("runs", "show", "999"), "no run with id 999")


def test_runs_of_a_pack_name_it_and_lists_show_a_pack_column_only_then(tmp_path: Path) -> None:
    data = seed_store(tmp_path)

    def fino(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env={"FINO_DB_URL": data.url,
                                                          "COLUMNS": "220"})
        assert result.exit_code == 0, result.output
        return result.output

    assert "pack" not in fino("runs", "list") and "pack" not in fino("queue", "list")
    first, second = data.fino[:2]
    for run_id in (first, second):  # back in the queue, ahead of the queued run (older)
        assert queue.transition(data.store, run_id, ("done",), "queued")
    claims = queue.claim_pack(data.store, host="h", pid=1, size=2, fits=lambda _a, _b: True)
    pack = claims[0].pack_id
    assert pack and [c.run_id for c in claims] == [first, second]

    shown = fino("runs", "show", str(first))
    assert re.search(rf"│ pack +{pack} ", shown), shown  # a line of the run's panel
    assert f"claimed by h:1 in pack {pack} (2 runs)" in shown  # its status history
    assert "pack" not in fino("runs", "show", str(data.queued))
    for listed in (fino("runs", "list"), fino("queue", "list")):
        cells = [line.replace("│", " ").replace("┃", " ").split()
                 for line in listed.splitlines()]
        assert "pack" in next(c for c in cells if c[:2] == ["id", "name"])  # the header
        rows = {int(c[0]): c for c in cells if c and c[0].isdigit()}
        assert pack in rows[first] and pack in rows[second] and pack not in rows[data.queued]


def test_runs_compare_gives_per_run_scores_and_group_intervals(fino, seeded: Seeded) -> None:
    ids = f"{seeded.fino[0]}-{seeded.fql[-1]}"
    result = fino("runs", "compare", ids)
    assert result.exit_code == 0, result.output
    assert FINO_FINAL in result.output and FQL_FINAL in result.output
    assert FINO_OFFLINE in result.output and "85.0" in result.output
    data = json.loads(fino("runs", "compare", ids, "--json").output)
    by_group = {g["group"]: g for g in data["groups"]}
    assert by_group["fino"]["final"]["mean"] == 70.0 and by_group["fino"]["final"]["n"] == 3
    assert by_group["fql"]["final"]["ci95"] == pytest.approx(12.42, abs=0.01)
    assert [r["best"] for r in data["runs"]][:3] == [85.0, 70.0, 80.0]
    assert_user_error(fino("runs", "compare", ids, "--key", "eval/scor"),
                      "did you mean eval/score")
    assert_user_error(fino("runs", "compare", "77"), "no run with id 77")


def test_report_puts_methods_side_by_side_offline_to_online(fino) -> None:
    result = fino("report")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ cube-single"))
    assert f"{FINO_OFFLINE} -> {FINO_FINAL}" in row and f"{FQL_OFFLINE} -> {FQL_FINAL}" in row
    assert "fino balanced=True" in result.output and "fql balanced=False" in result.output
    data = json.loads(fino("report", "--json").output)
    online = {g["method"]: g["online"] for g in data["groups"]}
    # 90 and 92: sd sqrt(2), so the half-width is t(0.975, 1) = 12.706 itself.
    assert online["fino balanced=True"] == pytest.approx({"mean": 91.0, "ci": 12.706, "n": 2},
                                                         abs=1e-3)
    pooled = json.loads(fino("report", "--group-by", "algo", "--no-split", "--json").output)
    assert {g["row"]: g["online"]["n"] for g in pooled["groups"]} == {"fino": 5, "fql": 3}
    assert_user_error(fino("report", "--group-by", "nope"), "cannot group by nope")
    assert_user_error(fino("report", "--status", "cancelled"), "no runs with status cancelled")
    assert_user_error(fino("report", "--key", "eval/nothing"), "no metric 'eval/nothing'")


def test_plot_writes_a_png_of_grouped_or_single_curves(fino, seeded: Seeded,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "figs" / "curves.png"
    ids = f"{seeded.fino[0]}-{seeded.running}"
    result = fino("plot", ids, "--key", "eval/score", "--key", "policy/entropy", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    # The running run (seed 3) ends at step 1000: its group's mean is cut there, and said so.
    assert f"where #{seeded.running} ends" in result.output
    single = tmp_path / "runs.png"
    result = fino("plot", ids, "--no-group", "--key", "critic/q_loss", "--out", str(single))
    assert result.exit_code == 0, result.output
    assert single.stat().st_size > 10_000
    assert_user_error(fino("plot", ids, "--key", "policy/betta", "--out", str(single)),
                      "did you mean policy/beta")
    assert_user_error(fino("plot", ids, "--out", str(tmp_path / "x.svg")), "must end in .png")


def test_export_writes_long_rows_readable_back(fino, seeded: Seeded, tmp_path: Path) -> None:
    ids = [str(seeded.fino[0]), str(seeded.fql[0])]
    expected = 2 * 5  # eval/score at five steps each
    result = fino("export", *ids, "--key", "eval/score")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == expected
    assert rows[-1] == {"run_id": str(seeded.fql[0]), "name": "cube-single-fql-s0",
                        "task": "cube-single", "algo": "fql", "seed": "0", "step": "2000",
                        "key": "eval/score", "value": "30.0", "wall_time": "1700002000.0"}

    json_file = tmp_path / "m.json"
    assert fino("export", *ids, "-f", "json", "-k", "eval/score", "--out",
                str(json_file)).exit_code == 0
    records = json.loads(json_file.read_text())
    assert len(records) == expected and records[3]["value"] == 85.0

    pq = pytest.importorskip("pyarrow.parquet")
    parquet_file = tmp_path / "m.parquet"
    result = fino("export", *ids, "-f", "parquet", "--out", str(parquet_file))
    assert result.exit_code == 0, result.output
    table = pq.read_table(parquet_file)
    assert table.column_names == ["run_id", "name", "task", "algo", "seed", "step", "key",
                                  "value", "wall_time"]
    # Run 1 also has 3000 critic/q_loss points; each run has five evaluations of 5 or 4 keys.
    assert table.num_rows == 3000 + 5 * 5 + 5 * 4
    scores = [v for k, v in zip(table["key"].to_pylist(), table["value"].to_pylist(),
                                strict=True) if k == "eval/score"]
    assert scores[-1] == 30.0
    assert_user_error(fino("export", str(seeded.queued)), "have no metrics yet")
    assert_user_error(fino("export", "1", "-k", "nope/key"), "no metric 'nope/key'")


def test_report_of_one_seed_says_n_once(fino, seeded) -> None:
    result = fino("report", str(seeded.fino[0]))
    assert result.exit_code == 0, result.output
    assert result.output.count("n=1") == result.output.count("(n=1)") == 2  # offline, online


def test_plot_without_out_writes_curves_png_here_and_prints_its_full_path(
        fino, seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = fino("plot", str(seeded.fino[0]))
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
