"""D4RL's names, as the papers' commands write them, resolve to their Minari datasets: through
the backend, the CLI's config building (with the D4RL family's preset), completion, and a note
saying what the name became. Minari datasets cannot be downloaded here: resolution reads
nothing, and the one load below uses a small real Minari dataset built from the real env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fino.backends.base import TaskConfig, TaskError
from fino.backends.d4rl_names import MINARI_IDS, minari_id, no_minari_copy, resolution_note
from fino.backends.datagen.recipes import DatagenError
from fino.backends.minari import MinariBackend, is_minari_id
from fino.backends.registry import canonical_task_name
from fino.cli.complete import complete_task
from fino.cli.main import app
from fino.store.db import Store
from fino.store.models import Run
from fino.train.presets import build_run_config

# What users bring from the authors' commands, and the Minari dataset each one is.
FROM_THE_PAPERS = {
    "antmaze-umaze-v2": "D4RL/antmaze/umaze-v1",
    "antmaze-umaze-diverse-v2": "D4RL/antmaze/umaze-diverse-v1",
    "antmaze-medium-play-v2": "D4RL/antmaze/medium-play-v1",
    "antmaze-medium-diverse-v2": "D4RL/antmaze/medium-diverse-v1",
    "antmaze-large-play-v2": "D4RL/antmaze/large-play-v1",
    "antmaze-large-diverse-v2": "D4RL/antmaze/large-diverse-v1",
    "pen-cloned-v1": "D4RL/pen/cloned-v2",
    "door-human-v1": "D4RL/door/human-v2",
    "hammer-expert-v1": "D4RL/hammer/expert-v2",
    "relocate-cloned-v1": "D4RL/relocate/cloned-v2",
    "kitchen-mixed-v0": "D4RL/kitchen/mixed-v2",
    "maze2d-large-dense-v1": "D4RL/pointmaze/large-dense-v2",
}
MINARI_D4RL_ID = re.compile(
    r"D4RL/(antmaze/(umaze|umaze-diverse|(medium|large)-(play|diverse))-v1"
    r"|(pen|door|hammer|relocate)/(human|cloned|expert)-v2"
    r"|kitchen/(complete|partial|mixed)-v2"
    r"|pointmaze/(open|umaze|medium|large)(-dense)?-v2)")
# Minari's D4RL antmaze sets use AntMaze_*-v4, which gymnasium-robotics marks as out of date.
pytestmark = pytest.mark.filterwarnings("ignore:.*AntMaze_UMaze-v4 is out of date")


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setenv("FINO_BENCH_FILE", str(tmp_path / "no-figures.jsonl"))
    return root


def test_every_d4rl_name_maps_to_a_minari_d4rl_id_the_backend_resolves():
    assert len(MINARI_IDS) == 6 + 4 * 3 + 3 + 8
    assert len(set(MINARI_IDS.values())) == len(MINARI_IDS)  # no two names share a dataset
    for name, dataset_id in MINARI_IDS.items():
        assert MINARI_D4RL_ID.fullmatch(dataset_id), (name, dataset_id)
        assert is_minari_id(name) and minari_id(name.upper()) == dataset_id
        assert canonical_task_name(TaskConfig(name)) == ("minari", dataset_id)
    for name, dataset_id in FROM_THE_PAPERS.items():
        assert MINARI_IDS[name] == dataset_id
    assert MinariBackend().canonical_name(TaskConfig("pen-cloned-v1", backend="minari")) == \
        "D4RL/pen/cloned-v2"


@pytest.mark.parametrize(("name", "alpha", "q_agg"), [
    ("antmaze-large-play-v2", 3.0, "mean"),  # the large-maze override of d4rl-antmaze.toml
    ("antmaze-umaze-v2", 10.0, "mean"),
    ("pen-cloned-v1", 1000.0, "min"),
    ("relocate-cloned-v1", 10000.0, "mean"),  # the relocate override of adroit.toml
])
def test_a_d4rl_name_builds_the_same_config_as_its_minari_id(name, alpha, q_agg):
    config = build_run_config(TaskConfig(name), preset="paper", seed=1)
    same = build_run_config(TaskConfig(MINARI_IDS[name]), preset="paper", seed=1)
    assert (config.task.name, config.task.backend) == (MINARI_IDS[name], "minari")
    assert (config.agent.alpha, config.agent.q_agg) == (alpha, q_agg)
    assert config.preset.split(":")[0] in ("d4rl-antmaze.toml", "adroit.toml")
    assert config.to_dict() == same.to_dict()


def test_the_note_says_what_the_name_resolved_to_and_only_for_d4rl_names():
    assert resolution_note("antmaze-large-play-v2") == (
        "antmaze-large-play-v2 is D4RL's name; using Minari's D4RL/antmaze/large-play-v1")
    for other in ("D4RL/antmaze/large-play-v1", "antmaze-large", "cube-double"):
        assert resolution_note(other) is None


def test_queue_add_notes_the_resolution_once_and_queues_the_minari_dataset(minari_root,
                                                                           tmp_path):
    db = tmp_path / "experiments.db"
    result = CliRunner().invoke(app, [
        "queue", "add", "--task", "antmaze-large-play-v2", "--seeds", "0-2",
        "--allow-missing-data", "--db", str(db)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    note = "antmaze-large-play-v2 is D4RL's name; using Minari's D4RL/antmaze/large-play-v1"
    assert result.stderr.count(note) == 1
    assert "fino data download D4RL/antmaze/large-play-v1" in result.output
    store = Store(str(db), create=False)
    with store.read() as session:
        runs = list(session.execute(select(Run).order_by(Run.id)).scalars())
    store.dispose()
    assert [(r.task, r.backend, r.seed) for r in runs] == [
        ("D4RL/antmaze/large-play-v1", "minari", seed) for seed in range(3)]
    assert all(r.config["agent"]["alpha"] == 3.0 for r in runs)


def test_run_notes_the_resolution_before_asking_for_the_dataset(minari_root, tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "pen-cloned-v1", "--out",
                                      str(tmp_path / "run")], env={"COLUMNS": "400"})
    assert result.exit_code == 1
    assert "pen-cloned-v1 is D4RL's name; using Minari's D4RL/pen/cloned-v2" in result.stderr
    assert "fino data download D4RL/pen/cloned-v2" in result.output


def test_the_d4rl_name_loads_its_minari_dataset(minari_root):
    from fino.backends.registry import load_task
    from tests.minari_fixtures import ANTMAZE_ID, make_antmaze_dataset

    make_antmaze_dataset()
    task = load_task(TaskConfig("antmaze-umaze-v2"))
    assert ANTMAZE_ID == "D4RL/antmaze/umaze-v1"
    assert (task.spec.name, task.spec.backend) == (ANTMAZE_ID, "minari")
    assert task.reward_shift == -1.0  # the paper's antmaze rewards, as for the Minari id


def test_other_versions_and_typos_name_the_d4rl_name_and_locomotion_says_minari_has_none():
    # antmaze-large-play-v0 also parses as an OGBench name: D4RL's reading comes first
    for name, known in (("antmaze-large-play-v0", "antmaze-large-play-v2"),
                        ("pen-cloned-v0", "pen-cloned-v1")):
        with pytest.raises(TaskError, match=f"Minari copies D4RL's {known} .*not this version"):
            canonical_task_name(TaskConfig(name))
    with pytest.raises(TaskError, match=r"unknown task 'pen-clonned-v1' \(did you mean "
                                        r"pen-cloned-v1"):
        canonical_task_name(TaskConfig("pen-clonned-v1"))
    for backend in ("auto", "minari"):
        with pytest.raises(TaskError, match="Minari has no copy") as info:
            canonical_task_name(TaskConfig("halfcheetah-medium-v2", backend=backend))
        assert "mujoco/halfcheetah/medium-v0" in str(info.value)
    assert no_minari_copy("antmaze-umaze-v2") is None


def test_data_download_takes_the_d4rl_name(monkeypatch: pytest.MonkeyPatch):
    import minari

    from fino.backends.datagen.download import download_dataset

    asked: list[str] = []

    def offline(dataset_id: str) -> None:  # no network here: minari's own refusal
        asked.append(dataset_id)
        raise ValueError(f"no dataset {dataset_id} reachable")

    monkeypatch.setattr(minari, "download_dataset", offline)
    with pytest.raises(DatagenError, match="D4RL/hammer/expert-v2"):
        download_dataset("hammer-expert-v1")
    assert asked == ["D4RL/hammer/expert-v2"]
    with pytest.raises(DatagenError, match="Minari has no copy"):
        download_dataset("hopper-medium-replay-v2")


def test_completion_offers_the_d4rl_names():
    offered = complete_task("antmaze-large")
    assert {"antmaze-large", "antmaze-large-play-v2", "antmaze-large-diverse-v2"} <= set(offered)
    assert "relocate-cloned-v1" in complete_task("reloc")
