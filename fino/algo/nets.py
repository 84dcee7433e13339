"""The networks of FQL/FINO for a pack of members: every weight has a leading member axis.

A pack of P members is P independent agents whose matmuls run as one batched product
(`baddbmm`), so a GPU pays the kernel launches of one agent for all of them. Layers follow the
reference (flax): Dense → GELU(tanh) [→ LayerNorm] per hidden layer, Glorot-uniform kernels,
zero biases. Inputs and outputs carry the member axis first: (P, *batch, features).
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


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int,
                   generator: torch.Generator | None) -> Tensor:
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return torch.empty(shape).uniform_(-limit, limit, generator=generator)


class PackedMLP(nn.Module):
    """L independent MLPs ("lanes") as one batched computation: (L, N, in) → (L, N, out).

    Lane l is initialised from `generators[l // lanes_per_generator]`; with
    `transposed_init` each kernel is drawn as (out, in), the layout of torch's `nn.Linear`.
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, *,
                 generators: Sequence[torch.Generator | None], lanes_per_generator: int = 1,
                 layer_norm: bool = False, transposed_init: bool = True) -> None:
        super().__init__()
        self.lanes = len(generators) * lanes_per_generator
        self.layer_norm = layer_norm
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.ln_weights = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        dims = [in_dim, *hidden_dims, out_dim]
        per_member: list[list[Tensor]] = [[] for _ in generators]
        for member, g in enumerate(generators):  # each member draws its layers in order
            for fan_in, fan_out in itertools.pairwise(dims):
                if transposed_init:
                    w = glorot_uniform((lanes_per_generator, fan_out, fan_in), fan_in, fan_out,
                                       g).transpose(1, 2)
                else:
                    w = glorot_uniform((lanes_per_generator, fan_in, fan_out), fan_in, fan_out,
                                       g)
                per_member[member].append(w)
        for i, (_, fan_out) in enumerate(itertools.pairwise(dims)):
            stacked = torch.cat([layers[i] for layers in per_member]).contiguous()
            self.weights.append(nn.Parameter(stacked))
            self.biases.append(nn.Parameter(torch.zeros(self.lanes, 1, fan_out)))
        if layer_norm:
            for h in hidden_dims:
                self.ln_weights.append(nn.Parameter(torch.ones(self.lanes, 1, h)))
                self.ln_biases.append(nn.Parameter(torch.zeros(self.lanes, 1, h)))

    def forward(self, x: Tensor, *, detach_params: bool = False) -> Tensor:
        """x (L, N, in) → (L, N, out). `detach_params`: gradients reach x, not the weights."""

        def p(t: Tensor) -> Tensor:
            return t.detach() if detach_params else t

        if self.lanes == 1:  # one lane: plain matmuls (a batched product of one is slower)
            def dense(x: Tensor, i: int) -> Tensor:
                return torch.addmm(p(self.biases[i])[0], x[0], p(self.weights[i])[0])[None]
        else:
            def dense(x: Tensor, i: int) -> Tensor:
                return torch.baddbmm(p(self.biases[i]), x, p(self.weights[i]))

        n_hidden = len(self.weights) - 1
        for i in range(n_hidden):
            x = gelu_tanh(dense(x, i))
            if self.layer_norm:
                x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
                x = torch.addcmul(p(self.ln_biases[i]), x, p(self.ln_weights[i]))
        return dense(x, n_hidden)


def _flat(x: Tensor) -> Tensor:
    """(P, *batch, f) → (P, N, f)."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


class VelocityField(nn.Module):
    """v_θ(s, x, t) of each member: the BC flow's velocity field."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], *,
                 generators: Sequence[torch.Generator | None], layer_norm: bool = False) -> None:
        super().__init__()
        self.mlp = PackedMLP(obs_dim + action_dim + 1, hidden_dims, action_dim,
                             generators=generators, layer_norm=layer_norm)

    def forward(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        inputs = torch.cat([obs, x, t], dim=-1)
        return self.mlp(_flat(inputs)).reshape(*x.shape)


class OneStepPolicy(nn.Module):
    """μ_ω(s, z) of each member: maps noise to an action in one network pass (unclipped)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], *,
                 generators: Sequence[torch.Generator | None], layer_norm: bool = False) -> None:
        super().__init__()
        self.mlp = PackedMLP(obs_dim + action_dim, hidden_dims, action_dim,
                             generators=generators, layer_norm=layer_norm)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.mlp(_flat(torch.cat([obs, z], dim=-1))).reshape(*z.shape)


class EnsembleCritic(nn.Module):
    """Q_φ1..Q_φE(s, a) of each member: (P, *batch) inputs → (P, E, *batch) values, all
    P × E networks in one batched computation."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], *,
                 generators: Sequence[torch.Generator | None], ensemble_size: int = 2,
                 layer_norm: bool = True) -> None:
        super().__init__()
        self.members = len(generators)
        self.ensemble_size = ensemble_size
        self.mlp = PackedMLP(obs_dim + action_dim, hidden_dims, 1, generators=generators,
                             lanes_per_generator=ensemble_size, layer_norm=layer_norm,
                             transposed_init=False)

    def forward(self, obs: Tensor, actions: Tensor, *, detach_params: bool = False) -> Tensor:
        """Q-values (P, E, *batch). `detach_params`: gradients reach the inputs, not φ."""
        x = _flat(torch.cat([obs, actions], dim=-1))
        p, n, f = x.shape
        e = self.ensemble_size
        x = x.unsqueeze(1).expand(p, e, n, f).reshape(p * e, n, f)
        q = self.mlp(x, detach_params=detach_params)
        return q.reshape(p, e, *obs.shape[1:-1])
