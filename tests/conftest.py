"""Shared fixtures: small agents and synthetic batches (real tensors, no mocks)."""

from __future__ import annotations

import pytest
import torch

from fino.algo import AgentConfig, Batch, FinoAgent
from tests.conftest_pg import pg_url  # noqa: F401  (a throwaway PostgreSQL database)

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))


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
