"""FINO's cost over FQL: per update, per online step (acting with K candidates, plus the
entropy update amortised over `entropy_interval` steps), at the paper's size and the quick
presets' size. Prints one JSON line per figure and a table of ratios.

    python benchmarks/overhead.py [--shape cube-double] [--entropy-interval 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fino.algo import AgentConfig, FinoAgent
from fino.algo.matmul import configure_matmul
from fino.bench import SHAPES, _median_rate, synthetic_batch

SIZES = {"paper-4x512": (512, 512, 512, 512), "quick-2x256": (256, 256)}


def measure(shape: str, hidden: tuple[int, ...], fql: bool, calls: int, repeats: int,
            entropy_interval: int) -> dict[str, float]:
    obs_dim, action_dim = SHAPES[shape]
    config = AgentConfig(actor_hidden_dims=hidden, value_hidden_dims=hidden,
                         **({"noise_scale": 0.0, "num_candidates": 1} if fql else {}))
    agent = FinoAgent(obs_dim, action_dim, config, compile=True)
    batch = synthetic_batch(obs_dim, action_dim, config.batch_size)
    obs = torch.randn(obs_dim)
    states = torch.randn(config.entropy_states, obs_dim)
    for _ in range(5):
        agent.update(batch)
        agent.act(obs)
    update_s = 1.0 / _median_rate(lambda: agent.update(batch), calls, repeats)
    act_s = 1.0 / _median_rate(lambda: agent.act(obs), calls * 5, repeats)
    agent.estimate_entropy(states)  # compile the sampler
    start = time.perf_counter()
    agent.estimate_entropy(states)
    entropy_s = time.perf_counter() - start
    online_step_s = update_s + act_s + entropy_s / entropy_interval
    return {"update_ms": 1000 * update_s, "act_ms": 1000 * act_s,
            "entropy_update_s": entropy_s, "online_step_ms": 1000 * online_step_s,
            "num_candidates": agent.config.num_candidates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cube-double")
    parser.add_argument("--entropy-interval", type=int, default=50_000,
                        help="online steps between entropy updates (paper: 50k)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    configure_matmul("auto")
    calls, repeats = (10, 3) if args.quick else (20, 5)
    rows = []
    for size, hidden in SIZES.items():
        figures = {algo: measure(args.shape, hidden, algo == "fql", calls, repeats,
                                 args.entropy_interval) for algo in ("fino", "fql")}
        for algo, fig in figures.items():
            print(json.dumps({"size": size, "shape": args.shape, "algo": algo, **fig,
                              "entropy_interval": args.entropy_interval}))
        rows.append((size, figures))
    print(f"\n{'size':<13}{'figure':<18}{'FINO':>10}{'FQL':>10}{'FINO/FQL':>10}")
    for size, figures in rows:
        for key in ("update_ms", "act_ms", "online_step_ms"):
            a, b = figures["fino"][key], figures["fql"][key]
            print(f"{size:<13}{key:<18}{a:>10.3f}{b:>10.3f}{a / b:>10.2f}")


if __name__ == "__main__":
    main()
