"""Helpers shared by CLI commands: one-line errors, the store, id lists, stored text shown
literally."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import TyperGroup

from fino.runfacts import STATUS_STYLE  # shared with the dashboard
from fino.store.text import TagError, check_tags, printable

err_console = Console(stderr=True)
DEBUG = False  # set by `fino --debug`
OPENED_URL: str | None = None  # the database the command opened, named in database errors


def fail(message: str, code: int = 1) -> NoReturn:
    """A one-line red error and a non-zero exit; the traceback only with `fino --debug`."""
    if DEBUG and sys.exc_info()[0] is not None:
        err_console.print_exception()
    err_console.print(f"[red]error:[/] {escape(printable(message, multiline=True))}",
                      highlight=False, emoji=False, soft_wrap=True)
    raise typer.Exit(code)


def say_task_resolution(task: str | None) -> None:
    """One line saying which Minari dataset a D4RL name (as the papers' commands write it)
    stands for; nothing for other names."""
    from fino.backends.d4rl_names import resolution_note

    note = resolution_note(task) if task else None
    if note:
        err_console.print(f"note: {escape(printable(note))}", highlight=False, soft_wrap=True)


def open_store(db: str | None, *, create: bool = True):
    """The store, or a one-line error naming the (masked) URL. `create=False`: a SQLite file
    that does not exist is that error (commands that read or change existing runs)."""
    global OPENED_URL
    from fino.store.db import Store, StoreError

    try:
        store = Store(db, create=create)
    except StoreError as exc:
        fail(str(exc))
    OPENED_URL = store.url
    return store


def database_failure(exc: Exception) -> str:
    """A database error as one actionable line: the driver's reason (never the statement or
    its parameters, never a password) and what to check."""
    from fino.store.db import describe_error, masked, resolve_url

    url = OPENED_URL or resolve_url(None)
    reason = describe_error(exc, url)
    where = masked(url)
    lowered = reason.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return (f"cannot write to the database {where}: {reason} (check the permissions of "
                "the file and of its folder)")
    if "locked" in lowered or "busy" in lowered:
        return (f"the database {where} is busy: {reason} (another process holds it; try "
                "again)")
    if "disk" in lowered and ("full" in lowered or "i/o" in lowered):
        return f"cannot write to the database {where}: {reason} (check the disk)"
    return f"database error on {where}: {reason}"


class FinoGroup(TyperGroup):
    """The `fino` command group: a database error in any command is one red line; every
    parameter's help reads plainly (`tidy_help`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy_help(self)

    def invoke(self, ctx: Any) -> Any:
        from sqlalchemy.exc import DBAPIError

        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            fail(database_failure(exc))


def parse_tags(tags: Iterable[str] | None) -> list[str]:
    """`--tag` values checked as the dashboard checks them; a one-line error naming a bad one."""
    try:
        return check_tags(tags or [])
    except TagError as exc:
        fail(str(exc))


def plain(value: object, default: str = "-", *, multiline: bool = False) -> Text:
    """Stored text as rich shows it literally: no markup, no emoji codes, no escape sequences."""
    text = "" if value is None else str(value)
    return Text(printable(text or default, multiline=multiline))


def shown(value: object) -> str:
    """Stored text for a rich markup string: control characters visible, markup escaped."""
    return escape(printable("" if value is None else value))


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
    return f"[{STATUS_STYLE.get(status, 'white')}]{shown(status)}[/]"


# ---- help text ---------------------------------------------------------------------------------

RUN_ID_ARGUMENTS = ("ids", "run_id", "run_ids")
METAVARS = {"db": "URL", "set_": "SECTION.KEY=VALUE", "optuna_storage": "STORAGE",
            "sort": "COLUMN", "search": "TEXT", "address": "ADDRESS", "to": "N"}


def tidy_help(command: Any) -> None:
    """Metavars a newcomer can read on `command` and its subcommands: nothing after a flag,
    a name for a value (URL, TASK, N, FILE) rather than the type Typer prints (<str>,
    <bool>), and `ID...` for every run-id argument. Applied to the parameters as the command
    lists them, which includes those Typer adds later (--help, --install-completion)."""
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    if command.help:
        command.help = reflow(command.help)
    params = command.get_params

    def tidied(ctx: Any) -> list[Any]:
        found = params(ctx)
        for param in found:
            if param.param_type_name == "argument":
                _tidy_argument(param)
            elif param.metavar is None:
                param.metavar = option_metavar(param)
        return found

    command.get_params = tidied


def reflow(text: str) -> str:
    """A docstring's paragraphs each on one line, so that the terminal wraps them where it
    must (Typer keeps the source's line breaks: sentences broke in the middle); paragraphs of
    examples keep their lines."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("Example") else " ".join(p.split("\n"))
                       for p in paragraphs)


def option_metavar(param: Any) -> str:
    """'' for a flag, the choices of a choice, else a name: URL, SECTION.KEY=VALUE, N, NUM,
    FILE, DIR or the option's own name in capitals."""
    if getattr(param, "is_flag", False):
        return ""
    name = param.name or ""
    described = getattr(param, "type_descriptor", None)  # Typer >= 0.29
    choices = getattr(described, "choices", None) if described is not None else None
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    annotation = getattr(described, "annotation", None)
    annotation = getattr(annotation, "__args__", (annotation,))[0]  # list[str] -> str
    if name in METAVARS:
        return METAVARS[name]
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUM"
    if name.endswith("dir") or name == "directory":
        return "DIR"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "FILE"
    return name.rstrip("_").upper()


def _tidy_argument(param: Any) -> None:
    """Run ids read ID (ID... when several); others their name in capitals. The usage line
    shows the metavar as it is (Typer wraps it in braces), the type column nothing (the help
    says what the argument is)."""
    several = param.nargs != 1
    if param.name in RUN_ID_ARGUMENTS or param.metavar in ("ID", "ID..."):
        param.metavar = "ID..." if several else "ID"
    elif param.metavar is None:
        param.metavar = param.name.upper() + ("..." if several else "")
    label = param.metavar if param.required else f"[{param.metavar}]"
    param.get_usage_pieces = lambda ctx: [label]
    param.display_type_rich = lambda ctx: None
