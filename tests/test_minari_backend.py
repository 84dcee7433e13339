"""The minari backend on small real Minari datasets built from real envs."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from fino.algo import AgentConfig, FinoAgent
from fino.backends.base import DatasetMissingError, TaskConfig, TaskError
from fino.backends.minari import MinariBackend
from fino.data.buffer import ReplayBuffer
from tests.minari_fixtures import (
    ANTMAZE_ID,
    ANTMAZE_STEPS,
    INVERTED_PENDULUM_ID,
    make_antmaze_dataset,
    make_inverted_pendulum_dataset,
)

BACKEND = MinariBackend()
# Minari's D4RL antmaze sets use AntMaze_*-v4, which gymnasium-robotics marks as out of date.
pytestmark = pytest.mark.filterwarnings("ignore:.*AntMaze_UMaze-v4 is out of date")


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def antmaze(minari_root: Path):
    return make_antmaze_dataset()


def _raw_transitions(dataset) -> dict[str, np.ndarray]:
    """The dataset's rewards and observation dicts, episode by episode, concatenated."""
    episodes = list(dataset.iterate_episodes())
    return {
        "rewards": np.concatenate([e.rewards for e in episodes]),
        "terminations": np.concatenate([e.terminations for e in episodes]),
        "first_obs": episodes[0].observations,
        "lengths": np.array([len(e.rewards) for e in episodes]),
    }


def test_owns_minari_ids_and_resolves_the_papers_short_names():
    assert BACKEND.owns("D4RL/pen/cloned-v2")
    assert BACKEND.owns("mujoco/halfcheetah/expert-v0")
    assert BACKEND.owns("D4RL/antmaze/large-play")
    assert not BACKEND.owns("cube-single-play-singletask-task2-v0")
    assert not BACKEND.owns("data/file.npz")
    assert BACKEND.canonical_name(TaskConfig("D4RL/antmaze/large-play")) == \
        "D4RL/antmaze/large-play-v1"
    assert BACKEND.canonical_name(TaskConfig("d4rl/pen/cloned")) == "D4RL/pen/cloned-v2"
    with pytest.raises(TaskError, match="namespace/name-vN"):
        BACKEND.canonical_name(TaskConfig("mujoco/halfcheetah/expert"))


def test_canonical_name_rejects_unknown_options_without_reading_data(minari_root: Path):
    with pytest.raises(TaskError, match=r"unknown task option.*'alpha'"):
        BACKEND.canonical_name(TaskConfig("D4RL/pen/cloned-v2", options={"alpha": 3}))
    with pytest.raises(TaskError, match="ref_min_score and ref_max_score"):
        BACKEND.canonical_name(TaskConfig("D4RL/pen/cloned-v2", options={"ref_min_score": 0}))
    assert not (minari_root / "D4RL").exists()


def test_missing_dataset_names_the_directory_and_the_download_command(minari_root: Path):
    with pytest.raises(DatasetMissingError) as info:
        BACKEND.load(TaskConfig("D4RL/pen/cloned-v2"))
    message = str(info.value)
    assert str(minari_root / "D4RL" / "pen" / "cloned-v2") in message
    assert "fino data download D4RL/pen/cloned-v2" in message


def test_antmaze_loads_with_flat_observations_and_shifted_rewards(antmaze):
    task = BACKEND.load(TaskConfig(ANTMAZE_ID))
    raw = _raw_transitions(antmaze)
    data = task.train_dataset
    n = int(raw["lengths"].sum())

    assert task.spec.name == ANTMAZE_ID
    assert (task.spec.obs_dim, task.spec.action_dim) == (27 + 2 + 2, 8)
    assert task.spec.episode_length == ANTMAZE_STEPS
    assert data["observations"].shape == (n, 31) and data["observations"].dtype == np.float32
    first = raw["first_obs"]  # observation, achieved_goal, desired_goal: in that order
    expected = np.concatenate([first["observation"][0], first["achieved_goal"][0],
                               first["desired_goal"][0]])
    np.testing.assert_allclose(data["observations"][0], expected, rtol=1e-6)
    np.testing.assert_array_equal(data["next_observations"][0], data["observations"][1])
    # reward - 1 as in the paper, stated on the Task for online rewards
    assert task.reward_shift == -1.0
    np.testing.assert_allclose(data["rewards"], raw["rewards"] - 1.0)
    assert task.training_reward(1.0) == 0.0
    # terminals mark episode ends; masks come from true terminations only
    ends = np.cumsum(raw["lengths"]) - 1
    np.testing.assert_array_equal(np.flatnonzero(data["terminals"]), ends)
    np.testing.assert_array_equal(data["masks"], 1.0 - raw["terminations"])


