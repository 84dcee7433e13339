"""The pack trainer: N runs that differ only in seed and packable agent settings, trained in
lockstep by one `AgentPack`, each writing into its own run folder exactly what a single
`Trainer` of its config writes (config.json, metrics.jsonl, eval.csv, events.log, checkpoint.pt,
summary.json).

Offline, one packed update per step. Online, one batched `act` for the members' current
observations, then every member's env stepped (at once, in worker processes, with
`env_processes` > 1), each with its own episodes and online rows. Evaluations of all members
step in lockstep too, one batched greedy act per step. Entropy, β, evaluations and checkpoints
happen at a single run's steps with each member's own seeds. A member's checkpoint is the one
its single run writes, so a member resumes alone or in another pack, and a pack resumes from its
members' checkpoints.

Members leave alone: one whose loss goes non-finite (diverged), one whose attempt lost its run
(its fence: reclaimed, removed), one asked to stop (its fence's `cancel_requested`: it
checkpoints and stops). `request_stop` stops them all, each with a checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from fino.algo.agent import AgentPack
from fino.algo.config import ConfigError
from fino.algo.matmul import configure_cuda_matmul, configure_matmul
from fino.algo.packing import PackError
from fino.backends.base import Task
from fino.backends.registry import load_task
from fino.data.buffer import PackedReplay, SharedOfflineReplay
from fino.metric_keys import (
    ACTOR_NOISE_SCALE,
    ENV_STEPS_PER_SEC,
    EVAL_SECONDS,
    POLICY_BETA,
    POLICY_ENTROPY,
    POLICY_ENTROPY_TARGET,
    PROGRESS_ENV_STEPS,
    PROGRESS_ONLINE,
    UPDATES_PER_SEC,
)
from fino.provenance import MACHINE_MARK, code_version, machine
from fino.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from fino.train.config import CONFIG_NAME, RunConfig, same_config
from fino.train.env_pool import env_pool_for
from fino.train.episode import OnlineEpisodes
from fino.train.errors import RunDisowned, TrainingDiverged
from fino.train.evaluate import EpisodeRun, evaluate_many
from fino.train.offline_start import OFFLINE_NAME, start_after_offline
from fino.train.packable import check_packable
from fino.train.seeds import seed_for
from fino.train.sinks import Sink, SinkGroup
from fino.train.system_metrics import SystemMetrics
from fino.train.trainer import (
    SUMMARY_NAME,
    Fence,
    RunSummary,
    TrainingEnd,
    entropy_draws,
    keep_history,
    run_sinks,
    summarize,
)


def resume_step(run_dir: Path) -> int:
    """The step a run folder's checkpoint resumes from (0 without one): members of one pack
    must resume from the same step."""
    path = Path(run_dir) / CHECKPOINT_NAME
    return int(load_checkpoint(path)["step"]) if path.exists() else 0


class MemberFence(Fence, Protocol):
    """A pack member's lease: a `Fence` that also says when its run was asked to stop."""

    cancel_requested: bool


@dataclass
class _Member:
    """One run of the pack: its folder, sinks, replay, online episodes and record."""

    config: RunConfig
    run_dir: Path
    sinks: SinkGroup
    buffer: SharedOfflineReplay
    online: OnlineEpisodes
    fence: MemberFence | None = None
    eval_envs: list[Any] = field(default_factory=list)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    saved_step: int | None = None
    ended: TrainingDiverged | RunDisowned | None = None  # left the pack without a summary
    stopped: bool = False  # asked to stop: checkpointed, interrupted
    stopped_at: int = 0  # the step it stopped at

    @property
    def active(self) -> bool:
        return self.ended is None and not self.stopped

    def evaluated_at(self, step: int) -> bool:
        return any(e["step"] == step for e in self.evaluations)


class PackTrainer:
    """Trains `configs` (one per folder of `run_dirs`) as one pack; `run()` returns, per
    member, its RunSummary, or the TrainingDiverged or RunDisowned that ended it.
    `resume=True`: members continue from their folders' checkpoints (all at one step)."""

    def __init__(
        self,
        configs: Sequence[RunConfig],
        run_dirs: Sequence[Path],
        *,
        task: Task | None = None,
        sinks_per_member: Sequence[list[Sink]] | None = None,
        fences: Sequence[MemberFence | None] | None = None,
        resume: bool = False,
        env_processes: int = 1,
        on_leave: Callable[[int, TrainingDiverged | RunDisowned | None], None] | None = None,
    ) -> None:
        """`env_processes` > 1: the members' online and evaluation envs step in parallel in that
        many worker processes (when the task's env factories can be sent there), with the same
        results.
        `on_leave(i, why)`: told when member i leaves while the others may go on (why: the
        error that ended it, or None when it stopped on request with a checkpoint)."""
        if len(configs) != len(run_dirs):
            raise ValueError(f"{len(configs)} configs for {len(run_dirs)} run folders")
        if len({Path(d).resolve() for d in run_dirs}) != len(run_dirs):
            raise ValueError("each pack member needs a run folder of its own")
        for name, given in (("sink lists", sinks_per_member), ("fences", fences)):
            if given is not None and len(given) != len(configs):
                raise ValueError(f"{len(given)} {name} for {len(configs)} members")
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
        self.step = 0
        self.members: list[_Member] = []
        for i, (config, run_dir) in enumerate(zip(self.configs, run_dirs, strict=True)):
            folder = Path(run_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self.members.append(_Member(
                config, folder, SinkGroup([]), self.replay.members[i],
                OnlineEpisodes(self.task, config.seed,
                               on_replay_failed=self._replay_failed_notice(i)),
                fence=fences[i] if fences else None))
        if resume:
            self._restore()
        else:
            self._start_after_offline()
        for i, m in enumerate(self.members):
            if not resume:
                (m.run_dir / CONFIG_NAME).write_text(json.dumps(m.config.to_dict(), indent=2))
            m.sinks = run_sinks(m.run_dir, sinks_per_member[i] if sinks_per_member else None)
            # As a single run: nothing logged after the checkpoint survives (or, afresh,
            # nothing an earlier attempt logged in the folder).
            m.sinks.truncate_after(self.step if resume else -1)
            if resume:
                m.sinks.event("resumed", f"from step {self.step} (in a pack of "
                              f"{len(self.members)})")
            elif m.config.from_offline:
                m.sinks.event("started", f"online phase from the offline phase of "
                              f"{m.config.from_offline} (step {self.step})")
        self._stop = False
        self._on_leave = on_leave
        n, per = len(self.members), min(tc.eval_envs, tc.eval_episodes)
        self.env_pool = env_pool_for(
            [self.task.make_env] * n + [self.task.make_eval_env] * (n * per), env_processes)
        if self.env_pool is not None:
            for i, m in enumerate(self.members):
                m.online.env = self.env_pool.env(i)
                m.eval_envs = [self.env_pool.env(n + i * per + k) for k in range(per)]
        self._last_entropy: tuple[int, torch.Tensor] | None = None
        self._compiled = not tc.compile
        self._system = SystemMetrics(self.agent.device)  # the pack's process: shared figures

    def _replay_failed_notice(self, member: int) -> Any:
        return lambda message: self.members[member].sinks.event("resumed", message)

    @property
    def train_config(self) -> Any:
        return self.configs[0].train

    def request_stop(self) -> None:
        """Ask every member to checkpoint and stop at the next step boundary, or during an
        evaluation (redone on resume); signal-safe."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def _active(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.active]

    # ---- the loop -----------------------------------------------------------------------------

    def run(self) -> list[RunSummary | TrainingDiverged | RunDisowned]:
        tc = self.train_config
        start = time.perf_counter()
        where = machine(str(self.agent.device))
        for m in self.members:
            m.sinks.event("started", f"{m.config.algo} on {self.task.spec.name}, step "
                          f"{self.step}/{tc.total_steps}, fino {code_version()}"
                          f"{MACHINE_MARK}{where}")
        try:
            # A fresh step 0, one a stop interrupted, or the end of a shared offline phase
            # (members evaluate there with their own acting rule: their offline score).
            if self._evaluation_due() or self._at_shared_offline_end():
                self._evaluate()
            window = (time.perf_counter(), self.step, self._env_steps())
            while self.step < tc.total_steps and not self._stop:
                self._check_fences()
                if not self._active():
                    break
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
                    throughput = {**self._throughput(window), **self._system.read()}
                    for i in self._active():
                        metrics[i].update({**infos[i], **throughput})
                    window = (time.perf_counter(), self.step, self._env_steps())
                for i in self._active():
                    if metrics[i]:
                        m = self.members[i]
                        m.sinks.write(self.step, {**metrics[i], **self._progress(m)})
                if self._evaluation_due() and not self._stop:  # else redone on resume
                    self._check_finite(update_metrics)
                    self._evaluate()
                if self.step % tc.save_interval == 0 or self.step == tc.total_steps:
                    self._save(self._active())
                if self.step == tc.offline_steps:
                    self._save(self._active(), OFFLINE_NAME)  # for online variants to start
            self._check_finite(None)
            for i in self._active():
                m = self.members[i]
                if self.step == tc.total_steps and m.evaluated_at(self.step):
                    m.sinks.event("finished", f"step {self.step}")
                else:
                    self._stop_member(i)
        finally:
            for m in self.members:
                m.sinks.close()
                m.online.close()
                for env in m.eval_envs:
                    env.close()
            if self.env_pool is not None:
                self.env_pool.close()
        wall = time.perf_counter() - start
        results: list[RunSummary | TrainingDiverged | RunDisowned] = []
        for m in self.members:
            if m.ended is not None:
                results.append(m.ended)
                continue
            status: TrainingEnd = "interrupted" if m.stopped else "done"
            step = m.stopped_at if m.stopped else self.step
            summary = summarize(m.config, status, step, m.online.env_steps, m.evaluations, wall)
            (m.run_dir / SUMMARY_NAME).write_text(json.dumps(summary.to_dict(), indent=2))
            results.append(summary)
        return results

    def _evaluation_due(self) -> bool:
        tc = self.train_config
        return self.step % tc.eval_interval == 0 or self.step == tc.total_steps

    def _env_steps(self) -> int:
        """Env steps so far, the same for every member still running."""
        active = self._active()
        return self.members[active[0] if active else 0].online.env_steps

    def _progress(self, m: _Member, offset: int = 0) -> dict[str, float]:
        return {PROGRESS_ONLINE: float(self.step + offset > self.train_config.offline_steps),
                PROGRESS_ENV_STEPS: float(m.online.env_steps)}

    def _throughput(self, window: tuple[float, int, int]) -> dict[str, float]:
        t0, step0, env0 = window
        dt = max(time.perf_counter() - t0, 1e-9)
        return {UPDATES_PER_SEC: (self.step - step0) / dt,
                ENV_STEPS_PER_SEC: (self._env_steps() - env0) / dt}

    def _announce_compile(self) -> None:
        if self._compiled:
            return
        self._compiled = True
        for i in self._active():
            self.members[i].sinks.event(
                "compiling", "compiling the update (the first step; up to a few minutes)")

    # ---- members leaving ----------------------------------------------------------------------

    def _check_fences(self) -> None:
        """Members whose attempt lost its run leave without writing; members whose run was
        asked to stop checkpoint and leave."""
        for i in self._active():
            fence = self.members[i].fence
            if fence is None:
                continue
            if fence.lost:
                self._disown(i, RunDisowned(fence.lost))
            elif fence.cancel_requested:
                self._stop_member(i)

    def _disown(self, member: int, exc: RunDisowned) -> None:
        self.members[member].ended = exc
        self._left(member, exc)

    def _left(self, member: int, why: TrainingDiverged | RunDisowned | None) -> None:
        if self._on_leave is not None:
            self._on_leave(member, why)

    def _stop_member(self, member: int) -> None:
        """Checkpoint member `member` (unless its checkpoint is at this step) and stop it."""
        m = self.members[member]
        if m.saved_step != self.step:
            self._save([member])
        if m.active:  # the checkpoint may have found the run disowned
            m.stopped, m.stopped_at = True, self.step
            m.sinks.event("interrupted", f"checkpointed at step {self.step}")
            self._left(member, None)

    def _check_finite(self, update_metrics: torch.Tensor | None) -> None:
        """Stop each newly diverged member alone, with a single run's "diverged" event (one
        device sync; run where a single run checks)."""
        bad = {i: u for i, u in self.agent.nonfinite_members().items() if self.members[i].active}
        infos = self.agent.infos(update_metrics) if bad and update_metrics is not None else None
        offline_steps = self.train_config.offline_steps
        for i, update in bad.items():
            m = self.members[i]
            first = self.step - self.agent.num_updates + update + 1
            phase = "online" if first > offline_steps else "offline"
            loss = f"member 0 (seed {m.config.seed}) first at update {update}"
            if infos is not None:
                loss += ": " + ", ".join(f"{k}={v:.4g}" for k, v in infos[i].items())
            m.ended = TrainingDiverged(
                f"non-finite loss at step {first} ({phase} phase; found at step {self.step}): "
                f"non-finite loss: {loss}; the last checkpoint (if any) in {m.run_dir} is "
                "intact")
            m.sinks.event("diverged", str(m.ended))
            self._left(i, m.ended)
        active = self._active()
        if active:  # members that left train on unwatched: keep them finite for shared work
            for i, m in enumerate(self.members):
                if not m.active:
                    self.agent.overwrite_member(i, active[0])

    # ---- online steps -------------------------------------------------------------------------

    def _env_steps_all(self) -> None:
        """One batched act for every member's current observation, then each env's step."""
        active = self._active()
        current = {i: self.members[i].online.observation() for i in active}
        blank = np.zeros_like(current[active[0]])
        obs = np.stack([current.get(i, blank) for i in range(len(self.members))])
        actions = self.agent.act(torch.as_tensor(obs, dtype=torch.float32)[:, None])
        actions = actions[:, 0].cpu().numpy()
        results = (self.env_pool.step_many({i: actions[i] for i in active})
                   if self.env_pool is not None else {})
        for i in active:
            m = self.members[i]
            finished = (m.online.record(actions[i], results[i], m.buffer) if results
                        else m.online.step(actions[i], m.buffer))
            if finished is not None:
                m.sinks.write(self.step + 1, {**finished, **self._progress(m, offset=1)})

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
            # A member that left keeps its β (a diverged one's entropy may be NaN).
            left = torch.tensor([not m.active for m in self.members])
            self.agent.update_beta(torch.where(
                left, self.agent.settings.entropy_target.cpu(), entropy))
        out: dict[int, dict[str, float]] = {}
        for i in self._active():
            values = {POLICY_ENTROPY: float(entropy[i]),
                      POLICY_ENTROPY_TARGET: float(self.agent.configs[i].entropy_target)}
            if self.agent.config.num_candidates > 1:
                values[POLICY_BETA] = float(self.agent.beta[i])
            out[i] = values
        return out

    def _evaluate(self) -> None:
        """The evaluation at this step of each running member that lacks one, as a single run
        of its config evaluates, all members' episodes in lockstep with one batched greedy act
        per step (each member drawing from its own evaluation stream); a stop request
        interrupts it (redone on resume)."""
        tc = self.train_config
        due = [i for i in self._active() if not self.members[i].evaluated_at(self.step)]
        if not due:
            return
        entropy = self._entropy_and_beta(update_beta=False)
        device = self.agent.device
        streams = [torch.Generator(device).manual_seed(seed_for(m.config.seed, 2, self.step))
                   for m in self.members]
        scratch = torch.Generator(device)  # for rows nobody reads: no member's stream moves
        runs = []
        for i in due:
            m = self.members[i]
            if not m.eval_envs:
                n = min(tc.eval_envs, tc.eval_episodes)
                m.eval_envs = [self.task.make_eval_env() for _ in range(n)]
            runs.append(EpisodeRun(self.task, m.eval_envs, tc.eval_episodes,
                                   seed_for(m.config.seed, 1, 0)))

        def act(obs: np.ndarray, running: list[int]) -> np.ndarray:
            rows = np.zeros((len(self.members), *obs.shape[1:]), dtype=np.float32)
            rows[due] = obs
            acting = {due[r] for r in running}
            generators = [streams[i] if i in acting else scratch
                          for i in range(len(self.members))]
            with torch.no_grad():
                actions = self.agent.act(torch.as_tensor(rows), greedy=True,
                                         generators=generators)
            return actions.cpu().numpy()[due]

        started = time.perf_counter()
        results = evaluate_many(act, runs, stopping=lambda: self._stop)
        if results is None or self._stop:
            for i in due:
                self.members[i].sinks.event(
                    "interrupted", f"evaluation at step {self.step} stopped; it is redone "
                    "on resume")
            return
        seconds = time.perf_counter() - started
        for i, result in zip(due, results, strict=True):
            m = self.members[i]
            metrics = {**result.metrics(), EVAL_SECONDS: seconds}
            metrics.update(entropy[i])
            metrics[ACTOR_NOISE_SCALE] = self.agent.configs[i].noise_scale
            metrics.update(self._progress(m))
            m.sinks.write(self.step, metrics)
            m.evaluations.append({"step": self.step, **metrics})
            m.saved_step = None  # a checkpoint taken before it lacks it

    # ---- checkpoints --------------------------------------------------------------------------

    def save(self) -> None:
        """Each running member's checkpoint, the state a single run's `save` writes."""
        self._save(self._active())

    def _save(self, members: Sequence[int], name: str = CHECKPOINT_NAME) -> None:
        self._check_finite(None)  # never overwrite a good checkpoint with diverged weights
        for i in members:
            m = self.members[i]
            if not m.active:
                continue
            m.sinks.flush()  # no checkpoint ahead of the stored metrics
            try:
                save_checkpoint(m.run_dir / name, {
                    "config": m.config.to_dict(), "step": self.step,
                    "env_steps": m.online.env_steps, "episodes": m.online.episodes,
                    "evaluations": m.evaluations, "agent": self.agent.member_state(i),
                    "buffer": m.buffer.state_dict(), "episode": m.online.state()},
                    before_replace=m.fence.confirm if m.fence is not None else None)
            except RunDisowned as exc:
                self._disown(i, exc)
                continue
            if name != CHECKPOINT_NAME:
                m.sinks.event("checkpoint", f"step {self.step} ({name})")
                continue
            m.saved_step = self.step
            m.sinks.event("checkpoint", f"step {self.step}")
            keep_history(m.run_dir / name, self.step, m.config.train.keep_checkpoints, m.sinks)

    def _start_after_offline(self) -> None:
        """Members with `from_offline` take their agent and sampling stream from their shared
        offline phase's end; a pack starts there only when all of its members do."""
        starting = [m.config.from_offline is not None for m in self.members]
        if not any(starting):
            return
        if not all(starting):
            raise PackError("pack members start at different steps: some from a shared "
                            "offline phase (from_offline), some from step 0")
        for i, m in enumerate(self.members):
            self.step = start_after_offline(self.agent, i, m.buffer, m.config)

    def _at_shared_offline_end(self) -> bool:
        return self.configs[0].from_offline is not None and \
            self.step == self.train_config.offline_steps

    def _restore(self) -> None:
        """Every member from its folder's checkpoint; they must all be at one step."""
        states = {}
        for i, m in enumerate(self.members):
            path = m.run_dir / CHECKPOINT_NAME
            if path.exists():
                states[i] = load_checkpoint(path)
        steps = {i: int(s["step"]) for i, s in states.items()}
        found = {steps.get(i, 0) for i in range(len(self.members))}
        if len(found) > 1:
            listed = ", ".join(f"{m.run_dir.name}: {steps.get(i, 0)}"
                               for i, m in enumerate(self.members))
            raise PackError(f"pack members resume from different steps ({listed}); a pack "
                            "trains its members in lockstep: resume them apart")
        for i, state in states.items():
            m = self.members[i]
            if not same_config(state["config"], m.config):
                raise ValueError(f"{m.run_dir / CHECKPOINT_NAME} was written by another run "
                                 "config; resume with the run's own config.json")
            self.agent.load_member_state(i, state["agent"])
            m.buffer.load_state_dict(state["buffer"])
            m.online.restore(int(state["env_steps"]), int(state["episodes"]),
                             state.get("episode"))
            m.evaluations = list(state["evaluations"])
            m.saved_step = int(state["step"])
        self.step = found.pop()
