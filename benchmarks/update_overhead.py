"""Per-update time of the eager agent on networks small enough that Python, not arithmetic,
sets the pace: where a change to the update's bookkeeping (such as the losses' named info
dicts) would show. Run it once per checkout to compare two commits on the same machine:

    PYTHONPATH=<checkout> python benchmarks/update_overhead.py --label <name> >> results.jsonl

It imports only `fino.algo`'s public agent API (FinoAgent, AgentConfig, Batch), which both
sides of such a comparison share. One JSON line per (size, algo): median microseconds per
update over `--repeats` timings of `--updates` updates each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from fino.algo import AgentConfig, Batch, FinoAgent

SIZES = {"tiny": (32, 32), "quick": (256, 256)}
ALGOS = {"fino": dict(noise_scale=0.1, num_candidates=3), "fql": dict(noise_scale=0.0,
                                                                       num_candidates=1)}


def batch(obs_dim: int, action_dim: int, n: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(observations=torch.randn(n, obs_dim, generator=g),
                 actions=torch.rand(n, action_dim, generator=g) * 2 - 1,
                 rewards=torch.randn(n, generator=g),
                 next_observations=torch.randn(n, obs_dim, generator=g),
                 terminated=torch.zeros(n))


def per_update_us(size: str, algo: str, updates: int, repeats: int, batch_size: int) -> float:
    dims = SIZES[size]
    agent = FinoAgent(40, 5, AgentConfig(actor_hidden_dims=dims, value_hidden_dims=dims,
                                         batch_size=batch_size, **ALGOS[algo]), seed=0)
    data = batch(40, 5, batch_size)
    for _ in range(20):
        agent.update(data)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(updates):
            agent.update(data)
        times.append((time.perf_counter() - start) / updates * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="which checkout this is")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", action="append", choices=sorted(SIZES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for size in args.size or ["tiny"]:
        for algo in ALGOS:
            us = per_update_us(size, algo, args.updates, args.repeats, args.batch_size)
            print(json.dumps({"figure": "update_us", "label": args.label, "size": size,
                              "algo": algo, "batch_size": args.batch_size,
                              "value": round(us, 1), "unit": "us/update",
                              "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
