"""Helpers shared by CLI commands: one-line errors, the store, id lists."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True)
DEBUG = False  # set by `fino --debug`
STATUS_STYLE = {"queued": "cyan", "running": "bold yellow", "done": "green", "failed": "red",
                "cancelled": "magenta", "lost": "bold red", "pruned": "dim"}


def fail(message: str, code: int = 1) -> NoReturn:
    """A one-line red error and a non-zero exit; the traceback only with `fino --debug`."""
    if DEBUG and sys.exc_info()[0] is not None:
        err_console.print_exception()
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def open_store(db: str | None):
    """The store, or a one-line error naming the (masked) URL."""
    from fino.store.db import Store, StoreError

    try:
        return Store(db)
    except StoreError as exc:
        fail(str(exc))


def parse_ids(specs: list[str]) -> list[int]:
    """Run ids from `3`, `3-7` and `3,5` forms, in order, without repeats."""
    out: list[int] = []
    for spec in specs:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    if hi < lo:
                        raise ValueError
                    out += range(lo, hi + 1)
                else:
                    out.append(int(part))
            except ValueError:
                fail(f"bad run id {part!r}: use N, N-M or N,M")
    return list(dict.fromkeys(out))


def styled_status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"
