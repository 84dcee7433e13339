"""`fino tui` (also `fino-tui`): the dashboard. The UI is imported only when it opens: the core
and the rest of the CLI never import it."""

from __future__ import annotations

from typing import Annotated

import typer

from fino.cli.common import fail, open_store, tidy_help
from fino.cli.options import DbOption
from fino.cli.tune import OptunaStorageOption
from fino.runfacts import REFRESH_S
from fino.tune import DEFAULT_STORAGE

__all__ = ["REFRESH_S", "main", "tui"]


def tui(
    db: DbOption = None,
    refresh: Annotated[float, typer.Option(
        help="Seconds between reads of the database.")] = REFRESH_S,
    light: Annotated[bool, typer.Option("--light", help="Start with the light theme.")
                     ] = False,
    optuna_storage: OptunaStorageOption = DEFAULT_STORAGE,
) -> None:
    """Open the dashboard: runs, live plots, run detail, actions and tuning studies.

    Example: fino tui --db experiments.db
    """
    if refresh <= 0:
        fail(f"--refresh {refresh:g}: must be more than 0 seconds")
    from fino_tui.app import run_dashboard

    # Opened for reading: a SQLite file that does not exist is one red line, not a new database.
    run_dashboard(open_store(db, create=False), refresh=refresh, light=light,
                  optuna_storage=optuna_storage)


def main(argv: list[str] | None = None) -> None:
    """`fino-tui`: the same command as `fino tui`."""
    cli = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    cli.command(help="The FINO Lab dashboard: runs, live plots, run detail, actions and "
                     "tuning studies (also `fino tui`).")(tui)
    command = typer.main.get_command(cli)
    tidy_help(command)
    command.main(args=argv, prog_name="fino-tui")


if __name__ == "__main__":
    main()
