"""Presets: every shipped file is valid, profiles and overrides merge in order, errors name
the file and the key."""

from pathlib import Path

import pytest

from fino.algo.config import ConfigError
from fino.backends.base import TaskConfig, TaskError
from fino.train.config import RunConfig, TrainConfig
from fino.train.presets import (
    PresetError,
    all_presets,
    build_run_config,
    load_preset,
    parse_overrides,
)

GOOD = """
source = "test"
tasks = ["cube-"]
[agent]
alpha = 300.0
[train]
offline_steps = 100
[profiles.quick.train]
offline_steps = 10
"""


def test_every_shipped_preset_is_valid_and_names_its_source():
    presets = all_presets()
    assert {p.path.name for p in presets} >= {"cube.toml", "puzzle.toml", "pointmaze.toml",
                                               "humanoidmaze.toml", "antmaze.toml",
                                               "antsoccer.toml", "d4rl-antmaze.toml",
                                               "adroit.toml"}
    for preset in presets:
        assert preset.source
    quick = {p.path.name for p in presets if "quick" in p.profiles}
    assert quick == {"cube.toml", "puzzle.toml", "pointmaze.toml"}


@pytest.mark.parametrize(("task", "alpha", "discount", "q_agg"), [
    ("humanoidmaze", 100.0, 0.995, "mean"),
    ("humanoidmaze-large", 30.0, 0.995, "mean"),
    ("antmaze-large", 10.0, 0.99, "min"),
    ("antmaze-giant", 10.0, 0.995, "min"),
    ("antsoccer", 30.0, 0.995, "mean"),
    ("cube-double", 300.0, 0.99, "mean"),
    ("puzzle-4x4", 1000.0, 0.99, "mean"),
    ("D4RL/antmaze/umaze-v1", 10.0, 0.99, "mean"),
    ("D4RL/antmaze/large-play-v1", 3.0, 0.99, "mean"),
    ("D4RL/pen/cloned-v2", 1000.0, 0.99, "min"),
    ("D4RL/relocate/cloned-v2", 10000.0, 0.99, "mean"),
])
def test_paper_presets_match_the_spec_table(task, alpha, discount, q_agg):
    config = build_run_config(TaskConfig(task))
    assert (config.agent.alpha, config.agent.discount, config.agent.q_agg) == (
        alpha, discount, q_agg)
    assert (config.train.offline_steps, config.train.online_steps) == (1_000_000, 500_000)
    assert (config.train.eval_interval, config.train.eval_episodes) == (50_000, 50)


def test_quick_profile_then_set_then_command_line_override_in_that_order():
    config = build_run_config(
        TaskConfig("cube-single"), preset="quick",
        overrides=["agent.alpha=100", "train.offline_steps=7", "task.success_timing=post"],
        train_overrides={"offline_steps": 5, "online_steps": None})
    assert config.task.name == "cube-single-play-singletask-task1-v0"
    assert config.task.backend == "ogbench"
    assert config.task.success_timing == "post"
    assert config.agent.actor_hidden_dims == (256, 256)
    assert config.agent.alpha == 100
    assert config.train.offline_steps == 5
    assert config.train.online_steps == 20_000
    assert config.preset == "cube.toml:quick"


def test_fql_forces_no_injected_noise_and_one_candidate():
    config = build_run_config(TaskConfig("cube-double"), algo="fql")
    assert config.agent.noise_scale == 0.0 and config.agent.num_candidates == 1
    assert config.agent.is_fql
    fino = build_run_config(TaskConfig("cube-double"))
    assert fino.agent.noise_scale == 0.1 and not fino.agent.is_fql


def test_run_config_round_trips_through_a_dict():
    config = build_run_config(TaskConfig("puzzle-4x4"), preset="quick", seed=3)
    import json
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_a_preset_file_given_by_path_with_a_profile(tmp_path):
    path = _write(tmp_path, GOOD)
    config = build_run_config(TaskConfig("cube-single"), preset=f"{path}:quick")
    assert config.train.offline_steps == 10 and config.agent.alpha == 300.0


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("alpha = 300.0", "alpah = 300.0"), "alpah"),
    (GOOD.replace("alpha = 300.0", "alpha = -1.0"), "alpha"),
    (GOOD.replace("offline_steps = 10", "offline_steps = -3"), "offline_steps"),
    (GOOD + "\n[bogus]\nx = 1\n", "bogus"),
    (GOOD.replace('tasks = ["cube-"]', ""), "tasks"),
    (GOOD + "\n[task]\nsuccess_timing = 'later'\n", "success_timing"),
    ("this is = = not toml", "not valid TOML"),
])
def test_a_bad_preset_is_an_error_naming_the_file_and_the_key(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(PresetError) as info:
        load_preset(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_unknown_profile_and_unknown_task_are_clear_errors():
    with pytest.raises(PresetError, match=r"no profile 'fast'.*quick"):
        build_run_config(TaskConfig("cube-single"), preset="fast")
    with pytest.raises(TaskError, match=r"unknown task 'cube-sigle' \(did you mean cube-single"):
        build_run_config(TaskConfig("cube-sigle"))


@pytest.mark.parametrize("item", ["alpha=3", "agent.alpha", "model.alpha=3"])
def test_malformed_set_items_are_rejected(item):
    with pytest.raises(PresetError):
        parse_overrides([item])


def test_set_values_are_parsed_as_toml():
    sets = parse_overrides(["agent.alpha=3e2", "agent.actor_hidden_dims=[64, 64]",
                            "task.success_timing=post", "train.balanced=true"])
    assert sets["agent"] == {"alpha": 300.0, "actor_hidden_dims": [64, 64]}
    assert sets["task"] == {"success_timing": "post"}
    assert sets["train"] == {"balanced": True}


def test_train_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ConfigError, match="eval_interval"):
        TrainConfig(eval_interval=0)
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    assert TrainConfig(eval_interval=7).resolved_entropy_interval == 7
