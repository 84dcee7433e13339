"""The command line against crafted input and awkward databases: stored text shown literally,
tags checked at the edge, validation errors that name the setting, a read-only database as one
line, and no file left behind by a command that only reads or that failed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from fino.cli.main import app
from fino.store.db import Store
from fino.store.models import Event, Run

NAME = "\x1b[31mred[bold]name[/]"
TAGS = "[bold red]x[/],\x1b]0;title\x07"
ERROR = "boom \x1b[2J[blink]gone[/]\nsecond line"
NOTE = ":smile: \x9b31m[i]note[/i]"
PACK = "[i]p\x1b[0m"


def fino(*args: str, cwd: Path | None = None):
    """`fino ARGS...` on a wide terminal (in `cwd` when given); the result."""
    runner = CliRunner()
    env = {"COLUMNS": "250", "FINO_DB_URL": ""}
    if cwd is None:
        return runner.invoke(app, list(args), env=env)
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(args), env=env)
    finally:
        os.chdir(previous)


def one_line_error(result, *texts: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "INSERT" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in texts:
        assert text in lines[0], lines[0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A SQLite file with one queued run whose name, tags, notes, error, pack and an event hold
    markup and terminal escape sequences."""
    path = tmp_path / "experiments.db"
    added = fino("queue", "add", "--task", "cube-single", "--tag", "ok", "--db", str(path),
                 "--runs-dir", str(tmp_path / "runs"), "--allow-missing-data")
    assert added.exit_code == 0, added.output
    store = Store(str(path))
    with store.write() as session:
        session.execute(update(Run).values(name=NAME, tags=TAGS, error=ERROR, notes=NOTE,
                                           pack_id=PACK))
        session.add(Event(run_id=1, kind="note", message="\x1b[41m[reverse]event[/]"))
    store.dispose()
    return str(path)


def test_markup_and_escapes_in_stored_text_show_literally(db: str) -> None:
    listed = fino("queue", "list", "--db", db)
    shown = fino("runs", "show", "1", "--db", db)
    for result in (listed, shown, fino("runs", "list", "--db", db)):
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "^[[31mred[bold]name[/]" in result.output
        assert "[i]p^[[0m" in result.output  # the pack
    assert "[bold red]x[/],^[]0;title^G" in listed.output
    for text in ("[bold red]x[/],^[]0;title^G", "boom ^[[2J[blink]gone[/]", "second line",
                 ":smile: \\x9b31m[i]note[/i]", "^[[41m[reverse]event[/]"):
        assert text in shown.output, text
    assert "\x9b" not in shown.output and "😄" not in shown.output


@pytest.mark.parametrize("tag", ["[bold red]x[/]", "a,b", "", "x\x1b[31m", "two words"])
def test_queue_add_refuses_a_bad_tag_before_anything_is_written(tmp_path: Path,
                                                                tag: str) -> None:
    path = tmp_path / "experiments.db"
    result = fino("queue", "add", "--task", "cube-single", "--tag", "good", "--tag", tag,
                  "--db", str(path))
    one_line_error(result, "letters, digits and . _ - : @ /")
    assert "\x1b" not in result.output
    if tag:
        assert repr(tag) in result.output or "^[" in result.output
    assert not path.exists()


@pytest.mark.parametrize(("setting", "expected"), [
    ("agent.actor_hidden_dims=256",
     "agent.actor_hidden_dims: expected a list of positive integers like [512, 512, 512, 512], "
     "got 256"),
    ("agent.value_hidden_dims=[256, true]", "agent.value_hidden_dims: expected a list"),
    ("task.task_id=abc", "task_id='abc': expected an integer 1..5"),
    ("train.offline_steps=99999999999999999999999",
     "train.offline_steps=99999999999999999999999: must be an integer in [0, 2147483647]"),
    ("train.online_steps=2147000000",
     "offline_steps + train.online_steps = 2148000000: must be <= 2147483647"),
    ("agent.batch_size=4294967296", "agent.batch_size=4294967296: must be in [1, 2147483647]"),
    ("agent.alpha=1e999", "agent.alpha=inf: must be a finite number"),
    ("task.options=3", "options=3: expected a table of backend options"),
    ("task.options={when=2024-05-01}",
     "options.when=datetime.date(2024, 5, 1): expected a number, string, boolean"),
])
def test_bad_settings_are_refused_naming_the_setting(tmp_path: Path, setting: str,
                                                     expected: str) -> None:
    path = tmp_path / "experiments.db"
    result = fino("queue", "add", "--task", "cube-single", "--set", setting, "--db", str(path))
    one_line_error(result, expected)
    assert not path.exists()


