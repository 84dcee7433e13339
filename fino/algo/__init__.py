"""The algorithm: config, networks, losses, acting, entropy and β."""

from typing import Any

from fino.algo.config import AgentConfig, ConfigError, default_num_candidates

__all__ = ["AgentConfig", "Batch", "ConfigError", "FinoAgent", "UpdateNoise",
           "default_num_candidates"]


def __getattr__(name: str) -> Any:
    # The agent imports torch (~1 s); configs and the CLI's help must not pay for it.
    if name in ("Batch", "FinoAgent", "UpdateNoise"):
        from fino.algo import agent

        return getattr(agent, name)
    raise AttributeError(name)
