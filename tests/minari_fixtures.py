"""Small real Minari datasets built from real envs (EpisodeBuffer route: no jax needed).

Callers set MINARI_DATASETS_PATH first (minari reads it at call time).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import gymnasium_robotics
import minari
import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer

gymnasium.register_envs(gymnasium_robotics)

ANTMAZE_ID = "D4RL/antmaze/umaze-v1"
ANTMAZE_STEPS = 25  # short episodes keep the fixture fast; the real set has 700
INVERTED_PENDULUM_ID = "fino-test/invertedpendulum/random-v0"
METADATA = dict(algorithm_name="random", author="fino tests", author_email="fino@example.com",
                code_permalink="https://example.com/fino", description="fino test fixture")


def _stack(steps: list[Any]) -> Any:
    """A list of observations (arrays or dicts of arrays) as one array / dict of arrays."""
    if isinstance(steps[0], dict):
        return {k: np.stack([s[k] for s in steps]) for k in steps[0]}
    return np.stack(steps)


def collect_episodes(env: gymnasium.Env, num_episodes: int, seed: int = 0
                     ) -> list[EpisodeBuffer]:
    """Random-action episodes until termination or the env's time limit (reset seed = id)."""
    env.action_space.seed(seed)
    buffers = []
    for episode in range(num_episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
            done = terminated or truncated
        buffers.append(EpisodeBuffer(
            id=episode, seed=seed + episode, observations=_stack(observations),
            actions=np.stack(actions), rewards=np.asarray(rewards, np.float64),
            terminations=np.asarray(terminations), truncations=np.asarray(truncations),
            infos={}))
    return buffers


def make_antmaze_dataset(num_episodes: int = 4, ref_min: float = 0.0, ref_max: float = 2.0
                         ) -> Any:
    """A tiny D4RL-style antmaze set: collected in the continuing env (as Minari's D4RL sets
    are), evaluated in the terminating one, with reference scores."""
    env = gymnasium.make("AntMaze_UMaze-v4", continuing_task=True, reset_target=False,
                         max_episode_steps=ANTMAZE_STEPS)
    eval_env = gymnasium.make("AntMaze_UMaze-v4", continuing_task=False,
                              max_episode_steps=ANTMAZE_STEPS)
    buffers = collect_episodes(env, num_episodes)
    return minari.create_dataset_from_buffers(
        ANTMAZE_ID, buffers, env=env, eval_env=eval_env.spec, ref_min_score=ref_min,
        ref_max_score=ref_max, **METADATA)


def make_inverted_pendulum_dataset(num_episodes: int = 6) -> Any:
    """A Box-observation set whose episodes end in real terminations, without reference
    scores; actions on [-3, 3]."""
    env = gymnasium.make("InvertedPendulum-v5")
    return minari.create_dataset_from_buffers(
        INVERTED_PENDULUM_ID, collect_episodes(env, num_episodes), env=env, eval_env=env.spec,
        **METADATA)
