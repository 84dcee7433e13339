"""OGBench task names: aliases resolve to the paper's default tasks; options reach the env."""

import zlib
from pathlib import Path

import numpy as np
import pytest

from fino.backends.base import TaskConfig, TaskError
from fino.backends.datagen.writer import dataset_paths, write_pair
from fino.backends.registry import canonical_task_name, load_task
from tests.npz_fixtures import Touch, damage_member


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


def _ogbench_pair(folder: Path, observations: np.ndarray | None = None) -> tuple[Path, Path]:
    """A cube-single train/val pair in OGBench's compressed format (what `fino data` writes)."""
    rng = np.random.default_rng(0)
    rows = 202
    terminals = np.zeros(rows, np.float32)
    terminals[[100, 201]] = 1
    arrays = {"observations": rng.normal(size=(rows, 28)).astype(np.float32),
              "actions": rng.uniform(-1, 1, size=(rows, 5)).astype(np.float32),
              "terminals": terminals, "qpos": rng.normal(size=(rows, 16)),
              "qvel": rng.normal(size=(rows, 15))}
    if observations is not None:
        arrays["observations"] = observations
    paths = dataset_paths(folder, "cube-single-play-v0")
    write_pair(*paths, arrays, arrays)
    return paths


def _load(folder: Path) -> None:
    load_task(TaskConfig("cube-single", dataset_dir=str(folder)))


def test_a_damaged_array_in_the_train_file_is_a_one_line_error_naming_it(tmp_path):
    train, _ = _ogbench_pair(tmp_path)
    damage_member(train, "actions.npy")
    with pytest.raises(TaskError) as info:
        _load(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{train}: cannot read array 'actions' (zlib.error: ")
    assert "delete it; regenerate it locally with `fino data generate cube-single-play-v0`" \
        in message and "\n" not in message
    assert isinstance(info.value.__cause__, zlib.error)  # OGBench's loader hit the bytes


def test_a_truncated_val_file_is_named_not_the_train_file(tmp_path):
    _, val = _ogbench_pair(tmp_path)
    val.write_bytes(val.read_bytes()[: val.stat().st_size // 2])
    with pytest.raises(TaskError, match=rf"^{val}: not a readable \.npz archive .*BadZipFile"):
        _load(tmp_path)


def test_an_object_array_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "code-ran"
    payload = np.empty(202, dtype=object)
    payload[:] = [Touch(marker)] * 202
    train, _ = _ogbench_pair(tmp_path, observations=payload)
    with pytest.raises(TaskError, match=rf"^{train}: cannot read array 'observations' .*"
                                        "allow_pickle=False"):
        _load(tmp_path)
    assert not marker.exists()