def test_task_options_are_checked_against_the_backend_at_add_time(tmp_path: Path) -> None:
    base = ["queue", "add", "--task", "Pendulum-v1", "--backend", "gymnasium", "--dataset",
            str(tmp_path / "later.npz"), "--db", str(tmp_path / "x.db")]
    one_line_error(fino(*base, "--set", "task.options={reward_scael=2.0}"),
                   "unknown task option(s) ['reward_scael']", "reward_scale")
    one_line_error(fino(*base, "--set", 'task.options={reward_scale="big"}'),
                   "reward_scale='big': must be a number")


def test_seeds_priority_and_attempts_are_bounded(tmp_path: Path) -> None:
    base = ["queue", "add", "--task", "cube-single", "--db", str(tmp_path / "x.db")]
    one_line_error(fino(*base, "--seeds", "0-99999999999"), "at most 1000 seeds")
    one_line_error(fino(*base, "--seeds", "99999999999"), "0 <= N <= 2147483647")
    one_line_error(fino(*base, "--priority", "99999999999"), "--priority 99999999999")
    one_line_error(fino(*base, "--max-attempts", "99999999999"), "--max-attempts")
    assert not (tmp_path / "x.db").exists()


def test_a_preset_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_bytes(b'source = "me"\ntasks = ["cube"]\n# caf\xe9\n')
    one_line_error(fino("queue", "add", "--task", "cube-single", "--preset", str(preset),
                        "--db", str(tmp_path / "x.db")),
                   f"{preset}: not UTF-8 text", "0xe9")


def test_reading_commands_create_no_database(tmp_path: Path) -> None:
    for args in (["queue", "list"], ["queue", "show", "1"], ["queue", "cancel", "1"],
                 ["queue", "retry", "1"], ["queue", "priority", "1", "--to", "2"],
                 ["queue", "rm", "1"], ["queue", "reap"], ["runs", "list"],
                 ["runs", "show", "1"], ["runs", "compare", "1"], ["report"],
                 ["plot", "1"], ["export", "1"]):
        one_line_error(fino(*args, cwd=tmp_path), "no database at experiments.db",
                       "fino queue add")
    assert list(tmp_path.iterdir()) == []


def _read_only_error(result, shown_url: str) -> None:
    one_line_error(result, f"cannot write to the database {shown_url}",
                   "attempt to write a readonly database", "permissions")


@dataclass(frozen=True)
class Ran:
    exit_code: int
    output: str


def fino_process(*args: str) -> Ran:
    """`fino ARGS...` in a process of its own (none of this process's SQLite connections)."""
    done = subprocess.run([sys.executable, "-m", "fino.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "250"}, check=False)
    return Ran(done.returncode, done.stdout + done.stderr)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a file without write permission")
def test_a_read_only_database_file_is_one_actionable_line(db: str) -> None:
    os.chmod(db, 0o444)
    try:
        for args in (["queue", "add", "--task", "cube-single", "--allow-missing-data"],
                     ["queue", "cancel", "1"], ["queue", "priority", "1", "--to", "3"],
                     ["queue", "rm", "1"]):
            _read_only_error(fino_process(*args, "--db", db), f"sqlite:///{db}")
        assert fino_process("queue", "list", "--db", db).exit_code == 0
    finally:
        os.chmod(db, 0o644)


def test_a_database_opened_read_only_is_one_actionable_line(db: str) -> None:
    """SQLite's read-only mode: the same refusal as a read-only file, even for root."""
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    for args in (["queue", "add", "--task", "cube-single", "--tag", "t", "--allow-missing-data"],
                 ["queue", "cancel", "1"], ["queue", "rm", "1"]):
        _read_only_error(fino(*args, "--db", url), "sqlite:///file%3A")
    store = Store(db)
    with store.read() as session:
        assert session.scalars(select(Run.status)).all() == ["queued"]
    store.dispose()


def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "first"
    result = fino("run", "--task", "cube-single", "--dataset-dir", str(tmp_path / "no-data"),
                  "--out", str(out), "--quiet")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"
    (kept / "old").mkdir(parents=True)
    result = fino("run", "--task", "cube-single", "--dataset-dir", str(tmp_path / "no-data"),
                  "--out", str(kept / "new"), "--quiet")
    assert result.exit_code == 1 and sorted(p.name for p in kept.iterdir()) == ["old"]
