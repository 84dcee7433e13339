"""`fino`: the command line entry point; one module per command group."""

from __future__ import annotations

import typer

from fino.cli.bench import bench
from fino.cli.data import data_app
from fino.cli.demo import demo
from fino.cli.run import run

app = typer.Typer(help="FINO Lab: run, watch and tune FINO (and FQL).", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_show_locals=False)


@app.callback()
def main() -> None:
    """FINO Lab: run, watch and tune FINO (and FQL)."""


app.command()(bench)
app.command()(run)
app.command()(demo)
app.add_typer(data_app, name="data")


if __name__ == "__main__":
    app()
