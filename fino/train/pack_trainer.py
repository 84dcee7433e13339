"""The pack trainer: N runs that differ only in seed and packable agent settings, trained in
lockstep by one `AgentPack`, each writing into its own run folder exactly what a single
`Trainer` of its config writes (config.json, metrics.jsonl, eval.csv, events.log, checkpoint.pt,
summary.json).

Offline, one packed update per step. Online, one batched `act` for the members' current
observations, then each member's env stepped in turn in this process, each with its own
episodes and online rows. Entropy, β, evaluations and checkpoints happen at a single run's
steps with each member's own seeds. A member whose loss goes non-finite stops alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fino.algo.agent import AgentPack, FinoAgent
from fino.algo.config import AgentConfig, ConfigError
from fino.algo.matmul import configure_cuda_matmul, configure_matmul
from fino.algo.packing import PackError, shared_config
from fino.backends.base import Task
from fino.backends.registry import load_task
from fino.data.buffer import PackedReplay, SharedOfflineReplay
from fino.provenance import MACHINE_MARK, code_version, machine
from fino.train.checkpoint import CHECKPOINT_NAME, save_checkpoint
from fino.train.config import CONFIG_NAME, RunConfig
from fino.train.errors import TrainingDiverged
from fino.train.evaluate import evaluate, greedy_actor
from fino.train.sinks import Sink, SinkGroup
from fino.train.trainer import (
    SUMMARY_NAME,
    RunSummary,
    entropy_draws,
    run_sinks,
    seed_for,
    summarize,
)

# What pack members may differ in besides the packable agent settings.
_MEMBER_KEYS = ("seed",)


def check_packable(configs: Sequence[RunConfig]) -> None:
    """Refuse, naming the setting, run configs that cannot share a pack."""
    if not configs:
        raise PackError("a pack needs at least one run")
    first = configs[0].to_dict()
    for index, config in enumerate(configs[1:], start=1):
        other = config.to_dict()
        for key, value in first.items():
            if key in _MEMBER_KEYS or key == "agent":
                continue
            for name, mine, theirs in _differences(key, value, other[key]):
                raise PackError(
                    f"pack member {index} differs from member 0 in {name!r} ({theirs!r} != "
                    f"{mine!r}); runs in a pack may differ only in the seed and the packable "
                    "agent settings")
    shared_config([c.agent for c in configs])


def _differences(key: str, mine: Any, theirs: Any) -> list[tuple[str, Any, Any]]:
    """(dotted name, value, other value) of each differing leaf of two config sections."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [d for k in mine for d in _differences(f"{key}.{k}", mine[k], theirs.get(k))]
    return [] if mine == theirs else [(key, mine, theirs)]


@dataclass
class _Member:
    """One run of the pack: its folder, sinks, replay, env, episode and record."""

    config: RunConfig
    run_dir: Path
    sinks: SinkGroup
    buffer: SharedOfflineReplay
    env: Any = None
    obs: np.ndarray | None = None
    episodes: int = 0
    env_steps: int = 0
    ep_return: float = 0.0
    ep_length: int = 0
    ep_actions: list[np.ndarray] = field(default_factory=list)
    eval_envs: list[Any] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    diverged: TrainingDiverged | None = None

    def episode_state(self) -> dict[str, Any] | None:
        """The online episode in progress, as a single run's checkpoint holds it."""
        if self.obs is None or not self.ep_actions:
            return None
        return {"actions": torch.as_tensor(np.stack(self.ep_actions)),
                "obs": torch.as_tensor(np.asarray(self.obs)),
                "return": self.ep_return, "length": self.ep_length}


class PackTrainer:
    """Trains `configs` (one per folder of `run_dirs`) as one pack; `run()` returns, per
    member, its RunSummary or the TrainingDiverged that stopped it."""

    def __init__(
        self,
        configs: Sequence[RunConfig],
        run_dirs: Sequence[Path],
        *,
        task: Task | None = None,
        sinks_per_member: Sequence[list[Sink]] | None = None,
    ) -> None:
        if len(configs) != len(run_dirs):
            raise ValueError(f"{len(configs)} configs for {len(run_dirs)} run folders")
        if len({Path(d).resolve() for d in run_dirs}) != len(run_dirs):
            raise ValueError("each pack member needs a run folder of its own")
        if sinks_per_member is not None and len(sinks_per_member) != len(configs):
            raise ValueError(f"{len(sinks_per_member)} sink lists for {len(configs)} members")
        check_packable(configs)
        self.configs = list(configs)
        tc = self.configs[0].train
        if tc.threads:
            torch.set_num_threads(tc.threads)
        configure_matmul(tc.matmul)
        owns_task = task is None
        self.task = task or load_task(self.configs[0].task)
        spec = self.task.spec
        self.agent = AgentPack(spec.obs_dim, spec.action_dim, [c.agent for c in self.configs],
                               seeds=[c.seed for c in self.configs], device=tc.device,
                               compile=tc.compile, precision=tc.precision,
                               cuda_graphs=tc.cuda_graphs)
        try:
            configure_cuda_matmul(tc.matmul_precision, self.agent.device)
        except ValueError as exc:  # device "auto" resolved to a CPU
            raise ConfigError(f"train.{exc}") from None
        self.replay = PackedReplay(self.task.train_dataset, [c.seed for c in self.configs],
                                   capacity=tc.buffer_size, balanced=tc.balanced)
        if owns_task:  # the replay holds the offline rows now
            self.task = replace(self.task, train_dataset={}, val_dataset=None)
        # Single agents that evaluate one member at a time with its weights (one per distinct
        # agent config), so that a member's evaluation is a single run's.
        self._evaluators: dict[AgentConfig, FinoAgent] = {}
        self.members: list[_Member] = []
        for i, (config, run_dir) in enumerate(zip(self.configs, run_dirs, strict=True)):
            folder = Path(run_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2))
            sinks = run_sinks(folder, sinks_per_member[i] if sinks_per_member else None)
            sinks.truncate_after(-1)  # a folder an earlier attempt used starts afresh
            self.members.append(_Member(config, folder, sinks, self.replay.members[i]))
        self.step = 0
        self._last_entropy: tuple[int, torch.Tensor] | None = None
        self._compiled = not tc.compile

    @property
    def train_config(self) -> Any:
        return self.configs[0].train

    def _active(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.diverged is None]

    # ---- the loop -----------------------------------------------------------------------------

    def run(self) -> list[RunSummary | TrainingDiverged]:
        tc = self.train_config
        start = time.perf_counter()
        where = machine(str(self.agent.device))
        for m in self.members:
            m.sinks.event("started", f"{m.config.algo} on {self.task.spec.name}, step "
                          f"{self.step}/{tc.total_steps}, fino {code_version()}"
                          f"{MACHINE_MARK}{where}")
        try:
            if self._evaluation_due():
                self._evaluate()
            window = (time.perf_counter(), self.step, self._env_steps())
            while self.step < tc.total_steps and self._active():
                online = self.step >= tc.offline_steps
                if online:
                    self._env_steps_all()
                self._announce_compile()
                update_metrics = self.agent.update(
                    self.replay.sample(self.configs[0].agent.batch_size))
                self.step += 1
                metrics: list[dict[str, float]] = [{} for _ in self.members]
                if online and (self.step - tc.offline_steps) % tc.resolved_entropy_interval == 0:
                    self._check_finite(update_metrics)
                    for i, values in self._entropy_and_beta(update_beta=True).items():
                        metrics[i].update(values)
                if self.step % tc.log_interval == 0:
                    self._check_finite(update_metrics)
                    infos = self.agent.infos(update_metrics)
                    throughput = self._throughput(window)
                    for i in self._active():
                        metrics[i].update({**infos[i], **throughput})
                    window = (time.perf_counter(), self.step, self._env_steps())
                for i in self._active():
                    if metrics[i]:
                        m = self.members[i]
                        m.sinks.write(self.step, {**metrics[i], **self._progress(m)})
                if self._evaluation_due():
                    self._check_finite(update_metrics)
                    self._evaluate()
                if self.step % tc.save_interval == 0 or self.step == tc.total_steps:
                    self.save()
            for i in self._active():
                self.members[i].sinks.event("finished", f"step {self.step}")
        finally:
            for m in self.members:
                m.sinks.close()
                for env in [m.env, *m.eval_envs]:
                    if env is not None:
                        env.close()
        wall = time.perf_counter() - start
        results: list[RunSummary | TrainingDiverged] = []
        for m in self.members:
            if m.diverged is not None:
                results.append(m.diverged)
                continue
            status = "done" if self.step == tc.total_steps else "interrupted"
            summary = summarize(m.config, status, self.step, m.env_steps, m.evaluations, wall)
            (m.run_dir / SUMMARY_NAME).write_text(json.dumps(summary.to_dict(), indent=2))
            results.append(summary)
        return results

    def _evaluation_due(self) -> bool:
        tc = self.train_config
        return self.step % tc.eval_interval == 0 or self.step == tc.total_steps

    def _env_steps(self) -> int:
        return self.members[0].env_steps  # the same for every member still running

    def _progress(self, m: _Member, offset: int = 0) -> dict[str, float]:
        return {"progress/online": float(self.step + offset > self.train_config.offline_steps),
                "progress/env_steps": float(m.env_steps)}

    def _throughput(self, window: tuple[float, int, int]) -> dict[str, float]:
        t0, step0, env0 = window
        dt = max(time.perf_counter() - t0, 1e-9)
        return {"time/updates_per_sec": (self.step - step0) / dt,
                "time/env_steps_per_sec": (self._env_steps() - env0) / dt}

    def _announce_compile(self) -> None:
        if self._compiled:
            return
        self._compiled = True
        for i in self._active():
            self.members[i].sinks.event(
                "compiling", "compiling the update (the first step; up to a few minutes)")

    # ---- divergence ---------------------------------------------------------------------------

    def _check_finite(self, update_metrics: torch.Tensor | None) -> None:
        """Stop each newly diverged member alone, with a single run's "diverged" event (one
        device sync; run where a single run checks)."""
        bad = {i: u for i, u in self.agent.nonfinite_members().items()
               if self.members[i].diverged is None}
        if not bad:
            return
        infos = self.agent.infos(update_metrics) if update_metrics is not None else None
        offline_steps = self.train_config.offline_steps
        for i, update in bad.items():
            m = self.members[i]
            first = self.step - self.agent.num_updates + update + 1
            phase = "online" if first > offline_steps else "offline"
            loss = f"member 0 (seed {m.config.seed}) first at update {update}"
            if infos is not None:
                loss += ": " + ", ".join(f"{k}={v:.4g}" for k, v in infos[i].items())
            m.diverged = TrainingDiverged(
                f"non-finite loss at step {first} ({phase} phase; found at step {self.step}): "
                f"non-finite loss: {loss}; the last checkpoint (if any) in {m.run_dir} is "
                "intact")
            m.sinks.event("diverged", str(m.diverged))
        running = self._active()
        if running:  # a diverged member's NaNs would break the shared entropy fits
            for i in bad:
                self.agent.overwrite_member(i, running[0])

    # ---- online steps -------------------------------------------------------------------------

    def _env_steps_all(self) -> None:
        """One batched act for every member's current observation, then each env's step."""
        for i in self._active():
            m = self.members[i]
            if m.env is None:
                m.env = self.task.make_env()
            if m.obs is None:
                m.obs, _ = m.env.reset(seed=seed_for(m.config.seed, 0, m.episodes))
                m.ep_return, m.ep_length, m.ep_actions = 0.0, 0, []
        obs = np.stack([np.zeros_like(self.members[self._active()[0]].obs)
                        if m.obs is None else m.obs for m in self.members])
        actions = self.agent.act(torch.as_tensor(obs, dtype=torch.float32)[:, None])
        actions = actions[:, 0].cpu().numpy()
        for i in self._active():
            self._member_env_step(self.members[i], actions[i])

    def _member_env_step(self, m: _Member, action: np.ndarray) -> None:
        m.ep_actions.append(action)
        next_obs, reward, terminated, truncated, info = m.env.step(action)
        m.buffer.add(m.obs, action, self.task.training_reward(float(reward)), next_obs,
                     bool(terminated))
        m.env_steps += 1
        m.ep_return += float(reward)
        m.ep_length += 1
        m.obs = next_obs
        if terminated or truncated:
            m.episodes += 1
            score = self.task.score_episode(m.ep_return, info)
            m.sinks.write(self.step + 1, {
                "online/episode_return": m.ep_return,
                "online/episode_length": float(m.ep_length),
                "online/episode_score": score, **self._progress(m, offset=1)})
            m.obs = None

    # ---- entropy, β, evaluation ---------------------------------------------------------------

    def _entropy_and_beta(self, update_beta: bool) -> dict[int, dict[str, float]]:
        """Each running member's entropy (its own seeded states and draws) and β."""
        if self._last_entropy is None or self._last_entropy[0] != self.step:
            draws = [entropy_draws(m.buffer, m.config, self.step, self.agent.device)
                     for m in self.members]
            obs = torch.stack([o for o, _ in draws])
            entropy = self.agent.estimate_entropy(obs, [g for _, g in draws])
            self._last_entropy = (self.step, entropy)
        entropy = self._last_entropy[1]
        if update_beta and self.agent.config.num_candidates > 1:
            # A diverged member's β is left as it was (its entropy may be NaN).
            stopped = torch.tensor([m.diverged is not None for m in self.members])
            self.agent.update_beta(torch.where(
                stopped, self.agent.settings.entropy_target.cpu(), entropy))
        out: dict[int, dict[str, float]] = {}
        for i in self._active():
            values = {"policy/entropy": float(entropy[i]),
                      "policy/entropy_target": float(self.agent.configs[i].entropy_target)}
            if self.agent.config.num_candidates > 1:
                values["policy/beta"] = float(self.agent.beta[i])
            out[i] = values
        return out

    def _evaluate(self) -> None:
        """Each running member's evaluation, as a single run of its config evaluates."""
        tc = self.train_config
        if not self._active():
            return
        entropy = self._entropy_and_beta(update_beta=False)
        for i in self._active():
            m = self.members[i]
            if not m.eval_envs:
                n = min(tc.eval_envs, tc.eval_episodes)
                m.eval_envs = [self.task.make_eval_env() for _ in range(n)]
            started = time.perf_counter()
            actor = greedy_actor(self._evaluator(i), seed=seed_for(m.config.seed, 2, self.step))
            result = evaluate(actor, self.task, m.eval_envs, tc.eval_episodes,
                              seed=seed_for(m.config.seed, 1, 0))
            assert result is not None  # nothing asks a pack to stop mid-evaluation
            metrics = {**result.metrics(), "eval/seconds": time.perf_counter() - started}
            metrics.update(entropy[i])
            metrics["actor/noise_scale"] = self.agent.configs[i].noise_scale
            metrics.update(self._progress(m))
            m.sinks.write(self.step, metrics)
            m.evaluations.append({"step": self.step, **metrics})

    def _evaluator(self, member: int) -> FinoAgent:
        """A single agent holding member `member`'s current weights."""
        config = self.configs[member].agent
        if config not in self._evaluators:
            tc, spec = self.train_config, self.task.spec
            self._evaluators[config] = FinoAgent(
                spec.obs_dim, spec.action_dim, config, device=self.agent.device,
                compile=tc.compile, precision=tc.precision, cuda_graphs=False)
        agent = self._evaluators[config]
        agent.load_state_dict(self.agent.member_state(member))
        return agent

    # ---- checkpoints --------------------------------------------------------------------------

    def save(self) -> None:
        """Each running member's checkpoint, the state a single run's `save` writes."""
        self._check_finite(None)
        for i in self._active():
            m = self.members[i]
            m.sinks.flush()
            save_checkpoint(m.run_dir / CHECKPOINT_NAME, {
                "config": m.config.to_dict(), "step": self.step, "env_steps": m.env_steps,
                "episodes": m.episodes, "evaluations": m.evaluations,
                "agent": self.agent.member_state(i), "buffer": m.buffer.state_dict(),
                "episode": m.episode_state()})
            m.sinks.event("checkpoint", f"step {self.step}")
