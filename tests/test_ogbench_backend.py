"""OGBench task names: aliases resolve to the paper's default tasks; options reach the env."""

import pytest

from fino.backends.base import TaskConfig, TaskError
from fino.backends.registry import canonical_task_name


@pytest.mark.parametrize(("name", "canonical"), [
    ("humanoidmaze", "humanoidmaze-medium-navigate-singletask-task1-v0"),
    ("humanoidmaze-large", "humanoidmaze-large-navigate-singletask-task1-v0"),
    ("antmaze-large", "antmaze-large-navigate-singletask-task1-v0"),
    ("antmaze-giant", "antmaze-giant-navigate-singletask-task1-v0"),
    ("antsoccer", "antsoccer-arena-navigate-singletask-task4-v0"),
    ("cube-double", "cube-double-play-singletask-task2-v0"),
    ("puzzle-4x4", "puzzle-4x4-play-singletask-task4-v0"),
    ("cube-single", "cube-single-play-singletask-task1-v0"),
    ("pointmaze", "pointmaze-medium-navigate-singletask-task1-v0"),
    ("cube-double-play-v0", "cube-double-play-singletask-task2-v0"),
    ("cube-double-play-singletask-task5-v0", "cube-double-play-singletask-task5-v0"),
    ("puzzle-4x4-play-singletask-v0", "puzzle-4x4-play-singletask-task4-v0"),
])
def test_aliases_and_names_resolve_to_the_papers_default_task(name, canonical):
    assert canonical_task_name(TaskConfig(name)) == ("ogbench", canonical)


def test_task_id_picks_another_task():
    _, name = canonical_task_name(TaskConfig("humanoidmaze", task_id=3))
    assert name == "humanoidmaze-medium-navigate-singletask-task3-v0"
    with pytest.raises(TaskError, match=r"1\.\.5"):
        TaskConfig("humanoidmaze", task_id=6)


@pytest.mark.parametrize("name", ["cube-sextuple-play", "humanoid", "cube-double-playy-v0"])
def test_unknown_names_are_rejected(name):
    with pytest.raises(TaskError, match="unknown"):
        canonical_task_name(TaskConfig(name))
