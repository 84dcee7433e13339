"""`fino tui` (also `fino-tui`): the dashboard. The UI is imported only when it opens: the core
and the rest of the CLI never import it."""

from __future__ import annotations

from typing import Annotated

import typer

from fino.cli.common import fail
from fino.cli.options import DbOption
from fino.cli.tune import OptunaStorageOption
from fino.tune import DEFAULT_STORAGE

REFRESH_S = 2.0


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

    run_dashboard(db, refresh=refresh, light=light, optuna_storage=optuna_storage)
