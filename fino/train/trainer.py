"""The offline-to-online trainer (spec §5): offline updates on D, then one env step and one
update per online step, evaluations, entropy estimates and β updates, checkpoints."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from fino.algo.agent import FinoAgent, NonFiniteLoss
from fino.algo.config import ConfigError
from fino.algo.matmul import configure_cuda_matmul, configure_matmul
from fino.backends.base import Task
from fino.backends.registry import load_task
from fino.data.buffer import ReplayBuffer
from fino.metric_keys import (
    ACTOR_NOISE_SCALE,
    ENV_STEPS_PER_SEC,
    EVAL_SCORE,
    EVAL_SECONDS,
    POLICY_BETA,
    POLICY_ENTROPY,
    POLICY_ENTROPY_TARGET,
    PROGRESS_ENV_STEPS,
    PROGRESS_ONLINE,
    UPDATES_PER_SEC,
)
from fino.provenance import MACHINE_MARK, code_version, machine
from fino.train.checkpoint import (
    CHECKPOINT_NAME,
    keep_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from fino.train.config import CONFIG_NAME, RunConfig, same_config
from fino.train.episode import OnlineEpisodes
from fino.train.errors import RunDisowned, TrainingDiverged
from fino.train.evaluate import EvalResult, evaluate, greedy_actor
from fino.train.offline_start import OFFLINE_NAME, start_after_offline
from fino.train.seeds import seed_for
from fino.train.sinks import EvalCsvSink, EventLogSink, JsonlSink, Sink, SinkGroup
from fino.train.system_metrics import SystemMetrics

SUMMARY_NAME = "summary.json"
_PROGRESS_EVERY = 50  # steps between progress callbacks (cheap, but not free)


class Fence(Protocol):
    """The run's lease (a worker's child): `lost` says why the attempt no longer holds the run
    (None while it does); `confirm()` checks afresh and raises RunDisowned."""

    lost: str | None

    def confirm(self) -> None: ...


class ProgressListener(Protocol):
    """Told about the run's progress (a progress bar, a heartbeat)."""

    def on_progress(self, step: int, total: int, phase: str, score: float | None) -> None: ...

    def on_message(self, message: str) -> None: ...


TrainingEnd = Literal["done", "interrupted"]  # all steps trained, or stopped on request


@dataclass
class RunSummary:
    status: TrainingEnd
    step: int
    total_steps: int
    env_steps: int
    offline_score: float | None  # the last evaluation of the offline phase
    final_score: float | None
    best_score: float | None
    evaluations: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    code: str = field(default_factory=code_version)  # fino's version (+ commit) that ran

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_sinks(run_dir: Path, extra: list[Sink] | None = None) -> SinkGroup:
    """A run folder's file sinks (metrics.jsonl, eval.csv, events.log) and any `extra`."""
    return SinkGroup([JsonlSink(run_dir / "metrics.jsonl"), EvalCsvSink(run_dir / "eval.csv"),
                      EventLogSink(run_dir / "events.log"), *(extra or [])])


def keep_history(path: Path, step: int, keep: int, sinks: SinkGroup) -> None:
    """Keep the checkpoint just written among the last `keep`; failing that (a full disk) is
    said in the run's events, never fatal: `checkpoint.pt` itself was written."""
    try:
        keep_checkpoint(path, step, keep)
    except OSError as exc:
        sinks.event("warning", f"could not keep checkpoint step {step} in "
                    f"{path.parent / 'checkpoints'}: {exc}")


def entropy_draws(buffer: Any, config: RunConfig, step: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Generator]:
    """The states and the sampling generator of the entropy estimate at `step`, seeded by
    (seed, step) and apart from the training stream."""
    states = torch.Generator().manual_seed(seed_for(config.seed, 3, step))
    obs = buffer.sample(config.agent.entropy_states, states).observations
    draws = torch.Generator(device).manual_seed(seed_for(config.seed, 4, step))
    return obs, draws


def summarize(config: RunConfig, status: TrainingEnd, step: int, env_steps: int,
              evaluations: list[dict[str, float]], wall_time: float) -> RunSummary:
    """A run's summary from its counters and evaluations."""
    tc = config.train
    offline = [e for e in evaluations if e["step"] <= tc.offline_steps]
    scores = [e[EVAL_SCORE] for e in evaluations]
    return RunSummary(
        status=status, step=step, total_steps=tc.total_steps, env_steps=env_steps,
        offline_score=offline[-1][EVAL_SCORE] if offline else None,
        final_score=scores[-1] if scores else None,
        best_score=max(scores) if scores else None,
        evaluations=evaluations, wall_time=wall_time)


