"""Envs in worker processes see what they would see in this process: same observations, rewards
and scores, whether stepped one at a time or all at once."""

from __future__ import annotations

import numpy as np

from fino.train.env_pool import EnvPool, env_pool_for, reset_envs, step_envs
from fino.train.evaluate import EpisodeRun, evaluate, evaluate_many


def _policy(obs: np.ndarray) -> np.ndarray:
    """A fixed function of the observation (no random stream), the cube's 5-d action."""
    return np.tanh(obs[..., :5] * 3.0 + 0.5 * np.cos(obs[..., 5:10]))


def test_pooled_envs_step_and_reset_as_local_ones(task):
    local = [task.make_env() for _ in range(3)]
    pool = EnvPool([task.make_env] * 3, processes=2)
    try:
        pooled = [pool.env(i) for i in range(3)]
        assert pooled[2].observation_space == local[2].observation_space
        assert pooled[2].action_space == local[2].action_space
        a = reset_envs(local, [5, 6, 7])
        b = reset_envs(pooled, [5, 6, 7])
        for (ob_a, _), (ob_b, _) in zip(a, b, strict=True):
            np.testing.assert_array_equal(ob_a, ob_b)
        obs = np.stack([ob for ob, _ in a])
        for _ in range(15):
            actions = list(_policy(obs))
            ra, rb = step_envs(local, actions), step_envs(pooled, actions)
            for x, y in zip(ra, rb, strict=True):
                np.testing.assert_array_equal(x[0], y[0])
                assert x[1:4] == y[1:4]
            obs = np.stack([r[0] for r in ra])
        assert pooled[1].step(actions[1])[1] == local[1].step(actions[1])[1]  # one at a time
    finally:
        pool.close()
        for env in local:
            env.close()


def test_evaluations_in_a_pool_score_as_in_this_process(task):
    local = [[task.make_eval_env() for _ in range(2)] for _ in range(2)]
    pool = env_pool_for([task.make_eval_env] * 4, processes=2)
    assert pool is not None
    try:
        pooled = [[pool.env(2 * r + k) for k in range(2)] for r in range(2)]
        single = evaluate(_policy, task, pooled[0], episodes=3, seed=11)
        assert single.scores == evaluate(_policy, task, local[0], episodes=3, seed=11).scores

        def act(obs: np.ndarray, running: list[int]) -> np.ndarray:
            return _policy(obs)

        many = [evaluate_many(act, [EpisodeRun(task, envs[r], 3, seed=20 + r)
                                    for r in range(2)]) for envs in (local, pooled)]
        for a, b in zip(*many, strict=True):
            assert a.scores == b.scores and a.length == b.length
            assert a.episode_return == b.episode_return
    finally:
        pool.close()
        for envs in local:
            for env in envs:
                env.close()


def test_a_factory_that_cannot_be_sent_steps_in_this_process(task):
    assert env_pool_for([lambda: task.make_env()] * 2, processes=2) is None
    assert env_pool_for([task.make_env], processes=2) is None  # one env: no pool
