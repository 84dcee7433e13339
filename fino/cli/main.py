"""`fino`: the command line entry point; one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from fino.launch.threads import wait_passively

wait_passively()  # before anything imports torch (and with it OpenMP); see fino/launch/threads.py

from fino.cli import common  # noqa: E402
from fino.cli.bench import bench  # noqa: E402
from fino.cli.data import data_app  # noqa: E402
from fino.cli.demo import demo  # noqa: E402
from fino.cli.export import export  # noqa: E402
from fino.cli.plot import plot  # noqa: E402
from fino.cli.queue import queue_app  # noqa: E402
from fino.cli.report import report  # noqa: E402
from fino.cli.run import run  # noqa: E402
from fino.cli.runs import runs_app  # noqa: E402
from fino.cli.study import study_app  # noqa: E402
from fino.cli.tui import tui  # noqa: E402  (imports the dashboard only when it opens)
from fino.cli.tune import tune_app  # noqa: E402
from fino.cli.worker import worker  # noqa: E402

app = typer.Typer(help="FINO Lab: run, watch and tune FINO (and FQL).", no_args_is_help=True,
                  pretty_exceptions_show_locals=False, cls=common.FinoGroup)


@app.callback()
def main(debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback behind an error message.")] = False) -> None:
    """FINO Lab: run, watch and tune FINO (and FQL)."""
    common.DEBUG = debug
    common.OPENED_URL = None


app.command()(bench)
app.command()(run)
app.command()(demo)
app.add_typer(data_app, name="data")
app.add_typer(queue_app, name="queue")
app.command()(worker)
app.add_typer(runs_app, name="runs")
app.command()(report)
app.command()(plot)
app.command()(export)
app.add_typer(tune_app, name="tune")
app.add_typer(study_app, name="study")
app.command()(tui)


if __name__ == "__main__":
    app()
