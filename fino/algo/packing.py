"""Which agent configurations can share a pack, and their per-member settings as tensors.

A pack trains N members of one configuration as one set of batched weights. Members may differ
in seed and in the scalar settings below, which change no tensor shape and no code path; every
other setting (network sizes, K, the noise schedule, q aggregation, lr, …) is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fino.algo.config import AgentConfig, ConfigError

# Scalar settings stored per member (as tensors), so members may differ in them.
PACKABLE = ("noise_scale", "alpha", "discount", "tau", "beta_init", "beta_lr",
            "entropy_target", "action_noise_std")


class PackError(ConfigError):
    """Members that cannot share a pack; the message names the differing setting."""


def shared_config(configs: Sequence[AgentConfig]) -> AgentConfig:
    """The configuration the members share (the first one's); an error names the first
    non-packable setting in which any member differs."""
    if not configs:
        raise PackError("a pack needs at least one member")
    first = configs[0].to_dict()
    for index, config in enumerate(configs[1:], start=1):
        other = config.to_dict()
        for key, value in first.items():
            if key not in PACKABLE and other[key] != value:
                raise PackError(
                    f"pack member {index} differs from member 0 in {key!r} ({other[key]!r} != "
                    f"{value!r}); members may differ only in the seed and {list(PACKABLE)}")
    return configs[0]


@dataclass(frozen=True)
class MemberSettings:
    """Each packable setting as a float32 tensor of shape (P,) on the pack's device."""

    noise_scale: Tensor
    alpha: Tensor
    discount: Tensor
    tau: Tensor
    beta_init: Tensor
    beta_lr: Tensor
    entropy_target: Tensor
    action_noise_std: Tensor

    @classmethod
    def of(cls, configs: Sequence[AgentConfig], device: torch.device) -> MemberSettings:
        """From resolved configs (entropy_target filled in)."""
        return cls(**{key: torch.tensor([float(getattr(c, key)) for c in configs],
                                        device=device) for key in PACKABLE})