def test_antmaze_env_emits_the_dataset_layout(antmaze):
    task = BACKEND.load(TaskConfig(ANTMAZE_ID))
    env = task.make_env()
    raw_env = antmaze.recover_environment(eval_env=True)
    obs, _ = env.reset(seed=0)
    raw_obs, _ = raw_env.reset(seed=0)

    assert env.observation_space.shape == (31,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, np.concatenate(
        [raw_obs["observation"], raw_obs["achieved_goal"], raw_obs["desired_goal"]]), rtol=1e-6)
    # the dataset's episode 0 was reset with seed 0 in the same maze: the same first state
    np.testing.assert_allclose(obs, task.train_dataset["observations"][0], rtol=1e-5)
    # online steps go to the evaluation env (terminates at the goal), not the continuing one
    assert env.unwrapped.continuing_task is False
    collection = BACKEND.load(TaskConfig(ANTMAZE_ID, options={"online_env": "collection"}))
    assert collection.make_env().unwrapped.continuing_task is True
    # env factories and the score are picklable (evaluation may run in another process)
    assert pickle.loads(pickle.dumps(task.make_eval_env))().observation_space.shape == (31,)
    assert pickle.loads(pickle.dumps(task.score_episode))(1.0, {}) == task.score_episode(1.0, {})


def test_antmaze_score_is_normalised_from_the_reference_scores(antmaze):
    task = BACKEND.load(TaskConfig(ANTMAZE_ID))  # fixture references: min 0, max 2
    assert task.spec.score_name == "normalized_score"
    assert task.score_episode(1.0, {}) == pytest.approx(50.0)
    assert task.score_episode(2.0, {}) == pytest.approx(100.0)
    overridden = BACKEND.load(TaskConfig(ANTMAZE_ID, options={"ref_min_score": 0.0,
                                                              "ref_max_score": 4.0}))
    assert overridden.score_episode(1.0, {}) == pytest.approx(25.0)


def test_box_dataset_without_references_scores_returns_and_rescales_actions(minari_root):
    dataset = make_inverted_pendulum_dataset()
    task = BACKEND.load(TaskConfig(INVERTED_PENDULUM_ID))
    raw = _raw_transitions(dataset)
    actions = np.concatenate([e.actions for e in dataset.iterate_episodes()])

    assert (task.spec.obs_dim, task.spec.action_dim, task.spec.score_name) == (4, 1, "return")
    assert task.reward_shift == 0.0
    assert task.score_episode(7.0, {}) == 7.0
    np.testing.assert_allclose(task.train_dataset["actions"], actions / 3.0, atol=1e-6)
    assert raw["terminations"].any()  # real terminations: masks 0 exactly there
    np.testing.assert_array_equal(task.train_dataset["masks"], 1.0 - raw["terminations"])
    env = task.make_env()
    assert env.action_space.low[0] == -1.0 and env.action_space.high[0] == 1.0
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, task.train_dataset["observations"][0], rtol=1e-6)


def test_a_few_training_steps_and_an_env_step_work(antmaze):
    task = BACKEND.load(TaskConfig(ANTMAZE_ID))
    buffer = ReplayBuffer(task.train_dataset, capacity=1000)
    config = AgentConfig(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32), batch_size=32)
    agent = FinoAgent(task.spec.obs_dim, task.spec.action_dim, config)
    for _ in range(3):
        info = agent.info(agent.update(buffer.sample(32)))
    assert all(np.isfinite(v) for v in info.values())

    env = task.make_env()
    obs, _ = env.reset(seed=1)
    action = agent.act(torch.as_tensor(obs)).numpy()
    assert env.action_space.contains(action)
    next_obs, reward, terminated, _, _ = env.step(action)
    buffer.add(obs, action, task.training_reward(reward), next_obs, terminated)
    assert len(buffer) == len(task.train_dataset["rewards"]) + 1
    assert isinstance(env, gymnasium.Env)
