"""Training on shared cores: updates/s and CPU-seconds per update of the compiled update, alone
and with a second identical training process beside it (what `fino worker --jobs 2` does on two
cores) or beside a process that only spins (other work on the machine), under each thread
setting: torch's default (all cores, OpenMP threads spin-wait between
parallel regions), passive OpenMP waiting, and one thread per process.

    python benchmarks/shared_cores.py --size quick --seconds 20 --output shared-cores.jsonl

Each measured process is a fresh interpreter: OpenMP reads OMP_* when it starts, not later.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, torch
from fino.algo.agent import AgentPack, Batch
from fino.algo.matmul import configure_matmul
from fino.bench import SHAPES, agent_config, synthetic_batch
size, seconds, start_at = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
configure_matmul("auto")
obs_dim, action_dim = SHAPES["cube-double"]
pack = AgentPack(obs_dim, action_dim, agent_config(size, "fino"), seeds=[0], compile=True)
batch = Batch.stack([synthetic_batch(obs_dim, action_dim, 256)])
for _ in range(5):
    pack.update(batch)
while time.time() < start_at:
    time.sleep(0.01)
count, wall, cpu = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - wall < seconds:
    pack.update(batch)
    count += 1
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"updates_per_second": count / wall, "cpu_seconds_per_update": cpu / count,
                  "threads": torch.get_num_threads()}))
"""

SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    # libgomp (torch's OpenMP) spins GOMP_SPINCOUNT times before sleeping: a short spin keeps
    # most of the spinning's speed alone and yields the core soon beside other work.
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
    "spin-100k": {"GOMP_SPINCOUNT": "100000"},
    "one-thread": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
}


def measure(size: str, setting: str, processes: int, seconds: float,
            hog: bool = False) -> list[dict]:
    """`processes` training processes side by side; `hog`: plus one process that only spins
    (other work on the machine, not ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(SETTINGS[setting])
    start_at = time.time() + 45.0  # every process compiles first, then all run together
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, size, str(seconds), str(start_at)],
                              env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    finally:
        if spinner is not None:
            spinner.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="quick", choices=["quick", "paper"])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--output", default=None)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    rows = []
    for setting in args.settings:
        for processes, hog in ((1, False), (2, False), (1, True)):
            results = measure(args.size, setting, processes, args.seconds, hog)
            row = {"figure": "shared_cores", "size": args.size, "setting": setting,
                   "processes": processes, "other_busy_process": hog,
                   "cores": len(os.sched_getaffinity(0)),
                   "updates_per_second_each": [round(r["updates_per_second"], 2)
                                               for r in results],
                   "total_updates_per_second": round(sum(r["updates_per_second"]
                                                         for r in results), 2),
                   "cpu_seconds_per_update": round(
                       sum(r["cpu_seconds_per_update"] for r in results) / len(results), 4),
                   "threads": results[0]["threads"]}
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if args.output:
                with open(args.output, "a") as f:
                    f.write(line + "\n")
    print("\n| setting | training processes | + a busy process | updates/s each | total | "
          "CPU-s/update |", file=sys.stderr)
    print("|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        each = ", ".join(f"{v:.1f}" for v in r["updates_per_second_each"])
        hog = "yes" if r["other_busy_process"] else "no"
        print(f"| {r['setting']} | {r['processes']} | {hog} | {each} | "
              f"{r['total_updates_per_second']:.1f} | {r['cpu_seconds_per_update']:.4f} |",
              file=sys.stderr)


if __name__ == "__main__":
    main()
