"""Which code ran and where: fino's version and, in a git checkout, its commit
(`0.1.0+gd894f21`, `.dirty` when tracked files differ from it); the machine a run ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from pathlib import Path

import fino

# The event format is a run fact the store reads without torch (fino.runfacts); re-exported.
from fino.runfacts import MACHINE_MARK, machine_of

__all__ = ["MACHINE_MARK", "code_version", "machine", "machine_of"]


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


@cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: str = "cpu") -> str:
    """One line naming the machine: OS, CPU model and cores, Python, torch, and the GPU when
    `device` is a CUDA device."""
    import torch

    text = (f"{platform.system()} {platform.machine()}, {_cpu_model()}, {os.cpu_count()} "
            f"logical cores, Python {platform.python_version()}, torch {torch.__version__}")
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(torch.device(device))}"
    return text
