"""`fino tui` / `fino-tui [--db URL]`: the dashboard's one `App`.

Screens are app modes: `runs` (with the run detail pushed over it) and `tuning` (the Optuna
studies of `fino tune`); F2 and F3 switch between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from fino.runfacts import REFRESH_S
from fino.store.db import Store, masked
from fino.tune import DEFAULT_STORAGE
from fino_tui.local_worker import LocalWorker
from fino_tui.screens.dialogs import ChoiceScreen
from fino_tui.screens.help import HelpScreen
from fino_tui.screens.runs import RunsScreen

THEMES = ("textual-dark", "textual-light")


def utc_now() -> datetime:
    return datetime.now(UTC)


def tuning_screen() -> Screen:
    """Imported on first use: Optuna loads only when the tuning view opens."""
    from fino_tui.screens.tuning import TuningScreen

    return TuningScreen()


class FinoApp(App[None]):
    """Runs table, plots and run detail of one experiment store."""

    CSS_PATH = "app.tcss"
    TITLE = "FINO Lab"
    MODES: ClassVar[dict[str, str | Callable[[], Screen]]] = {"runs": RunsScreen,
                                                              "tuning": tuning_screen}
    DEFAULT_MODE = "runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", tooltip="this help"),
        # Shown in the footer of the screen they lead away from (runs: F3, tuning: F2).
        Binding("f2", "switch_mode('runs')", "Runs", show=False, tooltip="the runs view"),
        Binding("f3", "switch_mode('tuning')", "Tuning", show=False,
                tooltip="the tuning view (Optuna)"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False,
                tooltip="light or dark theme"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, tooltip="quit (also q)"),
    ]

    def __init__(self, store: Store, *, refresh_interval: float = REFRESH_S,
                 clock: Callable[[], datetime] = utc_now, runs_dir: Path = Path("runs"),
                 theme: str = THEMES[0], optuna_storage: str = DEFAULT_STORAGE) -> None:
        """`clock`: the time the dashboard calls now (elapsed, ETA, read at); tests fix it.
        `optuna_storage`: where `fino tune` keeps its studies (the tuning view reads it)."""
        super().__init__()
        self.store = store
        self.optuna_storage = optuna_storage
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.runs_dir = runs_dir
        self.local_worker = LocalWorker(store.url)
        self.theme = theme
        self.sub_title = masked(store.url)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]

    def action_request_quit(self) -> None:
        """Quit; a worker started here is stopped (its runs requeued) or left running."""
        worker = self.local_worker
        if not worker.running:
            self.exit()
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                worker.stop()
            if choice in ("stop", "leave"):
                self.exit()

        self.push_screen(ChoiceScreen(
            f"The worker started here (pid {worker.pid}) is running.",
            [("stop", "Stop it (its runs go back to the queue) and quit"),
             ("leave", "Leave it running and quit"), ("stay", "Do not quit")]), answer)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Light or dark theme", "Switch between textual-dark and "
                            "textual-light", self.action_toggle_theme)
        yield SystemCommand("Help", "Screens and keys", self.action_help)
        yield SystemCommand("Runs view", "The runs table and plots (F2)",
                            lambda: self.switch_mode("runs"))
        yield SystemCommand("Tuning view", "Optuna studies: trials, best, history (F3)",
                            lambda: self.switch_mode("tuning"))
        commands = getattr(screen, "commands", None)
        if commands is not None:
            yield from commands()


def run_dashboard(store: Store, *, refresh: float = REFRESH_S, light: bool = False,
                  optuna_storage: str = DEFAULT_STORAGE) -> None:
    """Open the dashboard on a store opened for reading (`Store(url, create=False)`: a SQLite
    file that does not exist is an error, not a new empty database); disposes it on quit."""
    app = FinoApp(store, refresh_interval=refresh, theme=THEMES[1] if light else THEMES[0],
                  optuna_storage=optuna_storage)
    try:
        app.run()
    finally:
        store.dispose()
