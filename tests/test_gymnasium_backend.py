"""The gymnasium backend: a registered env plus an OGBench-format .npz or a Minari id."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from fino.algo import AgentConfig, FinoAgent
from fino.backends.base import DatasetMissingError, TaskConfig, TaskError
from fino.backends.gymnasium import GymnasiumBackend
from fino.data.buffer import ReplayBuffer
from tests.minari_fixtures import INVERTED_PENDULUM_ID, make_inverted_pendulum_dataset
from tests.npz_fixtures import Touch, damage_member

BACKEND = GymnasiumBackend()
EPISODE_STEPS = 20


def _pendulum_episodes(num_episodes: int = 3, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random-action Pendulum-v1 episodes (actions on [-2, 2]), truncated at 20 steps."""
    env = gymnasium.make("Pendulum-v1", max_episode_steps=EPISODE_STEPS)
    env.action_space.seed(seed)
    episodes = []
    for episode in range(num_episodes):
        obs, _ = env.reset(seed=seed + episode)
        rows: dict[str, list] = {"observations": [obs], "actions": [], "rewards": [],
                                 "terminated": []}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            rows["observations"].append(obs)
            rows["actions"].append(action)
            rows["rewards"].append(reward)
            rows["terminated"].append(terminated)
            done = terminated or truncated
        episodes.append({k: np.asarray(v, np.float32) for k, v in rows.items()})
    return episodes


def _transitions_npz(path: Path, episodes: list[dict[str, np.ndarray]]) -> Path:
    """One transition per row, with next_observations."""
    ends = [np.eye(1, len(e["rewards"]), len(e["rewards"]) - 1)[0] for e in episodes]
    np.savez_compressed(
        path,
        observations=np.concatenate([e["observations"][:-1] for e in episodes]),
        next_observations=np.concatenate([e["observations"][1:] for e in episodes]),
        actions=np.concatenate([e["actions"] for e in episodes]),
        rewards=np.concatenate([e["rewards"] for e in episodes]),
        masks=np.concatenate([1.0 - e["terminated"] for e in episodes]),
        terminals=np.concatenate(ends).astype(bool))
    return path


def _ogbench_layout_npz(path: Path, episodes: list[dict[str, np.ndarray]]) -> Path:
    """OGBench's layout: every state a row, the final one with terminals = 1 (and a dummy
    action, reward and mask that the loader must drop)."""
    def padded(e, key, fill):
        return np.concatenate([e[key], np.full((1, *e[key].shape[1:]), fill, np.float32)])

    np.savez_compressed(
        path,
        observations=np.concatenate([e["observations"] for e in episodes]),
        actions=np.concatenate([padded(e, "actions", 9.0) for e in episodes]),
        rewards=np.concatenate([padded(e, "rewards", 99.0) for e in episodes]),
        masks=np.concatenate([1.0 - padded(e, "terminated", 0.0) for e in episodes]),
        terminals=np.concatenate([np.eye(1, len(e["observations"]), len(e["observations"]) - 1,
                                         dtype=bool)[0] for e in episodes]))
    return path


def _config(dataset: Path | str, name: str = "Pendulum-v1", **options) -> TaskConfig:
    return TaskConfig(name, backend="gymnasium", dataset=str(dataset), options=options)


def test_never_claims_a_name_and_needs_a_dataset():
    assert not BACKEND.owns("Pendulum-v1")
    assert BACKEND.canonical_name(_config("x.npz")) == "Pendulum-v1"
    with pytest.raises(TaskError, match="needs a dataset"):
        BACKEND.canonical_name(TaskConfig("Pendulum-v1", backend="gymnasium"))


def test_unknown_env_id_is_named():
    with pytest.raises(TaskError, match="unknown gymnasium env id 'NoSuchEnv-v7'"):
        BACKEND.canonical_name(_config("x.npz", name="NoSuchEnv-v7"))


def test_robotics_env_ids_resolve_without_an_explicit_import():
    assert BACKEND.canonical_name(_config("x.npz", name="AdroitHandPen-v1")) == \
        "AdroitHandPen-v1"


def test_transition_npz_loads_with_actions_rescaled_to_unit_range(tmp_path: Path):
    episodes = _pendulum_episodes()
    task = BACKEND.load(_config(_transitions_npz(tmp_path / "pendulum.npz", episodes)))
    data = task.train_dataset
    n = 3 * EPISODE_STEPS

    assert (task.spec.obs_dim, task.spec.action_dim) == (3, 1)
    assert task.spec.episode_length == 200  # Pendulum-v1's own limit
    assert task.spec.score_name == "return" and task.score_episode(-123.0, {}) == -123.0
    assert data["observations"].shape == (n, 3)
    np.testing.assert_allclose(data["actions"][:EPISODE_STEPS], episodes[0]["actions"] / 2.0,
                               atol=1e-6)
    np.testing.assert_array_equal(data["rewards"][:EPISODE_STEPS], episodes[0]["rewards"])
    np.testing.assert_array_equal(np.flatnonzero(data["terminals"]),
                                  [EPISODE_STEPS - 1, 2 * EPISODE_STEPS - 1, n - 1])
    env = task.make_eval_env()
    assert (env.action_space.low[0], env.action_space.high[0]) == (-1.0, 1.0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, data["observations"][0])


