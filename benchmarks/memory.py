"""Peak memory of a run at 1M and 2M offline transitions: dataset + replay buffer + networks.

The dataset is the regenerated cube-single-play-v0 file tiled to the wanted size (real episodes,
real OGBench loader and relabelling, real env), so every byte goes through the path a user's
run takes. Each size runs `fino.train.Trainer` in a fresh process (a short offline + online
schedule, the paper's 4x512 networks) and reads the kernel's own counters (VmRSS, VmHWM).

    python benchmarks/memory.py [--transitions 1000000 2000000] [--json out.jsonl]

What the data needs: the replay buffer's rows (observations, next observations, actions,
reward, terminated as float32) for the dataset, plus the ring's unused tail once online steps
write it. The figure to watch is `peak_over_baseline / buffer_bytes`: 1.0 would be the buffer
alone; each extra resident copy of the dataset adds about 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SOURCE = "cube-single-play-v0"
MiB = 2**20


def tiled_dataset(source_dir: Path, out_dir: Path, transitions: int) -> int:
    """Write SOURCE tiled (whole episodes) to at least `transitions` transitions; rows written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with np.load(source_dir / f"{SOURCE}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    rows = len(arrays["terminals"])
    episodes = int(arrays["terminals"].sum())
    per_copy = rows - episodes  # an episode's last row starts no transition
    copies = -(-transitions // per_copy)
    np.savez(out_dir / f"{SOURCE}.npz", **{k: np.concatenate([v] * copies)
                                          for k, v in arrays.items()})
    shutil.copy(source_dir / f"{SOURCE}-val.npz", out_dir / f"{SOURCE}-val.npz")
    return rows * copies


CHILD = r"""
import json, sys, tempfile, time
def status():
    out = {}
    for line in open("/proc/self/status"):
        key, value = line.split(":", 1)
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out
from fino.backends.base import TaskConfig
from fino.train.config import RunConfig, TrainConfig
from fino.train.presets import build_run_config
from fino.train.trainer import Trainer
import ogbench, torch  # noqa: F401  (imported before the baseline)
dataset_dir = sys.argv[1]
config = build_run_config(TaskConfig("cube-single", dataset_dir=dataset_dir), preset="cube",
                          algo="fino", seed=0, overrides=[
    "train.offline_steps=50", "train.online_steps=50", "train.eval_interval=100",
    "train.eval_episodes=1", "train.eval_envs=1", "train.compile=false",
    "train.log_interval=50", "train.save_interval=1000"])
baseline = status()["VmRSS"]
started = time.perf_counter()
trainer = Trainer(config, tempfile.mkdtemp())
after_init = status()
init_seconds = time.perf_counter() - started
trainer.run()
end = status()
print(json.dumps({"baseline": baseline, "after_init": after_init["VmRSS"],
                  "peak_init": after_init["VmHWM"], "after_run": end["VmRSS"],
                  "peak": end["VmHWM"], "init_seconds": init_seconds,
                  "buffer_rows": trainer.buffer.online.capacity,
                  "offline_rows": trainer.buffer.num_offline,
                  "obs_dim": trainer.task.spec.obs_dim,
                  "action_dim": trainer.task.spec.action_dim}))
"""


def measure(transitions: int, source_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rows = tiled_dataset(source_dir, Path(tmp), transitions)
        npz_bytes = (Path(tmp) / f"{SOURCE}.npz").stat().st_size
        out = subprocess.run([sys.executable, "-c", CHILD, tmp], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    row_floats = 2 * figures["obs_dim"] + figures["action_dim"] + 2
    dataset_bytes = figures["offline_rows"] * row_floats * 4
    over = figures["peak"] - figures["baseline"]
    return {"transitions": figures["offline_rows"], "file_rows": rows,
            "npz_mib": round(npz_bytes / MiB, 1),
            "dataset_in_buffer_mib": round(dataset_bytes / MiB, 1),
            "baseline_mib": round(figures["baseline"] / MiB, 1),
            "after_init_mib": round(figures["after_init"] / MiB, 1),
            "peak_init_mib": round(figures["peak_init"] / MiB, 1),
            "after_run_mib": round(figures["after_run"] / MiB, 1),
            "peak_mib": round(figures["peak"] / MiB, 1),
            "peak_over_baseline_mib": round(over / MiB, 1),
            "peak_over_baseline_per_dataset": round(over / dataset_bytes, 2),
            "resident_after_init_per_dataset": round(
                (figures["after_init"] - figures["baseline"]) / dataset_bytes, 2),
            "init_seconds": round(figures["init_seconds"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, nargs="+", default=[1_000_000, 2_000_000])
    parser.add_argument("--dataset-dir", type=Path, default=Path.home() / ".ogbench" / "data",
                        help=f"where {SOURCE}.npz is (`fino data generate {SOURCE}`)")
    parser.add_argument("--json", type=Path, help="also append the JSON lines here")
    args = parser.parse_args()
    if not (args.dataset_dir / f"{SOURCE}.npz").exists():
        raise SystemExit(f"{args.dataset_dir / SOURCE}.npz is missing: run "
                         f"`fino data generate {SOURCE}` first")
    rows = []
    for n in args.transitions:
        figures = measure(n, args.dataset_dir)
        line = json.dumps(figures)
        print(line, flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(line + "\n")
        rows.append(figures)
    print(f"\n{'transitions':>12}{'dataset':>10}{'baseline':>10}{'after init':>12}"
          f"{'peak':>10}{'peak-base':>11}{'/dataset':>10}")
    for r in rows:
        print(f"{r['transitions']:>12,}{r['dataset_in_buffer_mib']:>9.0f}M"
              f"{r['baseline_mib']:>9.0f}M{r['after_init_mib']:>11.0f}M{r['peak_mib']:>9.0f}M"
              f"{r['peak_over_baseline_mib']:>10.0f}M{r['peak_over_baseline_per_dataset']:>10.2f}")
    if len(rows) >= 2:  # the fixed part (envs, torch, networks) cancels in the slope
        a, b = rows[0], rows[-1]
        data = b["dataset_in_buffer_mib"] - a["dataset_in_buffer_mib"]
        print("\nper extra MiB of dataset: "
              + ", ".join(f"{name} {(b[key] - a[key]) / data:.2f}" for name, key in (
                  ("resident after init", "after_init_mib"), ("peak while loading",
                                                              "peak_init_mib"),
                  ("run peak", "peak_mib"))))


if __name__ == "__main__":
    main()
