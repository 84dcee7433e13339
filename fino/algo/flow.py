"""Noise-injected flow matching (spec §1) and the Euler sampler of the BC flow."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fino.algo.config import NoiseSchedule


def exp_noise_std(t: Tensor, noise_scale: float | Tensor) -> Tensor:
    """Reference schedule σ(t) = η · exp(10 (t − 1))."""
    return noise_scale * torch.exp(10.0 * (t - 1.0))


def paper_added_variance(t: Tensor, noise_scale: float | Tensor) -> Tensor:
    """Paper form: variance added to plain flow matching's path, α_t² = 2ηt + (η² − 2η)t²."""
    eta = noise_scale
    return 2.0 * eta * t + (eta * eta - 2.0 * eta) * t * t


def flow_matching_pair(
    x0: Tensor,
    x1: Tensor,
    t: Tensor,
    eps: Tensor,
    noise_scale: float | Tensor,
    schedule: NoiseSchedule,
) -> tuple[Tensor, Tensor]:
    """The velocity net's training input x̃_t and regression target for one draw (x0, t, ε).

    - `exp` (reference): x̃_t = (1 − t) x0 + t x1 + σ(t) ε, target x1 − x0.
    - `paper`: the path N(t x1, (1 − (1 − η) t)² I), i.e. x̃_t = t x1 + (1 − (1 − η) t) x0,
      target x1 − (1 − η) x0 (the path's exact velocity; ε is unused).
    - `none`, or η = 0 in either form: plain flow matching, to the last bit (σ = 0 adds an
      exact zero; 1 − η = 1 multiplies exactly).

    `noise_scale` may be a tensor broadcasting against x0 (one η per pack member).
    """
    if schedule == "none":
        return (1.0 - t) * x0 + t * x1, x1 - x0
    if schedule == "exp":
        x_t = (1.0 - t) * x0 + t * x1 + exp_noise_std(t, noise_scale) * eps
        return x_t, x1 - x0
    if schedule == "paper":
        keep = 1.0 - noise_scale
        return (1.0 - keep * t) * x0 + t * x1, x1 - keep * x0
    raise ValueError(f"noise_schedule={schedule!r}: must be 'exp', 'paper' or 'none'")


def euler_sample(
    velocity: Callable[[Tensor, Tensor, Tensor], Tensor],
    obs: Tensor,
    z: Tensor,
    steps: int,
) -> Tensor:
    """Integrate x ← x + v(s, x, i/steps)/steps from x = z, then clip to [-1, 1]."""
    x = z
    for i in range(steps):
        t = torch.full((*z.shape[:-1], 1), i / steps, dtype=z.dtype, device=z.device)
        x = x + velocity(obs, x, t) / steps
    return x.clamp(-1.0, 1.0)

