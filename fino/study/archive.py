"""A study's finished runs as a portable file: JSON lines, one run each (its config, tags,
timing and the series the report needs), so results made on several machines, or on a GPU
machine, end up in one store and one report."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fino.metric_keys import EVAL_RETURN, EVAL_SCORE, POLICY_BETA, POLICY_ENTROPY
from fino.store.db import Store
from fino.store.queries import series_many
from fino.store.queue import import_done_run
from fino.store.text import TagError, check_tags
from fino.study.collect import run_machines, study_runs
from fino.study.plan import Plan

KEYS = (EVAL_SCORE, EVAL_RETURN, POLICY_ENTROPY, POLICY_BETA)
FIELDS = ("name", "task", "backend", "algo", "preset", "config", "seed", "tags", "notes",
          "study", "trial")


class ArchiveError(ValueError):
    """A file that is not a study archive, or a line that cannot be imported."""


def _open(path: Path, mode: str):
    return gzip.open(path, mode + "t") if path.suffix == ".gz" else path.open(mode)


def export_study(store: Store, plan: Plan, budget: str, path: Path) -> int:
    """Write the plan's done runs at `budget` to `path` (.jsonl or .jsonl.gz); returns how many."""
    runs = sorted((r for r in study_runs(store, plan, budget).values() if r.status == "done"),
                  key=lambda r: r.id)
    with store.read() as session:
        series = {key: series_many(session, [r.id for r in runs], key) for key in KEYS}
    machines = run_machines(store, [r.id for r in runs])
    with _open(path, "w") as f:
        for run in runs:
            record: dict[str, Any] = {field: getattr(run, field) for field in FIELDS}
            record["started_at"] = run.started_at.isoformat() if run.started_at else None
            record["finished_at"] = run.finished_at.isoformat() if run.finished_at else None
            record["machine"] = machines.get(run.id)
            record["metrics"] = {key: [[int(s), None if v != v else float(v)]
                                       for s, v in zip(*series[key][run.id], strict=True)]
                                 for key in KEYS if run.id in series[key]}
            f.write(json.dumps(record) + "\n")
    return len(runs)


def import_study(store: Store, path: Path) -> tuple[int, int]:
    """Add the archive's runs as done runs (with their series); a run whose study, budget,
    method, task and seed the store already holds is skipped. Returns (added, skipped)."""
    try:
        with _open(path, "r") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        raise ArchiveError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path} is not a study archive (JSON lines): {exc}") from None
    added = skipped = 0
    for number, record in enumerate(records, 1):
        missing = [k for k in (*FIELDS, "metrics") if k not in record]
        if missing:
            raise ArchiveError(f"{path}:{number}: not a study run (lacks {missing})")
        try:
            check_tags(filter(None, str(record["tags"]).split(",")))
        except TagError as exc:
            raise ArchiveError(f"{path}:{number}: {exc}") from None
        if import_done_run(store, {k: record[k] for k in FIELDS}, record["metrics"],
                           started_at=_time(record.get("started_at")),
                           finished_at=_time(record.get("finished_at")),
                           machine=record.get("machine"), source=path.name) is None:
            skipped += 1
            continue
        added += 1
    return added, skipped


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
