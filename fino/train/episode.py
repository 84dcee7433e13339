"""A run's online episodes: one env, episodes seeded by (run seed, episode index), and the
episode in progress kept as its actions, so that a resumed run replays it and goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fino.backends.base import Task
from fino.metric_keys import ONLINE_EPISODE_RETURN
from fino.train.seeds import seed_for

# Told when a checkpoint's episode in progress could not be replayed exactly.
REPLAY_FAILED = ("the environment did not replay the episode in progress exactly (it is not "
                 "deterministic given its seed and actions); a new episode starts from the same "
                 "seed")


class OnlineEpisodes:
    """The online env of one run and its counters (`env_steps`, `episodes`)."""

    def __init__(self, task: Task, seed: int, *,
                 on_replay_failed: Callable[[str], None] = lambda message: None) -> None:
        self.task, self.seed, self.on_replay_failed = task, seed, on_replay_failed
        self.env: Any = None
        self.obs: np.ndarray | None = None  # None between episodes
        self.env_steps = 0
        self.episodes = 0
        self.ep_return = 0.0
        self.ep_length = 0
        self.actions: list[np.ndarray] = []  # this episode's actions, to replay on resume
        self._pending: dict[str, Any] | None = None  # from a checkpoint, not yet replayed

    def observation(self) -> np.ndarray:
        """The current observation, starting the next episode (env reset) if none is going."""
        if self.env is None:
            self.env = self.task.make_env()
        if self.obs is None:
            self._start()
        assert self.obs is not None
        return self.obs

    def step(self, action: np.ndarray, buffer: Any) -> dict[str, float] | None:
        """Step the env with `action`, store the transition in `buffer`; the finished
        episode's return, length and score when it ended."""
        return self.record(action, self.env.step(action), buffer)

    def record(self, action: np.ndarray, result: tuple[Any, ...], buffer: Any
               ) -> dict[str, float] | None:
        """As `step`, with the env's step result for `action` given (stepped elsewhere: an
        env pool)."""
        assert self.obs is not None, "observation() starts the episode"
        self.actions.append(action)
        next_obs, reward, terminated, truncated, info = result
        buffer.add(self.obs, action, self.task.training_reward(float(reward)), next_obs,
                   bool(terminated))
        self.env_steps += 1
        self.ep_return += float(reward)
        self.ep_length += 1
        self.obs = next_obs
        if not (terminated or truncated):
            return None
        self.episodes += 1
        self.obs = None
        return {ONLINE_EPISODE_RETURN: self.ep_return,
                "online/episode_length": float(self.ep_length),
                "online/episode_score": self.task.score_episode(self.ep_return, info)}

    def state(self) -> dict[str, Any] | None:
        """The episode in progress, as its actions so far (the env replays them)."""
        if self.obs is None or not self.actions:
            return None
        return {"actions": torch.as_tensor(np.stack(self.actions)),
                "obs": torch.as_tensor(np.asarray(self.obs)),
                "return": self.ep_return, "length": self.ep_length}

    def restore(self, env_steps: int, episodes: int, episode: dict[str, Any] | None) -> None:
        """Counters and the episode in progress from a checkpoint (replayed on next use)."""
        self.env_steps, self.episodes, self._pending = env_steps, episodes, episode

    def close(self) -> None:
        if self.env is not None:
            self.env.close()

    def _start(self) -> None:
        """Reset the env with this episode's seed; an episode the checkpoint left in progress
        is replayed (same seed, same actions) and continues where it stopped."""
        seed = seed_for(self.seed, 0, self.episodes)
        self.obs, _ = self.env.reset(seed=seed)
        self.ep_return, self.ep_length, self.actions = 0.0, 0, []
        pending, self._pending = self._pending, None
        if pending is None or self._replay(pending):
            return
        self.obs, _ = self.env.reset(seed=seed)
        self.on_replay_failed(REPLAY_FAILED)

    def _replay(self, pending: dict[str, Any]) -> bool:
        """Step the freshly reset env through the saved actions; whether it reached the saved
        observation exactly (then the episode goes on as if never interrupted)."""
        actions = pending["actions"].numpy()
        obs = self.obs
        for action in actions:
            obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                return False
        if not np.array_equal(np.asarray(obs), pending["obs"].numpy()):
            return False
        self.obs, self.actions = obs, list(actions)
        self.ep_return, self.ep_length = float(pending["return"]), int(pending["length"])
        return True
