"""Local OGBench dataset generation: real envs and oracles, tiny episodes, OGBench's own loader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import ogbench
import ogbench.utils
import pytest
from typer.testing import CliRunner

from fino.backends.datagen import (
    RECIPES,
    DatagenError,
    GenerationProgress,
    dataset_name,
    generate_dataset,
    local_datasets,
    recipe_for,
)
from fino.backends.datagen import episode as episode_module
from fino.cli.main import app

# ogbench's own envs note that their float64 Box bounds are cast to float32: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*precision lowered:UserWarning")

LENGTH = 41  # raw steps per episode: 40 transitions, enough for the oracles to move things


def _generate(tmp_path_factory: pytest.TempPathFactory, name: str, **kw) -> list[Path]:
    out = tmp_path_factory.mktemp(name.split("-")[0])
    return generate_dataset(name, **{"episodes": 2, "episode_length": LENGTH, "out_dir": out,
                                     "workers": 1, **kw})


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    # A task name on purpose: users type these; it must map to the dataset.
    return _generate(tmp_path_factory, "cube-single-play-singletask-task2-v0")


@pytest.fixture(scope="module")
def puzzle(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _generate(tmp_path_factory, "puzzle-4x4-play-v0")


@pytest.fixture(scope="module")
def maze(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _generate(tmp_path_factory, "pointmaze-medium-navigate-v0")


def test_files_have_ogbench_names_keys_and_dtypes(cube: list[Path], puzzle: list[Path]) -> None:
    train, val = cube
    assert (train.name, val.name) == ("cube-single-play-v0.npz", "cube-single-play-v0-val.npz")
    with np.load(train) as f:
        assert sorted(f.files) == ["actions", "observations", "qpos", "qvel", "terminals"]
        assert f["observations"].shape == (2 * LENGTH, 28) and f["actions"].shape == (2 * LENGTH, 5)
        assert f["qpos"].shape == (2 * LENGTH, 21) and f["qvel"].shape == (2 * LENGTH, 20)
        for key in ("observations", "actions", "qpos", "qvel"):
            assert f[key].dtype == np.float32
        assert f["terminals"].dtype == np.bool_
        # 1 exactly on the last step of each episode (a time limit, not success)
        assert np.flatnonzero(f["terminals"]).tolist() == [LENGTH - 1, 2 * LENGTH - 1]
        assert np.abs(f["actions"]).max() <= 1.0
    with np.load(val) as f:
        assert len(f["terminals"]) == LENGTH  # max(1, 2 // 10) val episodes
    with np.load(puzzle[0]) as f:
        assert f["button_states"].dtype == np.int64 and f["button_states"].shape == (2 * LENGTH, 16)


@pytest.mark.parametrize("fixture, task, obs_dim", [
    ("cube", "cube-single-play-singletask-task2-v0", 28),
    ("puzzle", "puzzle-4x4-play-singletask-task1-v0", 83),
    ("maze", "pointmaze-medium-navigate-singletask-task1-v0", 2),
])
def test_ogbench_loads_regular_and_singletask(fixture: str, task: str, obs_dim: int,
                                              request: pytest.FixtureRequest) -> None:
    train_path = str(request.getfixturevalue(fixture)[0])
    regular = task.replace("singletask-task1-", "").replace("singletask-task2-", "")
    _, train, val = ogbench.make_env_and_datasets(regular, dataset_path=train_path)
    assert train["observations"].shape == (2 * (LENGTH - 1), obs_dim)  # terminal rows dropped
    assert train["next_observations"].shape == train["observations"].shape
    assert val["observations"].shape == (LENGTH - 1, obs_dim)

    env, train, val = ogbench.make_env_and_datasets(task, dataset_path=train_path)
    assert env.observation_space.shape == (obs_dim,)
    for split in (train, val):
        n = len(split["observations"])
        assert split["rewards"].shape == split["masks"].shape == (n,)
        assert split["rewards"].max() <= 0 and set(np.unique(split["masks"])) <= {0.0, 1.0}


@pytest.mark.parametrize("fixture, task", [
    ("cube", "cube-single-play-singletask-task2-v0"),
    ("puzzle", "puzzle-4x4-play-singletask-task1-v0"),
    ("maze", "pointmaze-medium-navigate-singletask-task1-v0"),
])
def test_relabelled_rewards_equal_the_env_reward_in_the_stored_state(
        fixture: str, task: str, request: pytest.FixtureRequest) -> None:
    path = str(request.getfixturevalue(fixture)[0])
    env, data, _ = ogbench.make_env_and_datasets(task, dataset_path=path, add_info=True)
    base = env.unwrapped
    for i in range(0, len(data["observations"]), 5):
        qpos, qvel = data["qpos"][i].astype(np.float64), data["qvel"][i].astype(np.float64)
        if "button_states" in data:
            base.set_state(qpos, qvel, data["button_states"][i])
        else:
            base.set_state(qpos, qvel)
        if fixture == "maze":
            observation = base.get_ob()
            keep = slice(None)
        else:
            observation = base.compute_observation()
            # Effector pose (12:17) and gripper contact (18) come from MuJoCo's kinematics of
            # the previous substep in the env's own observation; the rest is exact.
            keep = np.r_[0:12, 17, 19:len(observation)]
        np.testing.assert_allclose(observation[keep], data["observations"][i][keep], atol=1e-5)
        # success_timing='pre': the reward of a step is judged on the state it starts from
        _, reward, *_ = base.step(np.zeros(env.action_space.shape))
        assert reward == data["rewards"][i], f"row {i}"
    if fixture == "puzzle":  # buttons flip, so the relabelled reward really varies here
        assert len(np.unique(data["rewards"])) > 1


def test_same_seed_gives_identical_files_for_any_worker_count(tmp_path: Path) -> None:
    kw = dict(episodes=3, episode_length=31)
    one = generate_dataset("cube-single-play-v0", out_dir=tmp_path / "w1", workers=1, **kw)
    two = generate_dataset("cube-single-play-v0", out_dir=tmp_path / "w2", workers=2, **kw)
    other = generate_dataset("cube-single-play-v0", out_dir=tmp_path / "s1", workers=1, seed=1,
                             **kw)
    for a, b, c in zip(one, two, other, strict=True):
        with np.load(a) as fa, np.load(b) as fb, np.load(c) as fc:
            for key in fa.files:
                np.testing.assert_array_equal(fa[key], fb[key])
            assert not np.array_equal(fa["observations"], fc["observations"])


def test_an_episode_does_not_depend_on_the_episodes_run_before_it() -> None:
    # scene's set_new_target leaves target attributes behind that the markov oracle reads for
    # one step after a task switch; this sequence diverged before the collector reset them.
    name, length = "scene-noisy-v0", 151
    episode_module._collectors.clear()
    episode_module.collect_episode(name, length, 0, "train", 0)
    after = episode_module.collect_episode(name, length, 0, "val", 0)
    episode_module._collectors.clear()
    fresh = episode_module.collect_episode(name, length, 0, "val", 0)
    for key in fresh:
        np.testing.assert_array_equal(after[key], fresh[key])


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_generation_leaves_no_files(tmp_path: Path, workers: int) -> None:
    seen: list[GenerationProgress] = []

    def stop_after_two_episodes(state: GenerationProgress) -> None:
        seen.append(state)
        if state.episodes_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset("pointmaze-medium-navigate-v0", episodes=20, episode_length=51,
                         out_dir=tmp_path, workers=workers, progress=stop_after_two_episodes)
    assert list(tmp_path.iterdir()) == []
    assert seen[0] == GenerationProgress("pointmaze-medium-navigate-v0", 0, 22, 0, 22 * 51)


def test_a_failed_overwrite_never_leaves_a_loadable_pair(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    kw = dict(episodes=1, episode_length=21, out_dir=tmp_path, workers=1)
    train, val = generate_dataset("pointmaze-medium-navigate-v0", **kw)
    with pytest.raises(DatagenError, match="--force"):
        generate_dataset("pointmaze-medium-navigate-v0", **kw)

    real_replace = os.replace

    def killed_before_the_train_rename(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == train:
            raise OSError("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_train_rename)
    with pytest.raises(OSError, match="killed"):
        generate_dataset("pointmaze-medium-navigate-v0", seed=1, overwrite=True, **kw)
    assert not train.exists() and val.exists()  # the old train file never meets the new val
    assert [p.name for p in tmp_path.iterdir()] == [val.name]  # temporaries removed
    assert not local_datasets(tmp_path)[0].complete


def test_names_map_to_datasets_and_bad_names_say_why() -> None:
    assert dataset_name("cube-double-play-singletask-task2-v0") == "cube-double-play-v0"
    assert dataset_name("cube-double-play-singletask-v0") == "cube-double-play-v0"
    assert dataset_name("puzzle-3x3-play-oraclerep-v0") == "puzzle-3x3-play-v0"
    assert recipe_for("puzzle-4x6-noisy-singletask-task3-v0").p_random_action == 0.2
    assert recipe_for("pointmaze-giant-navigate-v0").episode_length == 2001
    for name in ("antmaze-large-navigate-v0", "humanoidmaze-medium-navigate-v0",
                 "antsoccer-arena-navigate-singletask-task1-v0"):
        with pytest.raises(DatagenError, match=r"expert.*fino data download"):
            recipe_for(name)
    with pytest.raises(DatagenError, match="can generate: cube-single-play-v0"):
        recipe_for("cube-singel-play-v0")
    with pytest.raises(DatagenError, match="episodes=0"):
        generate_dataset("cube-single-play-v0", episodes=0)


def test_every_recipe_names_a_registered_env() -> None:
    import gymnasium

    for recipe in RECIPES.values():
        assert gymnasium.spec(recipe.env_id).id == recipe.env_id


def test_cli_generate_list_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    args = ["data", "generate", "pointmaze-large-navigate-singletask-task1-v0", "--episodes", "1",
            "--episode-length", "21", "--workers", "1", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "pointmaze-large-navigate-v0-val.npz" in result.output
    assert (tmp_path / "pointmaze-large-navigate-v0.npz").is_file()

    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "--force" in result.output
    assert "Traceback" not in result.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0

    result = runner.invoke(app, ["data", "list", "--dir", str(tmp_path)])
    assert result.exit_code == 0 and "pointmaze-large-navigate-v0" in result.output

    result = runner.invoke(app, ["data", "generate", "antmaze-large-navigate-v0"])
    assert result.exit_code == 1 and "fino data download" in result.output

    # An unreachable server (a closed local port), not a mock: ogbench's own downloader runs.
    monkeypatch.setattr(ogbench.utils, "DATASET_URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["data", "download", "cube-single-play-v0", "--out",
                                 str(tmp_path / "dl")])
    assert result.exit_code == 1 and "could not download cube-single-play-v0" in result.output
    assert "Traceback" not in result.output
    assert list((tmp_path / "dl").iterdir()) == []
