"""Metric sinks: where a run's numbers go. A failing sink is reported once and never stops
training."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from fino.metric_keys import EVAL_SCORE, PROGRESS_ONLINE

EVAL_COLUMNS = ("step", "phase", "env_steps", "score", "return", "length", "entropy", "beta",
                "noise_scale", "wall_time")


class Sink(Protocol):
    """Receives metrics as the run produces them. Optional: `flush()`, and `artifact(path)`
    for a file of the run (loggers, `fino.sinks`)."""

    def write(self, step: int, metrics: dict[str, float]) -> None: ...

    def event(self, kind: str, message: str) -> None: ...

    def truncate_after(self, step: int) -> None:
        """Forget what was written after `step` (resuming from a checkpoint taken there)."""

    def close(self) -> None: ...


class JsonlSink:
    """Every record as one JSON line {"step", "time", key: value, ...} in `metrics.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", buffering=1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, "time": time.time(),
                  **{k: (v if math.isfinite(v) else None) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")

    def event(self, kind: str, message: str) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        self._file.close()
        _rewrite(self.path, lambda line: json.loads(line)["step"] <= step)
        self._file = self.path.open("a", buffering=1)

    def close(self) -> None:
        self._file.close()


class EvalCsvSink:
    """One row per evaluation in `eval.csv` (fixed columns, easy to load in pandas)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", buffering=1)
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(EVAL_COLUMNS)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if EVAL_SCORE not in metrics:
            return
        row = {"step": step, "wall_time": f"{time.time():.3f}",  # Unix seconds, to the ms
               **{k.split("/", 1)[1]: v for k, v in metrics.items() if "/" in k}}
        row["phase"] = "online" if metrics.get(PROGRESS_ONLINE) else "offline"
        self._writer.writerow([_fmt(row.get(c)) for c in EVAL_COLUMNS])

    def event(self, kind: str, message: str) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        self._file.close()
        _rewrite(self.path, lambda line: line.startswith("step") or int(line.split(",")[0]) <= step)
        self._file = self.path.open("a", newline="", buffering=1)
        self._writer = csv.writer(self._file)

    def close(self) -> None:
        self._file.close()


class EventLogSink:
    """Status changes and notable events, one line each, in `events.log`."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", buffering=1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def event(self, kind: str, message: str) -> None:
        self._file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {kind}: {message}\n")

    def truncate_after(self, step: int) -> None:
        pass

    def close(self) -> None:
        self._file.close()


class SinkGroup:
    """Fans out to several sinks; an exception in one is reported once on stderr and that
    sink is dropped, so no sink can stop training."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)

    def _call(self, method: str, *args: Any) -> None:
        for sink in list(self.sinks):
            self._call_one(sink, method, *args)

    def _call_one(self, sink: Sink, method: str, *args: Any) -> None:
        try:
            getattr(sink, method)(*args)
        except Exception as exc:
            self.sinks.remove(sink)
            warn(f"warning: metrics sink {type(sink).__name__} failed and was disabled: "
                 f"{type(exc).__name__}: {exc}")

    def write(self, step: int, metrics: dict[str, float]) -> None:
        self._call("write", step, metrics)

    def event(self, kind: str, message: str) -> None:
        self._call("event", kind, message)

    def truncate_after(self, step: int) -> None:
        self._call("truncate_after", step)

    def flush(self) -> None:
        """Make what was written durable where a sink buffers (the database sink)."""
        for sink in list(self.sinks):
            if hasattr(sink, "flush"):
                self._call_one(sink, "flush")

    def artifact(self, path: Path) -> None:
        """Give the sinks that keep files (loggers) a file of the run, such as curves.png."""
        for sink in list(self.sinks):
            if hasattr(sink, "artifact"):
                self._call_one(sink, "artifact", path)

    def close(self) -> None:
        self._call("close")


def warn(message: str) -> None:
    """A line on stderr, never fatal: stderr may be a log file on a full disk."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr)


def _kept(keep: Any, line: str) -> bool:
    try:
        return bool(keep(line))
    except (ValueError, KeyError, TypeError, IndexError):
        return False


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rewrite(path: Path, keep: Any) -> None:
    """Keep the lines `keep` accepts; a line it cannot read (torn by a full disk or a kill in
    mid-write) is dropped, never fatal."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text(errors="replace").splitlines(keepends=True)
             if ln.strip() and ln.endswith("\n") and _kept(keep, ln)]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
