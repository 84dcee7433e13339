"""Does bf16 autocast change learning? fp32 vs bf16 on the same synthetic offline task.

A contextual bandit at the paper's network size: s ~ N(0, I), the best action is
a*(s) = tanh(M s) for a fixed random M, reward r = −‖a − a*(s)‖² / d, one-step episodes.
Dataset actions are a*(s) plus wide noise, so the Q term must do the work. Both precisions see
the same batches and the same noise draws; we print the losses along the way and the greedy
policy's mean reward on fresh states at the end, per seed, as JSON lines.

    python benchmarks/precision.py --updates 1500 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fino.algo import AgentConfig, Batch, FinoAgent
from fino.algo.matmul import configure_matmul


def bandit_batch(mix: torch.Tensor, n: int, g: torch.Generator) -> Batch:
    obs = torch.randn(n, mix.shape[1], generator=g)
    best = torch.tanh(obs @ mix.T)
    actions = (best + 0.5 * torch.randn(best.shape, generator=g)).clamp(-1 + 1e-5, 1 - 1e-5)
    rewards = -(actions - best).square().mean(dim=1)
    return Batch(obs, actions, rewards, obs, torch.ones(n))


def greedy_reward(agent: FinoAgent, mix: torch.Tensor, g: torch.Generator) -> float:
    obs = torch.randn(2048, mix.shape[1], generator=g)
    actions = agent.act(obs, greedy=True)
    return float(-(actions - torch.tanh(obs @ mix.T)).square().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--obs-dim", type=int, default=40)
    parser.add_argument("--action-dim", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    configure_matmul("auto")
    config = AgentConfig(alpha=1.0)
    for seed in args.seeds:
        g = torch.Generator().manual_seed(1000 + seed)
        mix = torch.randn(args.action_dim, args.obs_dim, generator=g) / args.obs_dim**0.5
        batches = [bandit_batch(mix, config.batch_size, g) for _ in range(64)]
        agents = {p: FinoAgent(args.obs_dim, args.action_dim, config, seed=seed,
                               compile=args.compile, precision=p) for p in ("fp32", "bf16")}
        seconds = dict.fromkeys(agents, 0.0)
        for step in range(1, args.updates + 1):
            batch = batches[step % len(batches)]
            noise = agents["fp32"].draw_update_noise(config.batch_size)
            infos = {}
            for name, agent in agents.items():
                start = time.perf_counter()
                infos[name] = agent.info(agent.update(batch, noise))
                seconds[name] += time.perf_counter() - start
            if step % max(1, args.updates // 5) == 0 or step == args.updates:
                for name, info in infos.items():
                    print(json.dumps({"seed": seed, "step": step, "precision": name, **{
                        k: round(info[k], 5) for k in ("critic/loss", "actor/bc_flow_loss",
                                                       "actor/distill_loss", "actor/q")}}))
        for name, agent in agents.items():
            eval_g = torch.Generator().manual_seed(seed)
            print(json.dumps({"seed": seed, "precision": name, "updates": args.updates,
                              "greedy_reward": round(greedy_reward(agent, mix, eval_g), 5),
                              "dataset_reward": round(float(batches[0].rewards.mean()), 5),
                              "updates_per_second": round(args.updates / seconds[name], 2)}))


if __name__ == "__main__":
    main()
