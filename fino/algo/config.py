"""Every FINO hyperparameter, with the spec's names and defaults (design/algorithm.md)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

NoiseSchedule = Literal["exp", "paper", "none"]
Exploration = Literal["entropy_guided", "action_noise", "none"]
QAgg = Literal["mean", "min"]
EntropyEstimator = Literal["batched", "sklearn"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "q_agg": ("mean", "min"),
    "noise_schedule": ("exp", "paper", "none"),
    "exploration": ("entropy_guided", "action_noise", "none"),
    "entropy_estimator": ("batched", "sklearn"),
}


# The largest integer setting: the store keeps steps and seeds as 32-bit integers (PostgreSQL's
# INTEGER), and no real width, batch or step count comes near it.
MAX_INT = 2**31 - 1
HIDDEN_DIMS_EXAMPLE = "[512, 512, 512, 512]"


class ConfigError(ValueError):
    """A configuration value outside its allowed range; the message names the field."""


# Scalar agent settings a pack stores per member (as tensors), so members may differ in them:
# they change no tensor shape and no code path (fino.algo.packing).
PACKABLE = ("noise_scale", "alpha", "discount", "tau", "beta_init", "beta_lr",
            "entropy_target", "action_noise_std")


class PackError(ConfigError):
    """Members that cannot share a pack; the message names the differing setting."""


def default_num_candidates(action_dim: int) -> int:
    """The spec's K = min(10, ceil(d / 2))."""
    return min(10, math.ceil(action_dim / 2))


@dataclass(frozen=True)
class AgentConfig:
    """FINO's hyperparameters. `noise_scale=0, num_candidates=1` is FQL.

    `num_candidates` and `entropy_target` default to None, meaning the spec's defaults for the
    action dimension d: K = min(10, ceil(d/2)) and H̄ = -d (see `resolved`).
    """

    actor_hidden_dims: tuple[int, ...] = (512, 512, 512, 512)
    value_hidden_dims: tuple[int, ...] = (512, 512, 512, 512)
    actor_layer_norm: bool = False
    value_layer_norm: bool = True
    lr: float = 3e-4
    batch_size: int = 256
    discount: float = 0.99
    tau: float = 0.005
    q_agg: QAgg = "mean"
    alpha: float = 10.0
    flow_steps: int = 10
    normalize_q_loss: bool = False
    noise_scale: float = 0.1
    noise_schedule: NoiseSchedule = "exp"
    num_candidates: int | None = None
    beta_init: float = 10.0
    beta_lr: float = 0.1
    entropy_target: float | None = None
    entropy_samples: int = 200
    entropy_states: int = 256
    gmm_components: int = 3
    entropy_estimator: EntropyEstimator = "batched"
    exploration: Exploration = "entropy_guided"
    action_noise_std: float = 0.1

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise ConfigError(f"agent.{name}={value!r}: must be one of {choices}")
        for name in ("actor_hidden_dims", "value_hidden_dims"):
            object.__setattr__(self, name, _hidden_dims(name, getattr(self, name)))
        _check(self, "lr", 0.0, None, open_low=True)
        _check(self, "batch_size", 1, None, integer=True)
        _check(self, "discount", 0.0, 1.0)
        _check(self, "tau", 0.0, 1.0, open_low=True)
        _check(self, "alpha", 0.0, None)
        _check(self, "flow_steps", 1, None, integer=True)
        _check(self, "noise_scale", 0.0, 1.0)
        _check(self, "beta_init", 0.0, None)
        _check(self, "beta_lr", 0.0, None)
        _check(self, "entropy_samples", 2, None, integer=True)
        _check(self, "entropy_states", 1, None, integer=True)
        _check(self, "gmm_components", 1, None, integer=True)
        _check(self, "action_noise_std", 0.0, None)
        if self.num_candidates is not None:
            _check(self, "num_candidates", 1, None, integer=True)
        for name in ("actor_layer_norm", "value_layer_norm", "normalize_q_loss"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"agent.{name}={getattr(self, name)!r}: must be true or false")
        if self.gmm_components > self.entropy_samples:
            raise ConfigError(
                f"agent.gmm_components={self.gmm_components}: must be <= entropy_samples="
                f"{self.entropy_samples}"
            )
        if self.entropy_target is not None:
            _check(self, "entropy_target", None, None)

    def resolved(self, action_dim: int) -> AgentConfig:
        """This config with the action-dimension defaults (K, H̄) filled in."""
        k = self.num_candidates
        k = default_num_candidates(action_dim) if k is None else k
        h = -float(action_dim) if self.entropy_target is None else self.entropy_target
        return replace_fields(self, num_candidates=k, entropy_target=h)

    @property
    def is_fql(self) -> bool:
        """True when this config is plain FQL (no injected noise, one candidate)."""
        return (self.noise_scale == 0.0 or self.noise_schedule == "none") and (
            self.num_candidates == 1
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        """Build from a mapping (preset, JSON); unknown keys are an error that lists the known."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown agent setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def _hidden_dims(name: str, value: Any) -> tuple[int, ...]:
    """Layer widths as a tuple; a ConfigError naming the setting and an example otherwise."""
    if (not isinstance(value, list | tuple) or not value
            or any(isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_INT
                   for h in value)):
        raise ConfigError(f"agent.{name}: expected a list of positive integers like "
                          f"{HIDDEN_DIMS_EXAMPLE}, got {value!r}")
    return tuple(value)


def replace_fields(config: AgentConfig, **changes: Any) -> AgentConfig:
    """`dataclasses.replace` that re-runs validation (it does, via __post_init__)."""
    return AgentConfig(**{**asdict(config), **changes})


def _check(
    config: AgentConfig,
    name: str,
    low: float | None,
    high: float | None,
    *,
    open_low: bool = False,
    integer: bool = False,
) -> None:
    value = getattr(config, name)
    kind = int if integer else int | float
    if integer and high is None:
        high = MAX_INT
    if isinstance(value, bool) or not isinstance(value, kind) or not _finite(value):
        what = "integer" if integer else "number"
        raise ConfigError(f"agent.{name}={value!r}: must be a finite {what}")
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        bracket = "(" if open_low else "["
        raise ConfigError(f"agent.{name}={value!r}: must be in {bracket}{lo}, {hi}]")
