"""Resident memory of a pack's replay buffers and agent: N members over one 1M-transition dataset
hold one copy of the offline arrays, not N.

Synthetic arrays with the paper's shapes (obs 40, act 5, float32) stand in for the dataset: the
figure is about copies, not contents. Reads the kernel's VmRSS after each stage, in a fresh
process per pack size, and prints JSON lines and a table.

    python benchmarks/pack_memory.py --members 1 32 --transitions 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys
import numpy as np, torch
from fino.algo.agent import AgentPack, Batch
from fino.bench import agent_config
from fino.data.buffer import PackedReplay

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
members, rows, online = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
base = rss()
rng = np.random.default_rng(0)
data = {"observations": rng.standard_normal((rows, 40), dtype=np.float32),
        "next_observations": rng.standard_normal((rows, 40), dtype=np.float32),
        "actions": rng.uniform(-1, 1, (rows, 5)).astype(np.float32),
        "rewards": np.zeros(rows, np.float32), "masks": np.ones(rows, np.float32)}
offline_bytes = sum(a.nbytes for a in data.values())
after_data = rss()
replay = PackedReplay(data, seeds=range(members))
for m in replay.members:  # some online steps each: their rows are the members' own
    for i in range(online):
        m.add(np.zeros(40), np.zeros(5), 0.0, np.zeros(40), False)
after_replay = rss()
pack = AgentPack(40, 5, agent_config("paper", "fino"), seeds=range(members))
for _ in range(2):
    pack.update(replay.sample(256))
after_agent = rss()
print(json.dumps({"members": members, "transitions": rows, "online_rows_each": online,
                  "offline_mib": offline_bytes / 2**20,
                  "dataset_rss_mib": (after_data - base) / 2**20,
                  "replay_rss_mib": (after_replay - after_data) / 2**20,
                  "agent_rss_mib": (after_agent - after_replay) / 2**20,
                  "total_rss_mib": (after_agent - base) / 2**20}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--online", type=int, default=1000)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    rows = []
    for n in args.members:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.transitions),
                              str(args.online)], capture_output=True, text=True, check=True)
        row = {"figure": "pack_memory", **json.loads(out.stdout.strip().splitlines()[-1])}
        row["replay_over_offline"] = round(row["replay_rss_mib"] / row["offline_mib"], 3)
        rows.append(row)
        line = json.dumps({k: round(v, 1) if isinstance(v, float) else v
                           for k, v in row.items()})
        print(line, flush=True)
        if args.output:
            with open(args.output, "a") as f:
                f.write(line + "\n")
    print("\n| members | offline arrays MiB | replay buffers MiB | / offline | agent MiB |",
          file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['members']} | {r['offline_mib']:.0f} | {r['replay_rss_mib']:.0f} | "
              f"{r['replay_over_offline']:.2f} | {r['agent_rss_mib']:.0f} |", file=sys.stderr)


if __name__ == "__main__":
    main()
