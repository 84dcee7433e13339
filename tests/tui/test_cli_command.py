"""`fino tui` is `fino-tui`: the same options open the same dashboard on the same store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fino.cli.main import app
from fino.cli.tui import main
from fino_tui.app import THEMES, FinoApp
from tests.inspect_fixtures import Seeded


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What each dashboard was opened with; the app does not start a terminal session."""
    seen: list[dict[str, object]] = []

    def record(self: FinoApp) -> None:
        seen.append({"url": self.store.url, "refresh": self.refresh_interval,
                     "theme": self.theme, "optuna_storage": self.optuna_storage})

    monkeypatch.setattr(FinoApp, "run", record)
    return seen


def test_fino_tui_help_lists_the_dashboards_options():
    result = CliRunner().invoke(app, ["tui", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for option in ("--db", "--refresh", "--light", "--optuna-storage"):
        assert option in result.output


def test_fino_tui_and_fino_tui_script_open_the_same_dashboard(
        seeded: Seeded, tmp_path: Path, opened: list[dict[str, object]]) -> None:
    args = ["--db", seeded.url, "--refresh", "1.5", "--light",
            "--optuna-storage", str(tmp_path / "studies.journal")]
    result = CliRunner().invoke(app, ["tui", *args])
    assert result.exit_code == 0, result.output
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    assert len(opened) == 2 and opened[0] == opened[1]
    assert opened[0] == {"url": seeded.store.url, "refresh": 1.5, "theme": THEMES[1],
                         "optuna_storage": str(tmp_path / "studies.journal")}
