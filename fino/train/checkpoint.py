"""Checkpoints written atomically: a killed run never leaves a half-written file behind."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_DIR = "checkpoints"  # the last few checkpoints, step-STEP.pt, newest = checkpoint.pt

# Write failures fixed on the machine, not in the code: errno → (what happened, what to do).
_WRITE_FAILURES = {
    errno.ENOSPC: ("no space left on device", "free space on that disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota"),
    errno.EROFS: ("read-only file system", "remount it writable or move the run folder"),
    errno.EACCES: ("permission denied", "make the run folder writable"),
}
# Below this, a torch writer failure that names no errno is taken for a full disk.
_NEARLY_FULL_BYTES = 1 << 20


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or written; the message names the file."""


def save_checkpoint(path: Path, state: dict[str, Any],
                    before_replace: Callable[[], None] | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`. A full
    disk (quota, read-only, permission) is a CheckpointError; the previous file stays.
    `before_replace` runs just before the rename and may veto it by raising (the run's lease)."""
    import torch

    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException as exc:
        failure = _write_failure(exc, path.parent)  # before the unlink frees the space
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if failure is None:
            raise
        raise _write_error(path, *failure) from exc


def keep_checkpoint(path: Path, step: int, keep: int) -> None:
    """Keep the checkpoint just written at `path` (step `step`) as `checkpoints/step-STEP.pt`
    beside it, and only the newest `keep` there. A hard link where the file system has them (no
    second copy of the bytes: `path` is replaced by a new file at the next save, the link keeps
    the old one), else a copy. Kept files of later steps (an abandoned attempt's) go."""
    folder = path.parent / HISTORY_DIR
    folder.mkdir(exist_ok=True)
    target = folder / f"step-{step:09d}.pt"
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
    for old_step, old in kept_checkpoints(path.parent):
        if old_step > step:
            old.unlink(missing_ok=True)
    for _, old in kept_checkpoints(path.parent)[:-keep]:
        old.unlink(missing_ok=True)


def kept_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of a run folder's kept checkpoints, oldest first."""
    out = []
    for file in (Path(run_dir) / HISTORY_DIR).glob("step-*.pt"):
        try:
            out.append((int(file.stem.removeprefix("step-")), file))
        except ValueError:
            continue
    return sorted(out)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it wraps (cause or context), each once."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _write_failure(exc: BaseException, folder: Path) -> tuple[str, str] | None:
    """(reason, remedy) when `exc` is a known write failure. torch.save may report one as a
    RuntimeError ("PytorchStreamWriter failed writing file ...") that names no errno."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in _WRITE_FAILURES:
            return _WRITE_FAILURES[link.errno]
        message = str(link).lower()
        for code, failure in _WRITE_FAILURES.items():
            if os.strerror(code).lower() in message:
                return failure
        if "failed writing" in message and _available_bytes(folder) < _NEARLY_FULL_BYTES:
            return _WRITE_FAILURES[errno.ENOSPC]
    return None


def _available_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return _NEARLY_FULL_BYTES  # unknown: not evidence of a full disk


def _write_error(path: Path, reason: str, remedy: str) -> CheckpointError:
    kept = f"the previous {path.name} is intact" if path.exists() else "none was written yet"
    return CheckpointError(
        f"cannot write checkpoint {path}: {reason}; {remedy} ({kept}), then resume with "
        f"`fino run --resume {path.parent}` (a queued run: `fino queue retry ID`)")


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})")\
            from exc
