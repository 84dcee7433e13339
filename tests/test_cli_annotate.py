"""The whole CLI as a newcomer meets it: runs named so that they can be told apart, tags, names
and notes set from the command line, help that reads plainly, `fino tui`, shell completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fino.backends.base import TaskConfig
from fino.cli.complete import complete_preset, complete_run_id, complete_task
from fino.cli.main import app
from fino.store.models import Event, Run
from fino.store.queue import run_name
from fino.train.presets import build_run_config
from tests.inspect_fixtures import Seeded, seed_store


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed_store(tmp_path)


@pytest.fixture
def fino(seeded: Seeded):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env={"FINO_DB_URL": seeded.url, "COLUMNS": "100"})
    return invoke


def run_of(seeded: Seeded, run_id: int) -> Run:
    with seeded.store.read() as session:
        run = session.get(Run, run_id)
        session.expunge(run)
        return run


# ---- names ---------------------------------------------------------------------------------


def test_default_names_tell_task_preset_study_and_algorithm_apart() -> None:
    def config(algo: str = "fino", preset: str | None = None, seed: int = 0):
        return build_run_config(TaskConfig("cube-single"), preset=preset, algo=algo, seed=seed)

    assert run_name(config()) == "cube-single-t1-fino-s0"
    assert run_name(config("fql", "quick", 1)) == "cube-single-t1-quick-fql-s1"
    assert run_name(config(preset="quick"), study="alpha", trial=3) == \
        "cube-single-t1-quick-alpha.3-fino-s0"
    double = build_run_config(TaskConfig("cube-double"))
    assert run_name(double) == "cube-double-t2-fino-s0"  # the paper's default task
    pendulum = build_run_config(TaskConfig("Pendulum-v1", backend="gymnasium",
                                           dataset="x.npz"))
    assert run_name(pendulum) == "Pendulum-v1-fino-s0"
    # The demo, a tuning trial and a paper-preset run of one task and seed: three names.
    assert len({run_name(config(preset="quick")), run_name(config(preset="quick"),
                                                          study="s", trial=0),
                run_name(config())}) == 3


def test_queue_add_takes_a_name(fino, seeded: Seeded) -> None:
    add = ("queue", "add", "--task", "cube-single", "--allow-missing-data")
    one = fino(*add, "--name", "alpha-300")
    assert one.exit_code == 0, one.output
    several = fino(*add, "--seeds", "0-1", "--name", "sweep")
    assert several.exit_code == 0, several.output
    with seeded.store.read() as session:
        names = session.scalars(select(Run.name).where(Run.id > 11).order_by(Run.id)).all()
    assert names == ["alpha-300", "sweep-s0", "sweep-s1"]
    bad = fino(*add, "--name", "a/b")
    assert bad.exit_code == 1 and "run name 'a/b'" in bad.output


# ---- tags, names and notes of existing runs ----------------------------------------------------


def test_runs_tag_adds_and_removes_checked_tags(fino, seeded: Seeded) -> None:
    done = fino("runs", "tag", "1-2", "--add", "best", "--remove", "paper")
    assert done.exit_code == 0, done.output
    assert "run 1: tags best" in done.output and "run 2: tags best" in done.output
    assert run_of(seeded, 1).tags == "best" and run_of(seeded, 3).tags == "paper"
    with seeded.store.read() as session:
        kinds = session.scalars(select(Event.kind).where(Event.run_id == 1)).all()
    assert "tags" in kinds
    assert "unchanged" in fino("runs", "tag", "1", "--add", "best").output
    unknown = fino("runs", "tag", "1", "99", "--add", "x")
    assert unknown.exit_code == 1 and "run 99: unknown id" in unknown.output
    bad = fino("runs", "tag", "1", "--add", "two words")
    assert bad.exit_code == 1 and "tag 'two words'" in bad.output
    nothing = fino("runs", "tag", "1")
    assert nothing.exit_code == 1 and "nothing to change" in nothing.output


def test_runs_rename_and_note(fino, seeded: Seeded) -> None:
    renamed = fino("runs", "rename", "1", "alpha-300-s0")
    assert renamed.exit_code == 0 and "cube-single-fino-s0 -> alpha-300-s0" in renamed.output
    assert run_of(seeded, 1).name == "alpha-300-s0"
    assert run_of(seeded, 1).run_dir == "/tmp/runs/cube-single-fino-s0"  # the folder stays
    for bad, message in ((["1", "a/b"], "run name 'a/b'"), (["99", "x"], "no run with id 99")):
        result = fino("runs", "rename", *bad)
        assert result.exit_code == 1 and message in result.output
    noted = fino("runs", "note", "1", "diverged after the lr change")
    assert noted.exit_code == 0 and "note saved" in noted.output
    assert "diverged after the lr change" in fino("runs", "show", "1").output
    assert fino("runs", "note", "1", "").exit_code == 0
    assert run_of(seeded, 1).notes == ""
    assert fino("runs", "note", "99", "x").exit_code == 1


def test_annotating_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = CliRunner().invoke(app, ["runs", "tag", "1", "--add", "x", "--db", str(missing)])
    assert result.exit_code == 1 and "no database at" in result.output
    assert not missing.exists()


# ---- help --------------------------------------------------------------------------------------


def commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def test_help_reads_plainly_and_run_ids_read_id() -> None:
    import typer

    root = typer.main.get_command(app)
    runner = CliRunner()
    for path, command in commands(root):
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"}).output
        for typed in ("<str>", "<bool>", "<int>", "<float>", "<path>", "<list", "{"):
            assert typed not in out, (path, typed)
        summary = (command.help or "").strip().splitlines()[0]
        assert summary.endswith(".") and len(summary) <= 90, (path, summary)
        usage = next(line for line in out.splitlines() if "Usage:" in line)
        if path in (("runs", "compare"), ("queue", "cancel"), ("plot",), ("export",)):
            assert usage.rstrip().endswith("ID..."), usage
        if path in (("runs", "show"), ("runs", "note"), ("queue", "show")):
            assert " ID" in usage, usage


# ---- fino tui ----------------------------------------------------------------------------------


def test_fino_tui_is_a_command_and_the_cli_never_imports_the_ui() -> None:
    check = ("import sys, fino.cli.main; "
             "sys.exit(any(m.startswith(('fino_tui', 'textual')) for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
    out = CliRunner().invoke(app, ["tui", "--help"], env={"COLUMNS": "120"}).output
    for option in ("--db", "--refresh", "--light", "--optuna-storage"):
        assert option in out
    zero = CliRunner().invoke(app, ["tui", "--refresh", "0"])
    assert zero.exit_code == 1 and "--refresh 0" in zero.output


def test_fino_tui_is_typer_with_the_same_options(capsys: pytest.CaptureFixture[str]) -> None:
    from fino.cli.tui import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Usage: fino-tui" in out
    for option in ("--db", "--refresh", "--light", "--optuna-storage"):
        assert option in out


# ---- shell completion --------------------------------------------------------------------------


def test_completion_offers_task_aliases_presets_and_run_ids(
        seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"cube-single", "cube-double"} <= set(complete_task("cube"))
    assert all(a.startswith("ant") for a in complete_task("ant"))
    assert {"cube", "cube:quick", "cube:paper", "quick", "paper"} <= set(complete_preset(""))
    assert complete_preset("cube:q") == ["cube:quick"]
    monkeypatch.setenv("FINO_DB_URL", seeded.url)
    found = complete_run_id(None, "1")
    assert ("11", "puzzle-3x3-fino-s0") in found and all(i.startswith("1") for i, _ in found)

    typed_db = SimpleNamespace(params={"db": str(tmp_path / "typo.db")})  # --db typo.db
    assert complete_run_id(typed_db, "") == []  # no database there: nothing, and none made
    assert not (tmp_path / "typo.db").exists()
    monkeypatch.setenv("FINO_DB_URL", "nosuchdriver://x")
    assert complete_run_id(None, "") == []
