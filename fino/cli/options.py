"""Option types shared by the commands that use the experiment store."""

from __future__ import annotations

from typing import Annotated

import typer

from fino.cli.complete import complete_run_id

DbOption = Annotated[str | None, typer.Option(
    "--db", envvar="FINO_DB_URL", show_default=False,
    help="Database: a SQLAlchemy URL (postgresql+psycopg://user@host/db) or a SQLite path. "
         "Default: ./experiments.db, or $FINO_DB_URL.")]

RunIdsArg = Annotated[list[str], typer.Argument(
    show_default=False, metavar="ID", help="Run ids: 4, 3-7 or 3,5,9-12 (repeatable).",
    autocompletion=complete_run_id)]
RunIdArg = Annotated[int, typer.Argument(
    show_default=False, metavar="ID", help="Run id.", autocompletion=complete_run_id)]
KeyOption = Annotated[str, typer.Option(
    "--key", "-k", help="Metric key: eval/score (success % or normalised score), eval/return, "
                        "policy/entropy, policy/beta, online/episode_score, critic/..., ...")]
StatusOption = Annotated[list[str] | None, typer.Option(
    "--status", "-s", show_default=False,
    help="Only runs with this status (repeatable): queued, running, done, failed, cancelled, "
         "lost, pruned.")]
TaskOption = Annotated[str | None, typer.Option(
    "--task", "-t", show_default=False, help="Only tasks whose name contains this.")]
AlgoOption = Annotated[str | None, typer.Option(
    "--algo", "-a", show_default=False, help="Only this algorithm: fino or fql.")]
TagOption = Annotated[str | None, typer.Option(
    "--tag", show_default=False, help="Only runs with this tag.")]
StudyOption = Annotated[str | None, typer.Option(
    "--study", show_default=False, help="Only runs of this tuning study.")]
