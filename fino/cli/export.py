"""`fino export`: runs' metrics as long-format rows (one value per row) in CSV, JSON or Parquet,
streamed so that millions of rows never sit in memory at once."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

from fino.cli.common import fail
from fino.cli.options import DbOption, RunIdsArg
from fino.cli.readout import check_key, finite_or_none, read_store, user_errors

COLUMNS = ("run_id", "name", "task", "algo", "seed", "step", "key", "value", "wall_time")
PARQUET_BATCH = 100_000

Row = tuple[int, str, str, str, int, int, str, float | None, float]


class Format(StrEnum):
    csv = "csv"
    json = "json"
    parquet = "parquet"


def export(
    ids: RunIdsArg,
    format_: Annotated[Format, typer.Option("--format", "-f", help="Output format.")
                       ] = Format.csv,
    out: Annotated[Path | None, typer.Option(
        show_default=False,
        help="File to write; default: standard output (csv, json) or metrics.parquet.")
    ] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", "-k", show_default=False, help="Only this metric key (repeatable).")] = None,
    db: DbOption = None,
) -> None:
    """Runs' metrics as long-format rows in CSV, JSON or Parquet.

    Columns: run_id, name, task, algo, seed, step, key, value, wall_time. JSON is one array of
    objects; a missing value is null (CSV: empty).

    Example: fino export 1-10 --format parquet --out results.parquet --key eval/score
    """
    from fino.store.queries import get_runs, iter_metric_rows, metric_keys, resolve_run_ids

    if format_ is Format.parquet and out is None:
        out = Path("metrics.parquet")
    store = read_store(db)
    with user_errors(), store.read() as session:
        run_ids = resolve_run_ids(session, ids)
        runs = {r.id: r for r in get_runs(session, run_ids)}
        known = metric_keys(session, run_ids)
        for k in key or []:
            check_key(k, known, f"runs {' '.join(ids)}")
        if not known:
            fail(f"runs {' '.join(ids)} have no metrics yet")
        rows: Iterator[Row] = (
            (run_id, runs[run_id].name, runs[run_id].task, runs[run_id].algo,
             runs[run_id].seed, step, k, value, wall_time)
            for run_id, step, k, value, wall_time in iter_metric_rows(session, run_ids, key))
        if format_ is Format.parquet:
            count = _write_parquet(rows, out)  # type: ignore[arg-type]
        elif out is None:
            count = _WRITERS[format_](rows, sys.stdout)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="") as f:
                count = _WRITERS[format_](rows, f)
    if out is not None:
        Console(stderr=True).print(f"{count:,} rows of {len(run_ids)} run(s)")
        typer.echo(str(out))


def _write_csv(rows: Iterator[Row], f: IO[str]) -> int:
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
        count += 1
    return count


def _write_json(rows: Iterator[Row], f: IO[str]) -> int:
    """One JSON array, written an object at a time."""
    f.write("[")
    count = 0
    for row in rows:
        record: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
        record["value"] = finite_or_none(record["value"])
        f.write(("\n" if count == 0 else ",\n") + json.dumps(record))
        count += 1
    f.write("\n]\n")
    return count


def _write_parquet(rows: Iterator[Row], out: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        fail("parquet export needs pyarrow, which is not installed: pip install 'fino[parquet]'")
    schema = pa.schema([("run_id", pa.int64()), ("name", pa.string()), ("task", pa.string()),
                        ("algo", pa.string()), ("seed", pa.int64()), ("step", pa.int64()),
                        ("key", pa.string()), ("value", pa.float64()),
                        ("wall_time", pa.float64())])
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with pq.ParquetWriter(out, schema) as writer:
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) == PARQUET_BATCH:
                writer.write_table(_table(pa, schema, batch))
                count += len(batch)
                batch = []
        if batch or not count:
            writer.write_table(_table(pa, schema, batch))
            count += len(batch)
    return count


def _table(pa: Any, schema: Any, batch: list[Row]) -> Any:
    columns = list(zip(*batch, strict=True)) if batch else [[] for _ in COLUMNS]
    return pa.table([pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                    schema=schema)


_WRITERS = {Format.csv: _write_csv, Format.json: _write_json}
