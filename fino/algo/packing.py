"""Which agent configurations can share a pack, and their per-member settings as tensors.

A pack trains N members of one configuration as one set of batched weights. Members may differ
in seed and in the scalar settings below, which change no tensor shape and no code path; every
other setting (network sizes, K, the noise schedule, q aggregation, lr, …) is shared.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fino.algo.config import PACKABLE, AgentConfig, PackError

__all__ = ["PACKABLE", "MemberSettings", "PackError", "PackTooLarge", "check_pack_fits",
           "estimate_pack_bytes", "shared_config"]


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


def _mlp_params(dims: Sequence[int], layer_norm: bool) -> int:
    weights = sum(a * b + b for a, b in itertools.pairwise(dims))
    return weights + (2 * sum(dims[1:-1]) if layer_norm else 0)


# Saved activations per member and update, in batch rows × hidden units: fitted to the measured
# device memory of the update at the paper size (32 members 2.5 GiB, 128 members 9.7 GiB on an
# H200, design/performance.md), i.e. ~76 MiB per member of which ~60 MiB are the parameters,
# their gradients, Adam's moments and the target critic.
_ACTIVATION_LAYERS = 8


def estimate_pack_bytes(obs_dim: int, action_dim: int, config: AgentConfig, members: int) -> int:
    """About how many bytes a pack's update holds: parameters, gradients, Adam's two moments,
    the target critic, and the update's saved activations."""
    actor = _mlp_params([obs_dim + action_dim + 1, *config.actor_hidden_dims, action_dim],
                        config.actor_layer_norm)
    actor += _mlp_params([obs_dim + action_dim, *config.actor_hidden_dims, action_dim],
                         config.actor_layer_norm)
    critic = 2 * _mlp_params([obs_dim + action_dim, *config.value_hidden_dims, 1],
                             config.value_layer_norm)
    state = 4 * (actor + critic) + critic  # param, grad, 2 moments; the target critic
    hidden = sum(config.actor_hidden_dims) + sum(config.value_hidden_dims)
    activations = _ACTIVATION_LAYERS * config.batch_size * hidden
    return 4 * members * (state + activations)


class PackTooLarge(MemoryError):
    """A pack whose estimated memory exceeds what is free; the message gives both."""


def check_pack_fits(estimate: int, device: torch.device, members: int) -> None:
    """Refuse, before allocating anything, a pack whose estimate exceeds the free memory."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        where = f"free memory of {device}"
    else:
        free = _available_ram()
        where = "available RAM"
        if free is None:
            return
    if estimate > free:
        raise PackTooLarge(
            f"a pack of {members} members needs about {estimate / 2**30:.1f} GiB (parameters, "
            f"gradients, Adam's moments, target critic, activations) but the {where} is "
            f"{free / 2**30:.1f} GiB: use fewer members per pack (about "
            f"{max(1, int(members * free / estimate))}) or smaller networks")


def _available_ram() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
