"""Learning-curve PNGs from runs' `eval.csv` files (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fino.analysis.curves import STEP_LABEL, mark_offline_end, plot_curve

PANELS = (("score", "evaluation score"), ("return", "evaluation return"),
          ("entropy", "policy entropy (GMM)"), ("beta", "β (selection temperature)"))


def read_eval_csv(path: Path) -> dict[str, list[float]]:
    """Columns of an `eval.csv` as float lists (blank cells become NaN)."""
    columns: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key == "phase":
                    continue
                columns.setdefault(key, []).append(float(value) if value else float("nan"))
    return columns


def plot_runs(runs: dict[str, Path], out: Path, title: str = "",
              offline_steps: int | None = None) -> Path:
    """One figure: score, return, entropy and β against the step for each labelled run."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for label, run_dir in runs.items():
        data = read_eval_csv(Path(run_dir) / "eval.csv")
        for ax, (key, _) in zip(axes.flat, PANELS, strict=True):
            if key in data and data["step"]:
                plot_curve(ax, [(np.array(data["step"]), np.array(data[key]))], label,
                           marker="o", markersize=3)
    for ax, (_, name) in zip(axes.flat, PANELS, strict=True):
        ax.set_title(name)
        ax.grid(alpha=0.3)
        mark_offline_end(ax, offline_steps)
    for ax in axes[1]:
        ax.set_xlabel(STEP_LABEL)
    axes[0, 0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
