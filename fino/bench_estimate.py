"""Updates per second on this machine from `fino bench` figures (its JSON lines), to say what a
training budget will take before anything is queued. Torch-free: reading figures measures
nothing.

Figures are read from $FINO_BENCH_FILE (what `fino bench --output FILE` wrote on this machine)
when set, else from what `fino bench` recorded in this folder (bench-results/bench.jsonl), else
from the figures measured for this repository (benchmarks/results/bench-DEVICE.jsonl: a 2-vCPU
development machine, see its README)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fino.train.config import RunConfig

BENCH_FILE_ENV = "FINO_BENCH_FILE"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
RECORDED = Path("bench-results") / "bench.jsonl"  # where `fino bench` appends its figures
# The networks of `fino bench --size` (fino.bench.SIZES, which imports torch).
SIZE_DIMS: dict[str, tuple[int, ...]] = {"paper": (512, 512, 512, 512), "quick": (256, 256)}


@dataclass(frozen=True)
class UpdateRate:
    """A measured training rate and where it came from."""

    updates_per_second: float
    size: str  # paper | quick
    device: str  # cpu | cuda
    source: Path


def device_type(device: str) -> str:
    """`cuda:1` -> `cuda`."""
    return device.split(":", 1)[0]


def bench_files(device: str) -> list[Path]:
    """Where figures for a device type are looked for, in order."""
    chosen = os.environ.get(BENCH_FILE_ENV)
    if chosen:
        return [Path(chosen).expanduser()]
    return [RECORDED, RESULTS_DIR / f"bench-{device_type(device)}.jsonl"]


def read_figures(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a `fino bench` output file; a missing file or a bad line is skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    figures = []
    for line in lines:
        try:
            figure = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(figure, dict):
            figures.append(figure)
    return figures


def size_of(config: RunConfig) -> str | None:
    """The `fino bench` size whose networks the run's are (None: a size it does not measure)."""
    agent = config.agent
    return next((name for name, dims in SIZE_DIMS.items()
                 if tuple(agent.actor_hidden_dims) == dims == tuple(agent.value_hidden_dims)),
                None)


def update_rate(config: RunConfig, files: Sequence[Path] | None = None) -> UpdateRate | None:
    """The run's update rate on its device from bench figures of its size and algorithm (the
    latest of the same compile and precision setting, else the latest of any); None when no
    figure fits."""
    size, device = size_of(config), device_type(config.train.device)
    if size is None:
        return None
    variant = ("compiled" if config.train.compile else "eager", config.train.precision)
    for path in files if files is not None else bench_files(device):
        found = [f for f in read_figures(path) if f.get("figure") == "updates_per_second"
                 and f.get("size") == size and f.get("algo") == config.algo
                 and f.get("device") == device and _positive(f.get("value"))]
        if not found:
            continue
        same = [f for f in found if _variant(f) == variant]
        return UpdateRate(float((same or found)[-1]["value"]), size, device, path)
    return None


def _variant(figure: dict[str, Any]) -> tuple[str, str]:
    """(compiled | eager, fp32 | bf16) of a figure's variant, e.g. compiled+onednn+fp32."""
    parts = str(figure.get("variant", "")).split("+")
    return parts[0], parts[-1]


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
