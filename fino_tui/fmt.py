"""Cell texts shared by the screens."""

from __future__ import annotations

import math

from rich.text import Text

from fino.cli.common import STATUS_STYLE
from fino.cli.readout import fmt_duration
from fino.store.text import printable
from fino_tui.queries import Progress

__all__ = ["fmt_duration", "number", "progress", "status"]


def number(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def status(name: str, cancel_requested: bool = False) -> Text:
    """The status in its colour; a running run asked to cancel reads 'stopping'."""
    if name == "running" and cancel_requested:
        return Text("stopping", style="bold magenta")
    return Text(printable(name), style=STATUS_STYLE.get(name, ""))


def progress(value: Progress, run_status: str) -> str:
    """'off 45%' or 'on 80%' (phase and share of all steps), '100%' once done."""
    fraction = value.fraction
    if run_status == "done":
        return "100%"
    if fraction is None:
        return "-"
    return f"{'on' if value.online else 'off'} {100 * fraction:.0f}%"
