"""Greedy evaluation: many episodes stepped in lockstep so acting is one batched call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np
import torch

from fino.backends.base import Task
from fino.metric_keys import EVAL_LENGTH, EVAL_RETURN, EVAL_SCORE
from fino.train.env_pool import StepResult, reset_envs, step_envs


@dataclass
class EvalResult:
    score: float  # mean episode score (success % or normalised score x100)
    episode_return: float  # mean raw return
    length: float  # mean episode length
    scores: list[float]

    def metrics(self) -> dict[str, float]:
        return {EVAL_SCORE: self.score, EVAL_RETURN: self.episode_return,
                EVAL_LENGTH: self.length}


class EpisodeRun:
    """One evaluation in progress: `episodes` episodes on `envs`, len(envs) at a time, episode
    i reset with seed `seed + i`; `obs` is always the full batch (one input shape, so a compiled
    policy compiles once), the finished envs' last observations included."""

    def __init__(self, task: Task, envs: list[gymnasium.Env], episodes: int, seed: int) -> None:
        self.task, self.envs, self.episodes, self.seed = task, envs, episodes, seed
        self.obs = np.zeros((len(envs), *envs[0].observation_space.shape), dtype=np.float32)
        self.scores: list[float] = []
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.start = 0
        self._reset_chunk()

    @property
    def done(self) -> bool:
        return self.start >= self.episodes

    def advance(self, actions: np.ndarray) -> None:
        """Step the envs still in their episode; the next chunk starts once all have ended."""
        alive = self.stepping()
        self.record(alive, step_envs([self.envs[j] for j in alive], [actions[j] for j in alive]))

    def stepping(self) -> list[int]:
        """The envs to step now (those still in their episode)."""
        return [int(j) for j in np.flatnonzero(self.alive)]

    def record(self, stepped: list[int], results: list[StepResult]) -> None:
        """Take the results of stepping envs `stepped` (as `stepping()` named them)."""
        for j, (ob, reward, terminated, truncated, info) in zip(stepped, results, strict=True):
            self.obs[j] = ob
            self.ret[j] += float(reward)
            self.length[j] += 1
            if terminated or truncated:
                self.alive[j] = False
                self.scores.append(self.task.score_episode(float(self.ret[j]), info))
                self.returns.append(float(self.ret[j]))
                self.lengths.append(int(self.length[j]))
        if not self.alive.any():
            self.start += len(self.envs)
            if not self.done:
                self._reset_chunk()

    def result(self) -> EvalResult:
        return EvalResult(score=float(np.mean(self.scores)),
                          episode_return=float(np.mean(self.returns)),
                          length=float(np.mean(self.lengths)), scores=self.scores)

    def _reset_chunk(self) -> None:
        n = min(len(self.envs), self.episodes - self.start)
        seeds = [self.seed + self.start + i for i in range(n)]
        for i, (ob, _) in enumerate(reset_envs(self.envs[:n], seeds)):
            self.obs[i] = ob
        self.alive = np.zeros(len(self.envs), dtype=bool)
        self.alive[:n] = True
        self.ret = np.zeros(len(self.envs))
        self.length = np.zeros(len(self.envs), dtype=int)


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
    run = EpisodeRun(task, envs, episodes, seed)
    while not run.done:
        if stopping():
            return None
        run.advance(act(run.obs))
    return run.result()


def evaluate_many(
    act: Callable[[np.ndarray, list[int]], np.ndarray],
    runs: list[EpisodeRun],
    stopping: Callable[[], bool] = lambda: False,
) -> list[EvalResult] | None:
    """Several evaluations in lockstep, acting once per step for all: `act(obs, running)` gets
    every run's batch stacked (R, n, obs_dim) and the indices of those still running (the
    others' rows are ignored, and must draw nothing from their runs' streams). Every run's envs
    step at once when they live in one pool."""
    while not all(run.done for run in runs):
        if stopping():
            return None
        running = [i for i, run in enumerate(runs) if not run.done]
        actions = act(np.stack([run.obs for run in runs]), running)
        stepping = {i: runs[i].stepping() for i in running}
        envs = [runs[i].envs[j] for i in running for j in stepping[i]]
        results = iter(step_envs(envs, [actions[i][j] for i in running for j in stepping[i]]))
        for i in running:
            runs[i].record(stepping[i], [next(results) for _ in stepping[i]])
    return [run.result() for run in runs]


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
