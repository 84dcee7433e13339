"""Which code ran: fino's version and, in a git checkout, its commit (`0.1.0+gd894f21`,
`.dirty` when tracked files differ from it)."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import fino


def _git(root: Path, *args: str) -> str:
    # --no-optional-locks: never take .git/index.lock (a commit in the same checkout must not
    # fail because a run is starting).
    return subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args],
                          capture_output=True, text=True, timeout=10, check=True).stdout.strip()


@cache
def code_version() -> str:
    """fino's version, plus the commit when fino runs from a git checkout."""
    root = Path(fino.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return fino.__version__
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return fino.__version__
    return f"{fino.__version__}+g{commit}" + (".dirty" if dirty else "")
