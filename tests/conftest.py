"""Shared fixtures: small agents and synthetic batches (real tensors, no mocks)."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported (OpenMP reads these once). pytest-xdist runs the suite in several
# processes (`make test`: one per core); each takes its share of the cores, and idle OpenMP
# threads sleep instead of spinning, as `fino worker` does for its runs (fino.launch.threads):
# spinning threads of one process starve the others (a 11 s learning check took 138 s).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _share = (_cores or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# xdist's workers inherit COLUMNS=80 and LINES=24 from execnet: Rich consoles built at import
# would keep 80 columns where the tests size them (CliRunner's env) or read the terminal's.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

import pytest
import torch

from fino.algo import AgentConfig, Batch, FinoAgent
from fino.backends.base import TaskConfig
from tests.conftest_pg import db_url, pg_url  # noqa: F401  (throwaway databases)

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
TASK = "cube-single-play-singletask-task2-v0"  # the trainer tests' task, on a tiny dataset


@pytest.fixture
def store(tmp_path: Path):
    """An empty experiments database (SQLite) in the test's folder."""
    from fino.store.db import Store

    return Store(f"sqlite:///{tmp_path / 'experiments.db'}")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A Pendulum dataset of random actions for the queue and worker tests' small runs."""
    from tests.queue_fixtures import pendulum_npz

    return pendulum_npz(tmp_path_factory.mktemp("pendulum") / "pendulum.npz")


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    """A regenerated 4-episode cube-single dataset, shared by the trainer tests."""
    from fino.backends.datagen.generate import generate_dataset

    out = tmp_path_factory.mktemp("ogbench")
    generate_dataset("cube-single-play-v0", episodes=4, episode_length=101, out_dir=out,
                     workers=1)
    return out


@pytest.fixture(scope="session")
def task(dataset_dir):
    from fino.backends.registry import load_task

    return load_task(task_config(dataset_dir))


def task_config(dataset_dir: Path) -> TaskConfig:
    # Short episodes (a gymnasium.make option) so that online episodes end within the test.
    return TaskConfig(TASK, backend="ogbench", dataset_dir=str(dataset_dir),
                      options={"max_episode_steps": 40})


def small_agent(obs_dim: int = 6, action_dim: int = 3, seed: int = 0, **overrides) -> FinoAgent:
    return FinoAgent(obs_dim, action_dim, AgentConfig(**{**SMALL, **overrides}), seed=seed)


def random_batch(obs_dim: int = 6, action_dim: int = 3, n: int = 32, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        observations=torch.randn(n, obs_dim, generator=g),
        actions=torch.rand(n, action_dim, generator=g) * 2 - 1,
        rewards=torch.randn(n, generator=g),
        next_observations=torch.randn(n, obs_dim, generator=g),
        terminated=(torch.rand(n, generator=g) < 0.3).float(),
    )


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield
