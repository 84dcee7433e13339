"""The FINO agent (design/algorithm.md), read top to bottom like the spec.

§1 noise-injected BC flow · §2 one-step policy (distillation + Q) · §3 critic ·
§4 entropy-guided sampling among K candidates and the β controller.
With `noise_scale=0` and `num_candidates=1` this is FQL.

The maths is written once, for a *pack*: N members of one configuration whose weights carry a
leading member axis (fino/algo/nets.py), so that one batched update trains N seeds for the
kernel launches of one. `FinoAgent`, a single agent, is a pack of one member. Tensors carry the
member axis first: a batch is (P, B, …). Each loss returns `(loss, info)`, its metrics named
where they are made; the update stacks them into one (P, len(info_keys)) tensor that stays on
the device until a log step reads it.

Loss reductions follow the reference: the BC-flow and distillation losses are means over batch
and action dimensions (the per-task α values assume it); the critic loss is the mean over the
ensemble and the batch, E_k E_b (Q_φk − y)² (the reference's `critic_loss`). Members' losses
are summed into one scalar: a member's parameters reach only its own loss, so the gradient each
member receives is its own loss's gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from fino.algo.config import AgentConfig
from fino.algo.flow import euler_sample, exp_noise_std, flow_matching_pair, paper_added_variance
from fino.algo.gmm import gmm_entropy_batched, gmm_entropy_sklearn
from fino.algo.nets import EnsembleCritic, OneStepPolicy, VelocityField
from fino.algo.packing import (
    MemberSettings,
    check_pack_fits,
    estimate_pack_bytes,
    shared_config,
)

# fp32 everywhere, or bf16 matmuls in the update's forward and backward passes (autocast; fp32
# weights, optimiser and losses): about 2x the matmul throughput on CPUs with AVX512-BF16/AMX.
Precision = Literal["fp32", "bf16"]

# Candidate rows per network pass when sampling many actions (entropy estimate): big enough for
# efficient matmuls, small enough that activations stay in cache (8192 rows ran ~2x slower).
_SAMPLE_ROWS = 1536


@dataclass(frozen=True)
class Batch:
    """A training batch of transitions; `terminated` is 1.0 where the episode truly ended."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    terminated: Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in self.__dict__.values()))


    @classmethod
    def stack(cls, batches: Sequence[Batch]) -> Batch:
        """One batch per pack member → a packed batch (P, B, …)."""
        return cls(*(torch.stack(ts) for ts in zip(*(b.__dict__.values() for b in batches),
                                                       strict=True)))

    def member(self, index: int) -> Batch:
        """Member `index`'s batch out of a packed one."""
        return Batch(*(t[index] for t in self.__dict__.values()))


@dataclass(frozen=True)
class ActNoise:
    """The random draws of acting for observations (P, G, n): candidate noise z (P, G, n, K, d),
    selection uniforms u (P, G, n, K), action noise (P, G, n, d); u and noise only in the modes
    that use them."""

    z: Tensor
    u: Tensor | None
    noise: Tensor | None


@dataclass(frozen=True)
class UpdateNoise:
    """All random draws of one update, so the losses are pure functions of (batch, noise)."""

    x0: Tensor  # flow-matching source sample, (P, B, d)
    t: Tensor  # flow time, (P, B, 1)
    eps: Tensor  # injected noise ε
    z: Tensor  # one-step policy noise for distillation and the Q term
    z_next: Tensor  # one-step policy noise for the critic target's next action


class NonFiniteLoss(FloatingPointError):
    """Members whose losses became non-finite: `first_update` maps member → the update at which
    it happened first (counted from this agent's creation or checkpoint)."""

    def __init__(self, first_update: dict[int, int], message: str) -> None:
        super().__init__(message)
        self.first_update = first_update


def aggregate_q(qs: Tensor, how: str) -> Tensor:
    """Aggregate over the ensemble axis 1 of (P, E, …): mean or min."""
    return qs.min(dim=1).values if how == "min" else qs.mean(dim=1)


def selection_logits(q: Tensor, beta: Tensor | float) -> Tensor:
    """Entropy-guided sampling logits β · q_i / mean|q| for q of shape (P, G, n, K): the mean
    runs over all states and candidates of one call (the reference's `jnp.abs(q).mean()`), per
    member and group; β is one per member, (P,)."""
    scale = q.abs().mean(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    if isinstance(beta, Tensor):
        beta = beta.view(-1, *([1] * (q.dim() - 1)))
    return beta * q / scale


def _per_member(x: Tensor, like: Tensor) -> Tensor:
    """A (P,) tensor shaped to broadcast against `like` (P, …)."""
    return x.view(-1, *([1] * (like.dim() - 1)))


class AgentPack:
    """N members of one FINO configuration trained as one: BC flow with injected noise, one-step
    policy, critic ensemble, K-candidate acting, entropy and β, all with a leading member axis.

    Members differ in seed (initialisation, update draws, acting draws) and may differ in the
    scalar settings of `fino.algo.packing.PACKABLE`; member i with seed s is exactly the
    single agent `FinoAgent(config_i, seed=s)`, whatever else shares its pack.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        configs: AgentConfig | Sequence[AgentConfig] | None = None,
        *,
        seeds: Sequence[int] = (0,),
        device: str | torch.device = "cpu",
        compile: bool = False,
        precision: Precision = "fp32",
        cuda_graphs: bool = True,
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={precision!r}: must be 'fp32' or 'bf16'")
        seeds = list(seeds)
        if not seeds:
            raise ValueError("a pack needs at least one member (seed)")
        if configs is None or isinstance(configs, AgentConfig):
            configs = [configs or AgentConfig()] * len(seeds)
        if len(configs) != len(seeds):
            raise ValueError(f"{len(configs)} configs for {len(seeds)} seeds")
        self.device = _checked_device(device)
        check_pack_fits(estimate_pack_bytes(obs_dim, action_dim, configs[0], len(seeds)),
                        self.device, len(seeds))
        self.configs = [c.resolved(action_dim) for c in configs]
        self.config = shared_config(self.configs)
        self.size, self.seeds = len(seeds), seeds
        self.precision = precision
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.settings = MemberSettings.of(self.configs, self.device)
        cfg = self.config
        inits = [torch.Generator().manual_seed(s) for s in seeds]
        self.bc_flow = VelocityField(obs_dim, action_dim, cfg.actor_hidden_dims,
                                     generators=inits, layer_norm=cfg.actor_layer_norm)
        self.onestep = OneStepPolicy(obs_dim, action_dim, cfg.actor_hidden_dims,
                                     generators=inits, layer_norm=cfg.actor_layer_norm)
        self.critic = EnsembleCritic(obs_dim, action_dim, cfg.value_hidden_dims,
                                     generators=inits, layer_norm=cfg.value_layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        for net in (self.bc_flow, self.onestep, self.critic, self.target_critic):
            net.to(self.device)
        params = [*self.bc_flow.parameters(), *self.onestep.parameters(),
                  *self.critic.parameters()]
        # Adam is elementwise: one fused Adam over the stacked tensors is N independent Adams.
        graphs = cuda_graphs and self.device.type == "cuda"
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True, capturable=graphs)
        self.beta = self.settings.beta_init.clone()
        self.generators = [torch.Generator(self.device).manual_seed(s + 1) for s in seeds]
        self.num_updates = 0
        # Device-side divergence watch, read only when asked (`check_finite`): no host sync in
        # the update. `first_nonfinite[i]` is the update at which member i first went non-finite.
        self._update_count = torch.zeros((), dtype=torch.long, device=self.device)
        self.first_nonfinite = torch.full((self.size,), -1, dtype=torch.long, device=self.device)
        self._losses = torch.compile(self.losses, dynamic=False) if compile else self.losses
        # The names of the update's metrics columns, in the order of the losses' info dicts
        # (fixed at the first update: a captured CUDA graph's output has a fixed layout).
        self.info_keys: tuple[str, ...] = ()
        # Acting (~25% faster compiled: fewer per-op overheads) and the entropy sampler's fixed-
        # shape chunks (~1.7x from fusion) share one compiled selection, a graph per shape/mode.
        self._select_fn = torch.compile(self.select, dynamic=False) if compile else self.select
        self._online = [p.detach() for p in self.critic.parameters()]
        self._target = list(self.target_critic.parameters())
        lanes = self.critic.ensemble_size
        self._tau = [self.settings.tau.repeat_interleave(lanes).view(-1, *[1] * (p.dim() - 1))
                     for p in self._target]
        self._graph: Any = None  # the captured update (fino.algo.graphs), built on first use
        self._use_graphs = graphs

    # ---- §1-§3: one update --------------------------------------------------------------------

    def draw_update_noise(self, batch_size: int) -> UpdateNoise:
        """Each member's draws from its own stream: (P, B, …)."""
        d, dev = self.action_dim, self.device
        normals, times = [], []
        for g in self.generators:
            normals.append(torch.randn(4, batch_size, d, generator=g, device=dev))
            times.append(torch.rand(batch_size, 1, generator=g, device=dev))
        n = torch.stack(normals, dim=1)
        return UpdateNoise(x0=n[0], t=torch.stack(times), eps=n[1], z=n[2], z_next=n[3])

    def critic_loss(self, batch: Batch, noise: UpdateNoise) -> tuple[Tensor, dict[str, Tensor]]:
        """§3 L_Q per member (P,) and its metrics: y = r + γ (1 − terminated) agg_k Q̄_k(s', a'),
        a' = clip(μ(s', z'))."""
        with torch.no_grad():
            next_actions = self.onestep(batch.next_observations, noise.z_next).clamp(-1.0, 1.0)
            next_q = aggregate_q(self.target_critic(batch.next_observations, next_actions),
                                 self.config.q_agg)
            discount = _per_member(self.settings.discount, next_q)
            target_q = batch.rewards + discount * (1.0 - batch.terminated) * next_q
        qs = self.critic(batch.observations, batch.actions)  # (P, E, B)
        loss = (qs - target_q.unsqueeze(1)).square().mean(dim=(1, 2))
        with torch.no_grad():
            info = {
                "critic/loss": loss.detach(),
                "critic/q_mean": qs.mean((1, 2)),
                "critic/q_max": qs.amax((1, 2)),
                "critic/q_min": qs.amin((1, 2)),
                "critic/target_q_mean": target_q.mean(1),
            }
        return loss, info

    def actor_loss(self, batch: Batch, noise: UpdateNoise) -> tuple[Tensor, dict[str, Tensor]]:
        """§1 + §2 L_BC + L_π per member (P,) and its metrics: the BC flow with injected noise,
        and α · distillation of the Euler-integrated flow into the one-step policy − Q."""
        cfg, h = self.config, self.settings
        obs, actions = batch.observations, batch.actions
        x_t, velocity_target = flow_matching_pair(
            noise.x0, actions, noise.t, noise.eps, _per_member(h.noise_scale, actions),
            cfg.noise_schedule)
        bc_flow_loss = (self.bc_flow(obs, x_t, noise.t) - velocity_target).square().mean((1, 2))

        with torch.no_grad():
            flow_actions = euler_sample(self.bc_flow, obs, noise.z, cfg.flow_steps)
        actor_actions = self.onestep(obs, noise.z)
        distill_loss = (actor_actions - flow_actions).square().mean(dim=(1, 2))
        clipped = actor_actions.clamp(-1.0, 1.0)
        q_pi = self.critic(obs, clipped, detach_params=True).mean(dim=1)  # (P, B)
        q_loss = -q_pi.mean(dim=1)
        if cfg.normalize_q_loss:
            q_loss = q_loss / q_pi.abs().mean(dim=1).detach()
        loss = bc_flow_loss + h.alpha * distill_loss + q_loss
        with torch.no_grad():
            info = {
                "actor/loss": loss.detach(),
                "actor/bc_flow_loss": bc_flow_loss.detach(),
                "actor/distill_loss": distill_loss.detach(),
                "actor/q_loss": q_loss.detach(),
                "actor/q": q_pi.mean(1),
                "actor/mse": (clipped - actions).square().mean((1, 2)),
                "actor/noise_scale": h.noise_scale,
                "actor/injected_noise_std": self._injected_noise_std(noise.t),
            }
        return loss, info

    def losses(self, batch: Batch, noise: UpdateNoise) -> tuple[Tensor, dict[str, Tensor]]:
        """The members' summed L_Q + L_BC + L_π and their named metrics, each of shape (P,)."""
        critic_loss, critic_info = self.critic_loss(batch, noise)
        actor_loss, actor_info = self.actor_loss(batch, noise)
        return (critic_loss + actor_loss).sum(), {**critic_info, **actor_info}

    @torch.no_grad()
    def stack_info(self, info: dict[str, Tensor]) -> Tensor:
        """The losses' named (P,) metrics as one (P, len(info_keys)) float32 tensor."""
        if not self.info_keys:
            self.info_keys = tuple(info)
        return torch.stack([info[key].float() for key in self.info_keys], dim=1)

    def _injected_noise_std(self, t: Tensor) -> Tensor:
        """Mean σ(t) over the batch, per member (P,)."""
        cfg, eta = self.config, _per_member(self.settings.noise_scale, t)
        if cfg.noise_schedule == "exp":
            return exp_noise_std(t, eta).mean((1, 2))
        if cfg.noise_schedule == "paper":
            return paper_added_variance(t, eta).clamp_min(0).sqrt().mean((1, 2))
        return torch.zeros(t.shape[0], device=t.device)

    def update(self, batch: Batch, noise: UpdateNoise | None = None) -> Tensor:
        """One Adam step on every member's L_Q + L_BC + L_π and the soft target update.

        Returns the metrics (P, len(info_keys)) on the device without reading them (no host
        sync); under CUDA graphs the tensor is overwritten by the next update, so read or copy
        it before then. Non-finite losses are recorded on the device: `check_finite` reads them.
        """
        batch = batch.to(self.device)
        noise = noise if noise is not None else self.draw_update_noise(batch.actions.shape[1])
        if self._use_graphs:
            if self._graph is None:
                from fino.algo.graphs import GraphedUpdate

                self._graph = GraphedUpdate(self, batch, noise)
            self.num_updates += 1
            return self._graph(batch, noise)
        return self.step(batch, noise)

    def step(self, batch: Batch, noise: UpdateNoise) -> Tensor:
        """The update itself on device tensors (what a CUDA graph captures)."""
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            loss, info = self._losses(batch, noise)
        metrics = self.stack_info(info)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # The target moves toward the critic as it was before this step (the reference's
        # `target_update` reads the pre-update parameters).
        with torch.no_grad():
            torch._foreach_lerp_(self._target, self._online, self._tau)
        self.optimizer.step()
        with torch.no_grad():
            bad = ~torch.isfinite(metrics).all(dim=1)
            first = torch.where(bad & (self.first_nonfinite < 0), self._update_count,
                                self.first_nonfinite)
            self.first_nonfinite.copy_(first)
            self._update_count.add_(1)
        self.num_updates += 1
        return metrics

    def nonfinite_members(self) -> dict[int, int]:
        """Member → the update (0-based, since creation or load) at which its losses first
        became non-finite; empty while every member is finite. Reads the device (a sync)."""
        first = self.first_nonfinite.tolist()
        return {i: u for i, u in enumerate(first) if u >= 0}

    def check_finite(self, metrics: Tensor | None = None) -> None:
        """Raise `NonFiniteLoss` naming each diverged member, its first bad update and (given
        the latest metrics) their values."""
        bad = self.nonfinite_members()
        if not bad:
            return
        parts = []
        for member, first in bad.items():
            text = f"member {member} (seed {self.seeds[member]}) first at update {first}"
            if metrics is not None:
                values = self.infos(metrics)[member]
                text += ": " + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            parts.append(text)
        raise NonFiniteLoss(bad, "non-finite loss: " + "; ".join(parts))

    def infos(self, metrics: Tensor) -> list[dict[str, float]]:
        """The metrics of an update as one dict per member (reads the device)."""
        return [dict(zip(self.info_keys, row, strict=True)) for row in metrics.tolist()]

    # ---- §1 sampling the BC flow ---------------------------------------------------------------

    @torch.inference_mode()
    def sample_flow(self, obs: Tensor, z: Tensor) -> Tensor:
        """The 10-step Euler BC flow from noise z (clipped to [-1, 1]); (P, …) inputs."""
        return euler_sample(self.bc_flow, obs, z, self.config.flow_steps)

    # ---- §4 acting ----------------------------------------------------------------------------

    @torch.inference_mode()
    def act(self, obs: Tensor, greedy: bool = False,
            generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """Actions (P, n, d) for observations (P, n, obs_dim), member i acting on obs[i]:
        greedy (evaluation) or by the `exploration` rule (see `select`; `none` is one plain
        one-step sample, as FQL acts). Member i draws from `generators[i]` when given
        (evaluation passes its own, so evaluating never moves the training stream), else from
        its training stream."""
        obs = obs.to(self.device, torch.float32).reshape(self.size, 1, -1, self.obs_dim)
        mode = "greedy" if greedy else self.config.exploration
        draws = self.draw_act_noise(obs.shape[1:3], mode, generators)
        return self._select_fn(obs, draws, self.beta, mode)[:, 0]

    def draw_act_noise(self, shape: tuple[int, int] | torch.Size, mode: str,
                       generators: Sequence[torch.Generator] | None = None) -> ActNoise:
        """Each member's draws of acting for (G, n) observations in `mode`."""
        k = 1 if mode == "none" else self.config.num_candidates  # K iid candidates, one kept
        dev, d = self.device, self.action_dim
        z, u, noise = [], [], []
        for g in generators or self.generators:
            z.append(torch.randn(*shape, k, d, generator=g, device=dev))
            if mode == "entropy_guided":
                u.append(torch.rand(*shape, k, generator=g, device=dev))
            if mode == "action_noise":
                noise.append(torch.randn(*shape, d, generator=g, device=dev))
        return ActNoise(z=torch.stack(z), u=torch.stack(u) if u else None,
                        noise=torch.stack(noise) if noise else None)

    def select(self, obs: Tensor, draws: ActNoise, beta: Tensor, mode: str) -> Tensor:
        """One action per observation (P, G, n) from K candidates a_i = clip(μ(s, z_i)), scored
        by q_i = agg_k Q_φk(s, a_i): `greedy` argmax q, `entropy_guided` a draw from
        softmax(β q / mean|q|) (the mean over the n states and K candidates of a group),
        `action_noise` argmax q plus N(0, std²); K = 1 is a plain sample."""
        k = draws.z.shape[-2]
        obs_k = obs.unsqueeze(-2).expand(*obs.shape[:-1], k, obs.shape[-1])
        candidates = self.onestep(obs_k, draws.z).clamp(-1.0, 1.0)  # (P, G, n, K, d)
        if k == 1:
            chosen = candidates[..., 0, :]
        else:
            q = aggregate_q(self.critic(obs_k, candidates), self.config.q_agg)  # (P, G, n, K)
            if mode == "entropy_guided":
                index = gumbel_argmax(selection_logits(q, beta), draws.u)
            else:
                index = q.argmax(dim=-1)
            index = index[..., None, None].expand(*index.shape, 1, candidates.shape[-1])
            chosen = candidates.gather(-2, index)[..., 0, :]
        if mode == "action_noise":
            std = _per_member(self.settings.action_noise_std, chosen)
            chosen = (chosen + std * draws.noise).clamp(-1.0, 1.0)
        return chosen

    # ---- §4 entropy and the β controller -------------------------------------------------------

    @torch.inference_mode()
    def sample_exploration_actions(self, obs: Tensor, num_samples: int,
                                   generators: Sequence[torch.Generator] | None = None
                                   ) -> Tensor:
        """`num_samples` actions per state from each member's exploring policy: obs (P, S, ·)
        → (P, S, num_samples, d). Like the reference, each sample is one acting call over all
        S states (so β q is normalised by the mean |q| of that call). Draws come from
        `generators` when given, else from the training streams."""
        mode = self.config.exploration
        obs = obs.to(self.device, torch.float32).reshape(self.size, -1, self.obs_dim)
        states = obs.shape[1]
        draws = self.draw_act_noise((num_samples, states), mode, generators)
        k = draws.z.shape[-2]
        # Samples per network pass: a fixed shape (so a compiled sampler compiles once), the
        # last chunk padded with whole samples that are dropped.
        chunk = max(1, min(num_samples, _SAMPLE_ROWS // (states * k)))
        pad = -num_samples % chunk

        def padded(x: Tensor | None) -> Tensor | None:
            if x is None or pad == 0:
                return x
            return torch.cat([x, x[:, -1:].expand(-1, pad, *x.shape[2:])], dim=1)

        z, u, noise = padded(draws.z), padded(draws.u), padded(draws.noise)
        obs_g = obs.unsqueeze(1).expand(-1, chunk, -1, -1)
        parts = []
        for start in range(0, num_samples + pad, chunk):
            part = slice(start, start + chunk)
            parts.append(self._select_fn(obs_g, ActNoise(
                z=z[:, part], u=None if u is None else u[:, part],
                noise=None if noise is None else noise[:, part]), self.beta, mode))
        samples = torch.cat(parts, dim=1)[:, :num_samples]  # (P, num_samples, S, d)
        return samples.transpose(1, 2)

    def estimate_entropy(self, obs: Tensor,
                         generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """Per member, the mean over states of the GMM entropy of its exploring policy's
        actions (spec §4): obs (P, ≥entropy_states, ·) → (P,) on the CPU. Samples and the
        mixture's initialisation draw from `generators` when given (the trainer passes its
        own, so that measuring never moves the training stream)."""
        cfg = self.config
        gens = list(generators or self.generators)
        obs = obs.reshape(self.size, -1, self.obs_dim)[:, : cfg.entropy_states]
        samples = AgentPack.sample_exploration_actions(self, obs, cfg.entropy_samples, gens)
        entropies = []
        for member, g in enumerate(gens):  # one fit per member: its own initialisation draws
            if cfg.entropy_estimator == "sklearn":
                seed = int(torch.randint(2**31 - 1, (1,), generator=g, device=g.device).item())
                entropies.append(float(
                    gmm_entropy_sklearn(samples[member], cfg.gmm_components, seed=seed).mean()))
            else:
                entropies.append(float(
                    gmm_entropy_batched(samples[member], cfg.gmm_components, generator=g).mean()))
        return torch.tensor(entropies)

    def update_beta(self, entropy: Tensor) -> Tensor:
        """β ← max(0, β + β_lr (H − H̄)) per member: high entropy → larger β (exploit)."""
        h = self.settings
        step = h.beta_lr * (entropy.to(self.device, torch.float32) - h.entropy_target)
        self.beta.copy_((self.beta + step).clamp_min(0.0))
        return self.beta

    # ---- checkpoints: one state per member ----------------------------------------------------

    def _nets(self) -> dict[str, torch.nn.Module]:
        return {"bc_flow": self.bc_flow, "onestep": self.onestep, "critic": self.critic,
                "target_critic": self.target_critic}

    def _member_rows(self, t: Tensor, member: int) -> Tensor:
        """Member `member`'s slice of a stacked tensor (lanes = members × lanes per member)."""
        return t.view(self.size, -1, *t.shape[1:])[member]

    def member_state(self, member: int) -> dict[str, Any]:
        """Everything member `member` needs to continue exactly, alone or in another pack: the
        same state a single agent (`FinoAgent.state_dict`) writes."""
        rows = self._member_rows
        adam: dict[str, list[Tensor]] = {"exp_avg": [], "exp_avg_sq": []}
        step = None
        for p in self.optimizer.param_groups[0]["params"]:
            state = self.optimizer.state.get(p, {})
            if state:
                step = state["step"]
                for key in adam:
                    adam[key].append(rows(state[key], member).clone())
        return {
            "format": STATE_FORMAT,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "config": self.configs[member].to_dict(),
            **{name: {k: rows(v, member).clone() for k, v in net.state_dict().items()}
               for name, net in self._nets().items()},
            "optimizer": {"step": None if step is None else float(step), **adam},
            "beta": float(self.beta[member]),
            "generator": self.generators[member].get_state(),
            "num_updates": self.num_updates,
        }

    def load_member_state(self, member: int, state: dict[str, Any], *,
                          same_config: bool = True) -> None:
        """Load a state written by `member_state` (or `FinoAgent.state_dict`) into member
        `member`, in place (a captured CUDA graph stays valid). `same_config=False` skips the
        check that it was written with this member's AgentConfig (the caller checked what
        matters, e.g. a shared offline phase) and starts β at this member's `beta_init`."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"agent state format {state.get('format', 1)!r}: this fino reads format "
                f"{STATE_FORMAT} (packed weights); a checkpoint written before packs cannot "
                "be resumed by this version: start the run again")
        dims = (state["obs_dim"], state["action_dim"])
        if dims != (self.obs_dim, self.action_dim):
            raise ValueError(f"checkpoint is for (obs_dim, action_dim)={dims}, "
                             f"this agent has {(self.obs_dim, self.action_dim)}")
        saved = AgentConfig.from_dict(_tuples(state["config"])).resolved(self.action_dim)
        if same_config and saved != self.configs[member]:
            raise ValueError("checkpoint was written with a different AgentConfig: "
                             + _config_diff(saved, self.configs[member]))
        with torch.no_grad():
            for name, net in self._nets().items():
                for key, value in net.state_dict().items():
                    self._member_rows(value, member).copy_(state[name][key])
            params = self.optimizer.param_groups[0]["params"]
            adam = state["optimizer"]
            if adam["step"] is not None:
                self._ensure_adam_state()
                for i, p in enumerate(params):
                    slot = self.optimizer.state[p]
                    slot["step"].fill_(adam["step"])
                    for key in ("exp_avg", "exp_avg_sq"):
                        self._member_rows(slot[key], member).copy_(adam[key][i])
            self.beta[member] = float(state["beta"]) if same_config else \
                float(self.configs[member].beta_init)
            self._update_count.fill_(int(state["num_updates"]))
        self.generators[member].set_state(state["generator"])
        self.num_updates = int(state["num_updates"])

    def overwrite_member(self, member: int, source: int) -> None:
        """Give member `member` a copy of member `source`'s weights, Adam moments and β (a
        diverged member kept finite, so that work shared by the pack, such as the entropy's
        mixture fits, stays defined); its seed, settings and streams are its own still."""
        rows = self._member_rows
        with torch.no_grad():
            for net in self._nets().values():
                for value in net.state_dict().values():
                    rows(value, member).copy_(rows(value, source))
            for p in self.optimizer.param_groups[0]["params"]:
                for key, value in self.optimizer.state.get(p, {}).items():
                    if key != "step":
                        rows(value, member).copy_(rows(value, source))
            self.beta[member] = self.beta[source]

    def _ensure_adam_state(self) -> None:
        """Adam's state tensors, created as its first step would (zeros), so loading can copy
        into them in place."""
        for p in self.optimizer.param_groups[0]["params"]:
            if not self.optimizer.state.get(p):
                self.optimizer.state[p] = {  # fused Adam keeps `step` on the param's device
                    "step": torch.zeros((), dtype=torch.float32, device=p.device),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}


STATE_FORMAT = 2  # 2: packed weights, one state per member; 1: the pre-pack single agent


class FinoAgent(AgentPack):
    """FINO for one seed: a pack of one member, with single-agent shapes at its surface
    (observations (B, obs_dim) or (obs_dim,), β as a float in `beta_value`, metrics as one
    row)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        config: AgentConfig | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        compile: bool = False,
        precision: Precision = "fp32",
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__(obs_dim, action_dim, config, seeds=[seed], device=device,
                         compile=compile, precision=precision, cuda_graphs=cuda_graphs)

    @property
    def generator(self) -> torch.Generator:
        return self.generators[0]

    def update(self, batch: Batch, noise: UpdateNoise | None = None) -> Tensor:
        """One update on a batch (B, …); returns the metrics row (len(info_keys),) unread.
        `noise` is packed, (1, B, …), as `draw_update_noise` returns it."""
        packed = Batch(*(t.unsqueeze(0) for t in batch.__dict__.values()))
        return super().update(packed, noise)[0]

    def info(self, metrics: Tensor) -> dict[str, float]:
        """A metrics row as a dict (reads the device)."""
        return dict(zip(self.info_keys, metrics.reshape(-1).tolist(), strict=True))

    def check_finite(self, metrics: Tensor | None = None) -> None:
        super().check_finite(None if metrics is None else metrics.reshape(1, -1))

    def sample_flow(self, obs: Tensor, z: Tensor) -> Tensor:
        """The BC flow's Euler sample for (B, ·) observations and noise."""
        return super().sample_flow(obs.unsqueeze(0), z.unsqueeze(0))[0]

    def act(self, obs: Tensor, greedy: bool = False,  # type: ignore[override]
            generator: torch.Generator | None = None) -> Tensor:
        """Actions for observations (B, obs_dim) or (obs_dim,)."""
        single = obs.dim() == 1
        actions = super().act(obs.reshape(1, -1, self.obs_dim), greedy,
                              None if generator is None else [generator])[0]
        return actions[0] if single else actions

    def sample_exploration_actions(self, obs: Tensor, num_samples: int,  # type: ignore[override]
                                   generator: torch.Generator | None = None) -> Tensor:
        """(S, num_samples, d) actions for states (S, obs_dim)."""
        return super().sample_exploration_actions(
            obs.unsqueeze(0), num_samples, None if generator is None else [generator])[0]

    def estimate_entropy(self, obs: Tensor,  # type: ignore[override]
                         generator: torch.Generator | None = None) -> float:
        return float(super().estimate_entropy(obs.unsqueeze(0),
                                              None if generator is None else [generator])[0])

    def update_beta(self, entropy: float) -> float:  # type: ignore[override]
        return float(super().update_beta(torch.tensor([entropy]))[0])

    @property
    def beta_value(self) -> float:
        """β of the one member (reads the device)."""
        return float(self.beta[0])

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed agent needs to continue exactly."""
        return self.member_state(0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_member_state(0, state)


def gumbel_argmax(logits: Tensor, u: Tensor) -> Tensor:
    """One draw per row from softmax(logits) given uniforms u (the Gumbel-max trick)."""
    gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
    return (logits + gumbel).argmax(dim=-1)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _checked_device(device: str | torch.device) -> torch.device:
    """`auto` is CUDA when this machine has it, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device}: CUDA is not available on this machine; use 'cpu'")
    return device


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _config_diff(a: AgentConfig, b: AgentConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}: {da[k]!r} != {db[k]!r}" for k in da if da[k] != db[k])
