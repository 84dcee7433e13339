"""The run configuration, re-exported from its leaf module `fino.config` (its old import path)."""

from fino.config import (
    ALGOS,
    CONFIG_NAME,
    RANGE,
    SINK_NAME,
    Algo,
    RunConfig,
    TrainConfig,
    build_section,
    same_config,
)

__all__ = ["ALGOS", "CONFIG_NAME", "RANGE", "SINK_NAME", "Algo", "RunConfig", "TrainConfig",
           "build_section", "same_config"]
