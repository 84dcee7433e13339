"""The algorithm: config, networks, losses, acting, entropy and β."""

from fino.algo.agent import Batch, FinoAgent, UpdateNoise
from fino.algo.config import AgentConfig, ConfigError, default_num_candidates

__all__ = ["AgentConfig", "Batch", "ConfigError", "FinoAgent", "UpdateNoise",
           "default_num_candidates"]
