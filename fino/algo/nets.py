"""The networks of FQL/FINO: MLP velocity field, one-step policy, batched critic ensemble.

Layers follow the reference (flax): Dense → GELU(tanh) [→ LayerNorm] per hidden layer,
Glorot-uniform kernels, zero biases.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_GELU_SCALE = 2.0 * math.sqrt(2.0 / math.pi)
_SMALL = 16384


def gelu_tanh(x: Tensor) -> Tensor:
    """The tanh-approximate GELU (flax's default), 0.5 x (1 + tanh(u)).

    Large inputs take the same function written as x σ(2u) (tanh(u) = 2σ(2u) − 1): torch's
    vectorised tanh is about 2.5x slower than its exp on AVX-512 CPUs, and GELU is most of an
    update's elementwise time. Small inputs (acting) take the single fused op, where per-op
    overhead dominates.
    """
    if x.numel() <= _SMALL and not torch.compiler.is_compiling():
        return F.gelu(x, approximate="tanh")
    return x * torch.sigmoid(_GELU_SCALE * (x + 0.044715 * x * x * x))


class GELUTanh(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return gelu_tanh(x)


def _glorot_(weight: Tensor, fan_in: int, fan_out: int, generator: torch.Generator | None) -> None:
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        weight.uniform_(-limit, limit, generator=generator)


class MLP(nn.Module):
    """Dense → GELU [→ LayerNorm] for each hidden layer, then a linear output."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        *,
        layer_norm: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dims = [in_dim, *hidden_dims]
        for fan_in, fan_out in itertools.pairwise(dims):
            layers += [_dense(fan_in, fan_out, generator), GELUTanh()]
            if layer_norm:
                layers.append(nn.LayerNorm(fan_out, eps=1e-6))
        layers.append(_dense(dims[-1], out_dim, generator))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _dense(fan_in: int, fan_out: int, generator: torch.Generator | None) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out)
    _glorot_(layer.weight, fan_in, fan_out, generator)
    nn.init.zeros_(layer.bias)
    return layer


class VelocityField(nn.Module):
    """v_θ(s, x, t): the BC flow's velocity field."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], *,
                 layer_norm: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.mlp = MLP(obs_dim + action_dim + 1, hidden_dims, action_dim,
                       layer_norm=layer_norm, generator=generator)

    def forward(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        return self.mlp(torch.cat([obs, x, t], dim=-1))


class OneStepPolicy(nn.Module):
    """μ_ω(s, z): maps noise to an action in one network pass (unclipped)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], *,
                 layer_norm: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.mlp = MLP(obs_dim + action_dim, hidden_dims, action_dim,
                       layer_norm=layer_norm, generator=generator)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.mlp(torch.cat([obs, z], dim=-1))


class EnsembleCritic(nn.Module):
    """Q_φ1..Q_φE(s, a) evaluated as one batched computation; returns shape (E, *batch)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], *,
                 ensemble_size: int = 2, layer_norm: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.ensemble_size = ensemble_size
        self.layer_norm = layer_norm
        dims = [obs_dim + action_dim, *hidden_dims, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(dims):
            w = torch.empty(ensemble_size, fan_in, fan_out)
            _glorot_(w, fan_in, fan_out, generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(ensemble_size, 1, fan_out)))
        self.ln_weights = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        if layer_norm:
            for h in hidden_dims:
                self.ln_weights.append(nn.Parameter(torch.ones(ensemble_size, 1, h)))
                self.ln_biases.append(nn.Parameter(torch.zeros(ensemble_size, 1, h)))

    def forward(self, obs: Tensor, actions: Tensor, *, detach_params: bool = False) -> Tensor:
        """Q-values (E, *batch). `detach_params`: gradients reach the inputs, not φ."""
        x = torch.cat([obs, actions], dim=-1)
        batch_shape = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.ensemble_size, -1, -1)

        def p(t: Tensor) -> Tensor:
            return t.detach() if detach_params else t

        n_hidden = len(self.weights) - 1
        for i in range(n_hidden):
            x = gelu_tanh(torch.baddbmm(p(self.biases[i]), x, p(self.weights[i])))
            if self.layer_norm:
                x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
                x = torch.addcmul(p(self.ln_biases[i]), x, p(self.ln_weights[i]))
        q = torch.baddbmm(p(self.biases[-1]), x, p(self.weights[-1]))
        return q.reshape(self.ensemble_size, *batch_shape)
