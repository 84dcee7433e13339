"""Seeds as one pack vs as single runs, through the queue: the wall-clock of N quick-preset
seeds of a task served by `fino worker --pack N` (one process, batched weights) and by
`fino worker --jobs J` (J single runs at a time), each from its own fresh SQLite store.

    python benchmarks/pack_queue.py --seeds 8 --jobs 2 --fraction 1.0 \
        --output benchmarks/results/pack-queue-cpu

`--fraction F` scales the quick profile's step counts and its evaluation interval (F = 1: the
profile as is, 30k offline + 20k online steps, 11 evaluations); `--eval-episodes` sets the
episodes per evaluation (the profile's: 50); every other setting is the profile's. Writes
OUTPUT.jsonl (one line per way, with each run's final score) and OUTPUT.md (the table and the
ratio). Run nothing else on the machine meanwhile: both ways use every core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fino(*args: str, cwd: Path, db: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fino.cli.main", *args], cwd=cwd,
                          env={**os.environ, "FINO_DB_URL": db}, capture_output=True, text=True)


def scaled_settings(fraction: float, eval_episodes: int) -> list[str]:
    """The quick profile's steps and evaluation interval times `fraction`, and its
    evaluations' episodes."""
    offline, online, interval = (max(round(n * fraction), 1) for n in (30_000, 20_000, 5_000))
    return [f"train.offline_steps={offline}", f"train.online_steps={online}",
            f"train.eval_interval={interval}", f"train.save_interval={interval}",
            f"train.eval_episodes={eval_episodes}"]


def serve(way: str, args: argparse.Namespace, folder: Path) -> dict:
    """Queue the seeds in a fresh store and serve them one way; the wall-clock and scores."""
    db = f"sqlite:///{folder / 'experiments.db'}"
    sets = [arg for item in scaled_settings(args.fraction, args.eval_episodes)
            for arg in ("--set", item)]
    added = fino("queue", "add", "--task", args.task, "--preset", "quick", "--seeds",
                 f"0-{args.seeds - 1}", "--runs-dir", str(folder / "runs"), *sets,
                 cwd=folder, db=db)
    if added.returncode != 0:
        raise SystemExit(f"queue add failed: {added.stdout}{added.stderr}")
    worker = (["--pack", str(args.seeds)] if way == "pack" else ["--jobs", str(args.jobs)])
    started = time.perf_counter()
    served = fino("worker", "--until-empty", *worker, cwd=folder, db=db)
    wall = time.perf_counter() - started
    if served.returncode != 0:
        raise SystemExit(f"worker ({way}) failed: {served.stdout}{served.stderr}")
    exported = fino("export", f"1-{args.seeds}", "--format", "json", "--key", "eval/score",
                    cwd=folder, db=db)
    final: dict[int, dict] = {}
    for row in json.loads(exported.stdout) if exported.returncode == 0 else []:
        if row["run_id"] not in final or row["step"] > final[row["run_id"]]["step"]:
            final[row["run_id"]] = row
    scores = {f"s{row['seed']}": row["value"] for row in final.values()}
    return {"way": way, "worker": " ".join(worker), "wall_seconds": wall,
            "final_scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cube-single")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" /
                        "pack-queue-cpu")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for way in ("single", "pack"):
            folder = Path(tmp) / way
            folder.mkdir()
            print(f"serving {args.seeds} seeds ({way}) ...", flush=True)
            results.append(serve(way, args, folder))
            print(f"  {results[-1]['wall_seconds']:.0f} s", flush=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    setup = {"task": args.task, "seeds": args.seeds, "jobs": args.jobs,
             "fraction": args.fraction, "eval_episodes": args.eval_episodes,
             "settings": scaled_settings(args.fraction, args.eval_episodes),
             "machine": machine, "date": time.strftime("%Y-%m-%d")}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.with_suffix(".jsonl").open("a") as f:
        for result in results:
            f.write(json.dumps({**setup, **result}) + "\n")
    single, pack = results
    lines = [f"# {args.seeds} quick-preset seeds of {args.task}: one pack vs single runs", "",
             f"`python benchmarks/pack_queue.py --seeds {args.seeds} --jobs {args.jobs} "
             f"--fraction {args.fraction} --eval-episodes {args.eval_episodes}` on {machine}, "
             f"{setup['date']}; settings "
             f"{', '.join(setup['settings'])} over the quick profile.", "",
             "| way | worker | wall-clock (s) |", "|---|---|---:|"]
    lines[-2:] = ["| way | worker | wall-clock (s) | final success % per seed |",
                  "|---|---|---:|---|"]
    lines += [f"| {r['way']} | `fino worker {r['worker']}` | {r['wall_seconds']:.0f} | "
              + " ".join(f"{v:.0f}" for v in r["final_scores"].values()) + " |"
              for r in results]
    lines += ["", f"Pack / single wall-clock: **{pack['wall_seconds'] / single['wall_seconds']:.2f}"
              "**.", ""]
    args.output.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
