"""The GPU checks of seed packs, as one prepared script for a lent CUDA machine (no install:
run from the repository root with the machine's own torch).

    PYTHONPATH=. python3 benchmarks/gpu_pack_check.py --out "$OUT"

1. Exactness on CUDA: the CUDA-graph update against the plain update (same weights, batches and
   draws), and a pack of 4 against 4 single agents, at the paper size; max |difference|.
2. Throughput: `fino bench --pack` rows at the paper size (1, 8, 32 members, fp32; 32 with TF32)
   and the quick size (1, 32), against the H200 targets. Writes JSON lines and a Markdown table
   to --out. Environments are not stepped (OGBench is not installed there).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fino.algo import FinoAgent
from fino.algo.agent import AgentPack, Batch
from fino.bench import agent_config, synthetic_batch
from fino.bench_pack import bench_pack_updates


def max_difference(a: AgentPack, b: AgentPack | list[FinoAgent]) -> float:
    worst = 0.0
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for i, p in enumerate(getattr(a, net).parameters()):
            if isinstance(b, AgentPack):
                q = list(getattr(b, net).parameters())[i]
                worst = max(worst, (p - q).abs().max().item())
            else:
                for m, agent in enumerate(b):
                    q = list(getattr(agent, net).parameters())[i]
                    worst = max(worst, (a._member_rows(p, m) - q).abs().max().item())
    return worst


def exactness(device: torch.device, size: str = "paper") -> dict[str, float]:
    config = agent_config(size, "fino")
    graphed = AgentPack(40, 5, config, seeds=[0, 1], device=device, cuda_graphs=True,
                        compile=True)
    plain = AgentPack(40, 5, config, seeds=[0, 1], device=device, cuda_graphs=False)
    metric_diff = 0.0
    for step in range(8):
        batch = Batch.stack([synthetic_batch(40, 5, 256, seed=10 * step + i)
                             for i in range(2)]).to(device)
        m_g, m_p = graphed.update(batch).clone(), plain.update(batch)
        metric_diff = max(metric_diff, ((m_g - m_p).abs() / m_p.abs().clamp_min(1e-6))
                          .max().item())
    pack = AgentPack(40, 5, config, seeds=[0, 1, 2, 3], device=device, cuda_graphs=False)
    singles = [FinoAgent(40, 5, config, seed=s, device=device, cuda_graphs=False)
               for s in range(4)]
    for step in range(5):
        batches = [synthetic_batch(40, 5, 256, seed=100 * step + i) for i in range(4)]
        pack.update(Batch.stack(batches))
        for agent, b in zip(singles, batches, strict=True):
            agent.update(b)
    return {"graph_vs_plain_max_param_diff": max_difference(graphed, plain),
            "graph_vs_plain_max_metric_rel_diff": metric_diff,
            "pack4_vs_singles_max_param_diff": max_difference(pack, singles)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true",
                        help="A minute's check of this script on any device: quick size, "
                             "packs of 1 and 2, few calls.")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = args.out / "bench-pack-cuda.jsonl"
    started = time.perf_counter()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    check = {"figure": "exactness", "gpu": gpu,
             "torch": torch.__version__,
             **exactness(device, "quick" if args.smoke else "paper")}
    rows = [check]
    print(json.dumps(check), flush=True)
    plan = [("paper", 1, "fp32"), ("paper", 8, "fp32"), ("paper", 32, "fp32"),
            ("paper", 32, "tf32"), ("quick", 1, "fp32"), ("quick", 32, "fp32")]
    calls = 50
    if args.smoke:
        plan, calls = [("quick", 1, "fp32"), ("quick", 2, "fp32")], 3
    for size, n, precision in plan:
        figure = bench_pack_updates("cube-double", size, n, device=device,
                                    matmul_precision=precision, calls=calls, repeats=3)
        row = figure.as_dict()
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = ["| size | pack | matmul | updates/s | seed-updates/s | target | peak MiB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows[1:]:
        table.append(f"| {r['size']} | {r['pack']} | {r['matmul_precision']} | {r['value']:.1f}"
                     f" | {r['seed_updates_per_second']:.0f} | "
                     f"{r.get('target_seed_updates_per_second', '–')} | "
                     f"{r.get('peak_device_mib', '–')} |")
    summary = "\n".join(table) + f"\n\nexactness: {json.dumps(check)}\n" \
        f"wall: {time.perf_counter() - started:.0f} s\n"
    (args.out / "bench-pack-cuda.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