class Trainer:
    """Runs one RunConfig in `run_dir`; `resume=True` continues from its checkpoint."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        *,
        task: Task | None = None,
        sinks: list[Sink] | None = None,
        progress: ProgressListener | None = None,
        resume: bool = False,
        fence: Fence | None = None,
    ) -> None:
        """`fence`: stop without writing once the attempt no longer holds its run."""
        self.config = config
        self.fence = fence
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tc = config.train
        if tc.threads:
            torch.set_num_threads(tc.threads)
        configure_matmul(tc.matmul)
        owns_task = task is None
        self.task = task or load_task(config.task)
        spec = self.task.spec
        self.agent = FinoAgent(spec.obs_dim, spec.action_dim, config.agent, seed=config.seed,
                               device=tc.device, compile=tc.compile, precision=tc.precision,
                               cuda_graphs=tc.cuda_graphs)
        try:
            configure_cuda_matmul(tc.matmul_precision, self.agent.device)
        except ValueError as exc:  # device "auto" resolved to a CPU
            raise ConfigError(f"train.{exc}") from None
        self.buffer = ReplayBuffer(self.task.train_dataset, capacity=tc.buffer_size,
                                   balanced=tc.balanced, seed=config.seed)
        if owns_task:  # the buffer holds the offline rows now: the arrays would be a second copy
            self.task = replace(self.task, train_dataset={}, val_dataset=None)
        self.progress = progress
        self.step = 0
        self.online = OnlineEpisodes(self.task, config.seed,
                                     on_replay_failed=lambda m: self.sinks.event("resumed", m))
        self.evaluations: list[dict[str, float]] = []
        self._stop = False
        self._eval_envs: list[Any] = []
        self._last_entropy: tuple[int, float] | None = None
        self._compiled = not tc.compile  # the first update in this process compiles it
        self._system = SystemMetrics(self.agent.device)
        self._saved_step: int | None = None
        self._offline_state: dict[str, Any] | None = None  # the shared offline phase's end
        if resume:
            self._restore()
        else:
            if config.from_offline:  # the shared offline phase's end: weights and stream
                self.step = start_after_offline(self.agent, 0, self.buffer, config)
            (self.run_dir / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2))
        self.sinks = run_sinks(self.run_dir, sinks)
        # Drop what was logged after the checkpoint (or, starting afresh in a folder an earlier
        # attempt used, everything): a resumed run never duplicates or leaves stale metrics.
        self.sinks.truncate_after(self.step if resume else -1)
        if resume:
            self.sinks.event("resumed", f"from step {self.step}")
        elif config.from_offline:
            self.sinks.event("started", f"online phase from the offline phase of "
                             f"{config.from_offline} (step {self.step})")

    # ---- public -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and return at the next step boundary, or during an
        evaluation before its next env step (the evaluation is then redone on resume);
        signal-safe."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def run(self) -> RunSummary:
        tc = self.config.train
        start = time.perf_counter()
        self.sinks.event("started", f"{self.config.algo} on {self.task.spec.name}, step "
                         f"{self.step}/{tc.total_steps}, fino {code_version()}"
                         f"{MACHINE_MARK}{machine(str(self.agent.device))}")
        try:
            # Due here and not yet recorded: a fresh run's step-0 evaluation, or one that a
            # stop interrupted (a resumed run never repeats a recorded evaluation).
            if (self._evaluation_due() or self._at_shared_offline_end()) and \
                    not self._evaluated_here():
                self._evaluate()
            window = (time.perf_counter(), self.step, self.env_steps)
            while self.step < tc.total_steps:
                if self.fence is not None and self.fence.lost:
                    raise RunDisowned(self.fence.lost)
                if self._stop:
                    break
                online = self.step >= tc.offline_steps
                if online:
                    self._env_step()
                self._announce_compile()
                update_metrics = self.agent.update(
                    self.buffer.sample(self.config.agent.batch_size))
                self.step += 1
                metrics: dict[str, float] = {}
                if online and (self.step - tc.offline_steps) % tc.resolved_entropy_interval == 0:
                    self._check_finite(update_metrics)
                    metrics.update(self._entropy_and_beta(update_beta=True))
                if self.step % tc.log_interval == 0:
                    self._check_finite(update_metrics)
                    metrics.update(self.agent.info(update_metrics))
                    metrics.update(self._throughput(window))
                    metrics.update(self._system.read())
                    window = (time.perf_counter(), self.step, self.env_steps)
                if metrics:
                    self.sinks.write(self.step, {**metrics, **self._progress_metrics()})
                if self._evaluation_due() and not self._stop:  # else redone on resume
                    self._check_finite(update_metrics)
                    self._evaluate()
                if self.step % tc.save_interval == 0 or self.step == tc.total_steps:
                    self.save()
                if self.step == tc.offline_steps:
                    self.save(OFFLINE_NAME)  # kept: online variants may start from it
                if self.progress and self.step % _PROGRESS_EVERY == 0:
                    self.progress.on_progress(self.step, tc.total_steps, self.phase,
                                              self.last_score)
            status: TrainingEnd = ("done" if self.step == tc.total_steps and self._evaluated_here()
                      else "interrupted")
            if status == "interrupted":
                if self._saved_step != self.step:
                    self.save()
                self.sinks.event("interrupted", f"checkpointed at step {self.step}")
            else:
                self.sinks.event("finished", f"step {self.step}")
        except TrainingDiverged as exc:
            self.sinks.event("diverged", str(exc))
            raise
        finally:
            self.sinks.close()
            self.online.close()
            for env in self._eval_envs:
                env.close()
        summary = self.summary(status, time.perf_counter() - start)
        (self.run_dir / SUMMARY_NAME).write_text(json.dumps(summary.to_dict(), indent=2))
        return summary

    @property
    def phase(self) -> str:
        return "online" if self.step >= self.config.train.offline_steps else "offline"

    @property
    def last_score(self) -> float | None:
        return self.evaluations[-1][EVAL_SCORE] if self.evaluations else None

    def summary(self, status: TrainingEnd, wall_time: float) -> RunSummary:
        return summarize(self.config, status, self.step, self.env_steps, self.evaluations,
                         wall_time)

    # ---- steps --------------------------------------------------------------------------------

    def _check_finite(self, update_metrics: Any) -> None:
        """Read the agent's device-side divergence watch (one sync): run at log, entropy,
        evaluation and checkpoint steps, never per update. A non-finite loss stops the run
        before anything is evaluated or saved, so the last checkpoint stays intact."""
        try:
            self.agent.check_finite(update_metrics)
        except NonFiniteLoss as exc:
            first = self.step - self.agent.num_updates + exc.first_update[0] + 1
            phase = "online" if first > self.config.train.offline_steps else "offline"
            raise TrainingDiverged(
                f"non-finite loss at step {first} ({phase} phase; found at step {self.step}): "
                f"{exc}; the last checkpoint (if any) in {self.run_dir} is intact") from exc

    @property
    def env_steps(self) -> int:
        return self.online.env_steps

    @property
    def episodes(self) -> int:
        return self.online.episodes

    def _env_step(self) -> None:
        obs = self.online.observation()
        action = self.agent.act(torch.as_tensor(obs, dtype=torch.float32)).cpu().numpy()
        finished = self.online.step(action, self.buffer)
        if finished is not None:
            self.sinks.write(self.step + 1, {**finished, **self._progress_metrics(offset=1)})

    def _entropy_and_beta(self, update_beta: bool) -> dict[str, float]:
        if self._last_entropy is not None and self._last_entropy[0] == self.step:
            entropy = self._last_entropy[1]
        else:
            # Its own draws (states, actions, mixture init), seeded by (seed, step): measuring
            # the entropy, at evaluations or for β, never moves the training stream, so methods
            # that differ only in how they act share their offline phase bit for bit.
            obs, draws = entropy_draws(self.buffer, self.config, self.step, self.agent.device)
            entropy = self.agent.estimate_entropy(obs, draws)
            self._last_entropy = (self.step, entropy)
        metrics = {POLICY_ENTROPY: entropy,
                   POLICY_ENTROPY_TARGET: float(self.agent.config.entropy_target)}
        if self.agent.config.num_candidates > 1:  # with one candidate β selects nothing (FQL)
            if update_beta:
                self.agent.update_beta(entropy)
            metrics[POLICY_BETA] = self.agent.beta_value
        return metrics

    def _evaluation_due(self) -> bool:
        tc = self.config.train
        return self.step % tc.eval_interval == 0 or self.step == tc.total_steps

    def _evaluated_here(self) -> bool:
        return any(e["step"] == self.step for e in self.evaluations)

    def _announce_compile(self) -> None:
        """Say that the first update compiles (minutes at the paper's size, nothing moves)."""
        if self._compiled:
            return
        self._compiled = True
        message = "compiling the update (the first step; up to a few minutes)"
        self.sinks.event("compiling", message)
        if self.progress:
            self.progress.on_message(message)

    def _evaluate(self) -> EvalResult | None:
        """One evaluation, recorded; None (nothing recorded) when a stop interrupted it."""
        tc = self.config.train
        if not self._eval_envs:
            n = min(tc.eval_envs, tc.eval_episodes)
            self._eval_envs = [self.task.make_eval_env() for _ in range(n)]
        if self.progress:
            self.progress.on_message(f"evaluating at step {self.step}")
        started = time.perf_counter()
        actor = greedy_actor(self.agent, seed=seed_for(self.config.seed, 2, self.step))
        result = evaluate(actor, self.task, self._eval_envs, tc.eval_episodes,
                          seed=seed_for(self.config.seed, 1, 0), stopping=lambda: self._stop)
        if result is None or self._stop:  # stopped before the entropy estimate, too
            self.sinks.event("interrupted", f"evaluation at step {self.step} stopped; it is "
                             "redone on resume")
            return None
        metrics = {**result.metrics(), EVAL_SECONDS: time.perf_counter() - started}
        metrics.update(self._entropy_and_beta(update_beta=False))
        metrics[ACTOR_NOISE_SCALE] = self.agent.config.noise_scale
        metrics.update(self._progress_metrics())
        self.sinks.write(self.step, metrics)
        self.evaluations.append({"step": self.step, **metrics})
        self._saved_step = None  # a checkpoint taken before it lacks it
        if self.progress:
            self.progress.on_progress(self.step, tc.total_steps, self.phase, result.score)
        return result

    def _progress_metrics(self, offset: int = 0) -> dict[str, float]:
        return {PROGRESS_ONLINE: float(self.step + offset > self.config.train.offline_steps),
                PROGRESS_ENV_STEPS: float(self.env_steps)}

    def _throughput(self, window: tuple[float, int, int]) -> dict[str, float]:
        t0, step0, env0 = window
        dt = max(time.perf_counter() - t0, 1e-9)
        return {UPDATES_PER_SEC: (self.step - step0) / dt,
                ENV_STEPS_PER_SEC: (self.env_steps - env0) / dt}

    # ---- checkpoints --------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def save(self, name: str = CHECKPOINT_NAME) -> None:
        """Agent, online part of the buffer, counters, evaluations and the online episode in
        progress (its actions: a resumed run replays them), written atomically to `name` in
        the run folder."""
        self._check_finite(None)  # never overwrite a good checkpoint with diverged weights
        self.sinks.flush()  # no checkpoint ahead of the stored metrics: a resume leaves no gap
        save_checkpoint(self.run_dir / name, {
            "config": self.config.to_dict(), "step": self.step, "env_steps": self.env_steps,
            "episodes": self.episodes, "evaluations": self.evaluations,
            "agent": self.agent.state_dict(), "buffer": self.buffer.state_dict(),
            "episode": self.online.state()},
            before_replace=self.fence.confirm if self.fence is not None else None)
        if name != CHECKPOINT_NAME:
            self.sinks.event("checkpoint", f"step {self.step} ({name})")
            return
        self._saved_step = self.step
        self.sinks.event("checkpoint", f"step {self.step}")
        keep_history(self.run_dir / name, self.step, self.config.train.keep_checkpoints,
                     self.sinks)

    def _at_shared_offline_end(self) -> bool:
        """A run that starts after a shared offline phase evaluates there with its own acting
        rule: that is its offline score."""
        return bool(self.config.from_offline) and self.step == self.config.train.offline_steps

    def _restore(self) -> None:
        state = load_checkpoint(self.checkpoint_path)
        if not same_config(state["config"], self.config):
            raise ValueError(f"{self.checkpoint_path} was written by another run config; "
                             "resume with the run's own config.json")
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.step = int(state["step"])
        self.online.restore(int(state["env_steps"]), int(state["episodes"]), state.get("episode"))
        self.evaluations = list(state["evaluations"])
