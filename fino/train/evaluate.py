"""Greedy evaluation: many episodes stepped in lockstep so acting is one batched call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np
import torch

from fino.backends.base import Task


@dataclass
class EvalResult:
    score: float  # mean episode score (success % or normalised score x100)
    episode_return: float  # mean raw return
    length: float  # mean episode length
    scores: list[float]

    def metrics(self) -> dict[str, float]:
        return {"eval/score": self.score, "eval/return": self.episode_return,
                "eval/length": self.length}


def evaluate(
    act: Callable[[np.ndarray], np.ndarray],
    task: Task,
    envs: list[gymnasium.Env],
    episodes: int,
    seed: int,
    stopping: Callable[[], bool] = lambda: False,
) -> EvalResult | None:
    """Run `episodes` greedy episodes on `envs` (reused between calls), len(envs) at a time;
    None as soon as `stopping()` says so (checked before every step).

    Episode i is reset with seed `seed + i`, so an evaluation is reproducible."""
    scores, returns, lengths = [], [], []
    obs = np.zeros((len(envs), *envs[0].observation_space.shape), dtype=np.float32)
    for start in range(0, episodes, len(envs)):
        n = min(len(envs), episodes - start)
        for i in range(n):
            obs[i] = envs[i].reset(seed=seed + start + i)[0]
        alive = np.zeros(len(envs), dtype=bool)
        alive[:n] = True
        ret = np.zeros(len(envs))
        length = np.zeros(len(envs), dtype=int)
        while alive.any():
            if stopping():
                return None
            # Always the full batch: one input shape, so a compiled policy compiles once.
            actions = act(obs)
            for j in np.flatnonzero(alive):
                ob, reward, terminated, truncated, info = envs[j].step(actions[j])
                obs[j] = ob
                ret[j] += float(reward)
                length[j] += 1
                if terminated or truncated:
                    alive[j] = False
                    scores.append(task.score_episode(float(ret[j]), info))
                    returns.append(float(ret[j]))
                    lengths.append(int(length[j]))
    return EvalResult(score=float(np.mean(scores)), episode_return=float(np.mean(returns)),
                      length=float(np.mean(lengths)), scores=scores)


def greedy_actor(agent: object, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """The agent's greedy (argmax-Q candidate) action for a batch of observations.

    The candidates' noise comes from a generator of its own seeded with `seed`: evaluation is
    reproducible and leaves the agent's training stream untouched (so neither the number of
    evaluation envs nor the number of episodes changes what training does)."""
    generator = torch.Generator(agent.device).manual_seed(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = agent.act(torch.as_tensor(obs, dtype=torch.float32), greedy=True,
                            generator=generator)
        return out.cpu().numpy()
    return act
