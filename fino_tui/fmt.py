"""Cell texts shared by the screens."""

from __future__ import annotations

import math

from rich.text import Text

from fino.runfacts import STATUS_STYLE, fmt_duration
from fino.status import RunStatus
from fino.store.text import printable
from fino_tui.queries import Progress

__all__ = ["fmt_duration", "number", "plain", "progress", "status", "workers"]


def plain(value: object, default: str = "-", *, multiline: bool = False) -> Text:
    """Stored text shown literally: no markup, no emoji codes, no escape sequences."""
    text = "" if value is None else str(value)
    return Text(printable(text or default, multiline=multiline))


def number(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def status(name: RunStatus | str, cancel_requested: bool = False) -> Text:
    """The status in its colour; a running run asked to cancel reads 'stopping'."""
    if name == RunStatus.RUNNING and cancel_requested:
        return Text("stopping", style="bold magenta")
    return Text(printable(name), style=STATUS_STYLE.get(name, ""))


def progress(value: Progress, run_status: RunStatus | str) -> str:
    """'off 45%' or 'on 80%' (phase and share of all steps), '100%' once done."""
    fraction = value.fraction
    if run_status == RunStatus.DONE:
        return "100%"
    if fraction is None:
        return "-"
    return f"{'on' if value.online else 'off'} {100 * fraction:.0f}%"


def workers(local_state: str, local: tuple[str, int] | None,
            busy: frozenset[tuple[str, int]]) -> str:
    """The status line's workers: the one started here (`local`: its host and pid, its state)
    and the others whose runs heartbeat (started anywhere: `fino worker`, `fino demo`)."""
    others = len(busy - {local}) if local else len(busy)
    here = f"worker here {local_state}" if local_state != "off" else ""
    if not others:
        return here or "no worker (w starts one)"
    away = f"{others} {'other ' if here else ''}worker{'s' * (others > 1)} at work"
    return f"{here}, {away}" if here else away
