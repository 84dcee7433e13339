"""The algorithm: config, networks, losses, acting, entropy and β."""

from typing import Any

from fino.algo.config import AgentConfig, ConfigError, default_num_candidates

__all__ = ["AgentConfig", "AgentPack", "Batch", "ConfigError", "FinoAgent", "NonFiniteLoss",
           "UpdateNoise", "default_num_candidates"]


def __getattr__(name: str) -> Any:
    # The agent imports torch (~1 s); configs and the CLI's help must not pay for it.
    if name in ("AgentPack", "Batch", "FinoAgent", "NonFiniteLoss", "UpdateNoise"):
        from fino.algo import agent

        return getattr(agent, name)
    raise AttributeError(name)