def test_ogbench_layout_gives_the_same_transitions(tmp_path: Path):
    episodes = _pendulum_episodes()
    regular = BACKEND.load(_config(_transitions_npz(tmp_path / "a.npz", episodes)))
    compact = BACKEND.load(_config(_ogbench_layout_npz(tmp_path / "b.npz", episodes)))
    for key, value in regular.train_dataset.items():
        np.testing.assert_array_equal(compact.train_dataset[key], value, err_msg=key)


def test_reference_scores_and_reward_mapping_come_from_options(tmp_path: Path):
    path = _transitions_npz(tmp_path / "pendulum.npz", _pendulum_episodes(1))
    task = BACKEND.load(_config(path, ref_min_score=-1000.0, ref_max_score=0.0,
                                reward_scale=0.1, reward_shift=1.0, max_episode_steps=50))
    assert task.spec.score_name == "normalized_score"
    assert task.score_episode(-250.0, {}) == pytest.approx(75.0)
    assert task.spec.episode_length == 50
    raw = np.load(path)["rewards"]
    np.testing.assert_allclose(task.train_dataset["rewards"], raw * 0.1 + 1.0, rtol=1e-6)
    assert task.training_reward(-2.0) == pytest.approx(0.8)


def test_missing_file_is_named(tmp_path: Path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DatasetMissingError, match=str(path)):
        BACKEND.load(_config(path))


def test_corrupt_file_is_named(tmp_path: Path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(TaskError, match=str(path)):
        BACKEND.load(_config(path))


def test_truncated_archive_is_named(tmp_path: Path):
    path = _transitions_npz(tmp_path / "cut.npz", _pendulum_episodes(1))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TaskError, match=str(path)):
        BACKEND.load(_config(path))


def test_corrupt_array_inside_the_archive_is_named(tmp_path: Path):
    path = _transitions_npz(tmp_path / "flipped.npz", _pendulum_episodes(1))
    raw = bytearray(path.read_bytes())
    raw[200:300] = bytes(b ^ 0xFF for b in raw[200:300])  # inside the first member's data
    path.write_bytes(bytes(raw))
    with pytest.raises(TaskError, match=rf"{path}: cannot read array"):
        BACKEND.load(_config(path))


def test_a_damaged_compressed_member_is_named_when_its_array_is_read(tmp_path: Path):
    path = _transitions_npz(tmp_path / "damaged.npz", _pendulum_episodes(1))
    damage_member(path, "actions.npy")
    with pytest.raises(TaskError, match=rf"^{path}: cannot read array 'actions' \(zlib\.error: .*"
                                        "delete it and write or copy it again$"):
        BACKEND.load(_config(path))


def test_an_object_array_is_refused_without_running_its_code(tmp_path: Path):
    marker = tmp_path / "code-ran"
    path = _transitions_npz(tmp_path / "crafted.npz", _pendulum_episodes(1))
    with np.load(path) as file:
        arrays = {k: file[k] for k in file.files}
    arrays["rewards"] = np.array([Touch(marker)] * len(arrays["rewards"]), dtype=object)
    np.savez_compressed(path, **arrays)
    with pytest.raises(TaskError, match=r"cannot read array 'rewards' .*allow_pickle=False"):
        BACKEND.load(_config(path))
    assert not marker.exists()


def test_missing_rewards_and_masks_say_which_keys_are_needed(tmp_path: Path):
    path = tmp_path / "norewards.npz"
    episode = _pendulum_episodes(1)[0]
    np.savez(path, observations=episode["observations"][:-1],
             next_observations=episode["observations"][1:], actions=episode["actions"],
             terminals=np.zeros(EPISODE_STEPS))
    with pytest.raises(TaskError, match=r"lacks \['rewards', 'masks'\]"):
        BACKEND.load(_config(path))


def test_nan_and_dimension_mismatches_are_errors(tmp_path: Path):
    episodes = _pendulum_episodes(1)
    episodes[0]["observations"][3, 1] = np.nan
    with pytest.raises(TaskError, match="NaN"):
        BACKEND.load(_config(_transitions_npz(tmp_path / "nan.npz", episodes)))
    path = _transitions_npz(tmp_path / "ok.npz", _pendulum_episodes(1))
    with pytest.raises(TaskError, match=r"\(obs, action\) dims \(3, 1\)"):
        BACKEND.load(_config(path, name="MountainCarContinuous-v0"))


def test_minari_id_dataset_with_a_named_env_trains_and_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    make_inverted_pendulum_dataset()
    task = BACKEND.load(_config(INVERTED_PENDULUM_ID, name="InvertedPendulum-v5"))
    assert (task.spec.obs_dim, task.spec.action_dim, task.spec.score_name) == (4, 1, "return")
    assert np.abs(task.train_dataset["actions"]).max() <= 1.0

    buffer = ReplayBuffer(task.train_dataset, capacity=1000)
    config = AgentConfig(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32), batch_size=32)
    agent = FinoAgent(task.spec.obs_dim, task.spec.action_dim, config)
    for _ in range(3):
        agent.update(buffer.sample(32))
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    next_obs, *_ = env.step(agent.act(torch.as_tensor(obs)).numpy())
    assert next_obs.shape == (4,) and next_obs.dtype == np.float32
