"""`fino run --run-id A --run-id B ...`: train several queued runs as one pack in this process.

What a worker started with `--pack` runs. Each member holds its own lease (its attempt token)
and writes its own rows, folder and checkpoint; the process writes, per member, what became of
it into the pack's result file (FINO_PACK_RESULT), from which the worker settles each run as it
settles a single run from its exit code. Members whose checkpoints are at another step than the
first member's, or that do not fit in memory when the worker asked for a fitted pack, go back to
the queue untouched (released) and train apart.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from fino.algo.config import ConfigError
from fino.algo.packing import PackTooLarge
from fino.cli.run import KNOWN_ERRORS, StopOnSignal, os_error_line
from fino.exit_codes import ExitCode, MemberCode
from fino.launch.packs import FIT_ENV, RESULT_ENV, write_outcomes
from fino.sinks import LoggerGroup, make_sinks
from fino.train.errors import RunDisowned, TrainingDiverged

if TYPE_CHECKING:
    from fino.config import RunConfig
    from fino.store.db import Store
    from fino.store.lease import LeaseWatch

console = Console(stderr=True)


@dataclass
class Member:
    run_id: int
    config: RunConfig
    run_dir: Path
    watch: LeaseWatch | None


def run_pack(run_ids: list[int], db: str | None, quiet: bool,
             sinks: tuple[str, ...] = ()) -> int:
    """Train the queued runs `run_ids` as one pack; the process's exit code (0: all done).
    `sinks`: loggers for every member besides those its config names."""
    from fino.store.db import Store

    store = Store(db, create=False)
    outcomes: dict[int, dict[str, object]] = {}
    members = _members(store, run_ids, outcomes)
    members = _one_step(store, members, outcomes)
    loggers: list[LoggerGroup] = []
    try:
        if members:
            _train(store, members, outcomes, quiet, sinks, loggers)
    except PackTooLarge as exc:  # the pack asked for does not fit: nothing trained, all back
        for m in members:
            if m.run_id not in outcomes:
                _release(store, m, outcomes, str(exc), code=MemberCode.REFUSED)
        raise ConfigError(str(exc)) from None
    except (*KNOWN_ERRORS, OSError) as exc:  # the whole pack fails, as a single run would
        message = str(exc) if isinstance(exc, KNOWN_ERRORS) else os_error_line(exc)
        for m in members:
            if m.run_id not in outcomes and m.watch is not None:
                m.watch.record_error(message)
        raise
    finally:
        for m in members:
            if m.watch is not None:
                m.watch.stop()
        _write_result(outcomes)
        for group in loggers:
            group.finish()
    codes = {int(o["code"]) for o in outcomes.values()}  # type: ignore[call-overload]
    settled = {ExitCode.DONE, MemberCode.RELEASED}
    if codes <= settled:
        return ExitCode.DONE
    return ExitCode.INTERRUPTED if codes <= settled | {ExitCode.INTERRUPTED} else ExitCode.FAILED


def _members(store: Store, run_ids: list[int],
             outcomes: dict[int, dict[str, object]]) -> list[Member]:
    """The runs with their configs, folders and running lease watches; a member whose attempt
    no longer holds its run is left out (disowned) before anything is read or written."""
    from fino.config import RunConfig
    from fino.store.lease import watch_from_env
    from fino.store.queue import QueueError, get_run

    if len(set(run_ids)) != len(run_ids):
        raise ConfigError(f"--run-id given twice in {run_ids}")
    members = []
    for run_id in run_ids:
        try:
            run = get_run(store, run_id)
        except QueueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            watch = watch_from_env(store, run_id)
        except RunDisowned as exc:  # left out before anything is read or written
            outcomes[run_id] = {"code": ExitCode.DISOWNED, "error": str(exc)}
            continue
        members.append(Member(run_id, RunConfig.from_dict(run.config),
                              Path(run.run_dir or f"runs/{run_id:06d}"), watch))
    return members


def _one_step(store: Store, members: list[Member],
              outcomes: dict[int, dict[str, object]]) -> list[Member]:
    """The members whose checkpoints resume from the first member's step; the others are
    released to train apart (a pack trains in lockstep)."""
    from fino.train.checkpoint import CheckpointError
    from fino.train.pack_trainer import resume_step

    if not members:
        return members
    readable, steps = [], []
    for m in members:
        try:
            steps.append(resume_step(m.run_dir))
            readable.append(m)
        except CheckpointError as exc:  # that member fails alone, as its single run would
            outcomes[m.run_id] = {"code": ExitCode.FAILED, "error": str(exc)}
            if m.watch is not None:
                m.watch.record_error(str(exc))
                m.watch.stop()
    members = readable
    if not members:
        return members
    kept = [m for m, s in zip(members, steps, strict=True) if s == steps[0]]
    for m, step in zip(members, steps, strict=True):
        if step != steps[0]:
            _release(store, m, outcomes, f"its checkpoint is at step {step}, the pack's at "
                     f"{steps[0]}; it trains apart")
    return kept


def _release(store: Store, m: Member, outcomes: dict[int, dict[str, object]],
             why: str, code: int = MemberCode.RELEASED) -> None:
    """Back to the queue as it was claimed (its attempt not counted)."""
    from fino.store.models import Run, RunStatus
    from fino.store.queue import transition

    if m.watch is not None:
        m.watch.stop()
        transition(store, m.run_id, (RunStatus.RUNNING,), RunStatus.QUEUED,
                   token=m.watch.lease.token,
                   message=f"released by its pack: {why}", attempts=Run.attempts - 1)
    outcomes[m.run_id] = {"code": code, "error": why}


def _train(store: Store, members: list[Member], outcomes: dict[int, dict[str, object]],
           quiet: bool, sinks: tuple[str, ...], loggers: list[LoggerGroup]) -> None:
    """Train the pack; each member's loggers (its config's and `sinks`) are added to `loggers`,
    for the caller to finish once their curves are drawn."""
    from fino.backends.registry import load_task
    from fino.store.sink import DatabaseSink
    from fino.train.pack_trainer import PackTrainer, check_packable
    from fino.train.trainer import RunSummary

    configs = [m.config for m in members]
    check_packable(configs)
    task = load_task(configs[0].task)
    if os.environ.get(FIT_ENV) == "1":
        fitted = _fitted_size(task.spec.obs_dim, task.spec.action_dim, configs)
        for m in members[fitted:]:
            _release(store, m, outcomes, f"a fitted pack holds {fitted} runs of this size")
        members = members[:fitted]
    def left(member: int, why: TrainingDiverged | RunDisowned | None) -> None:
        """Say at once what became of a member that left (the worker settles its run while
        the pack goes on), and stop watching its lease."""
        m = members[member]
        outcomes[m.run_id] = outcome_of(why)
        if isinstance(why, TrainingDiverged) and m.watch is not None:
            m.watch.record_error(str(why))
        if m.watch is not None:
            m.watch.stop()
        _write_result(outcomes)

    groups = [LoggerGroup(make_sinks([*m.config.train.sinks, *sinks], m.run_dir, m.config))
              for m in members]
    loggers.extend(groups)
    trainer = PackTrainer(
        [m.config for m in members], [m.run_dir for m in members], task=task,
        sinks_per_member=[[DatabaseSink(store, m.run_id, lease=m.watch), group]
                          for m, group in zip(members, groups, strict=True)],
        fences=[m.watch for m in members],
        resume=any((m.run_dir / "checkpoint.pt").exists() for m in members),
        env_processes=os.cpu_count() or 1, on_leave=left)
    if not quiet:
        console.print(f"pack of {len(members)}: runs {' '.join(str(m.run_id) for m in members)}")
    handler = StopOnSignal(trainer)  # type: ignore[arg-type]  (a pack stops as a run does)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        results = trainer.run()
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
    for m, result, group in zip(members, results, groups, strict=True):
        if isinstance(result, RunSummary):
            code = ExitCode.DONE if result.status == "done" else ExitCode.INTERRUPTED
            outcomes[m.run_id] = {"code": code, "error": None}
            if result.evaluations:
                from fino.train.plots import plot_runs

                plot_runs({m.config.algo: m.run_dir}, m.run_dir / "curves.png",
                          title=f"{m.config.algo} on {m.config.task.name}, seed "
                                f"{m.config.seed}", offline_steps=m.config.train.offline_steps)
                group.artifact(m.run_dir / "curves.png")


def outcome_of(why: TrainingDiverged | RunDisowned | None) -> dict[str, object]:
    """A member that left: failed (diverged), disowned, or stopped on request."""
    if why is None:
        return {"code": ExitCode.INTERRUPTED, "error": None}
    code = ExitCode.DISOWNED if isinstance(why, RunDisowned) else ExitCode.FAILED
    return {"code": code, "error": str(why)}


def _fitted_size(obs_dim: int, action_dim: int, configs: list[RunConfig]) -> int:
    """How many of these members fit in the device's free memory (at least one)."""
    from fino.algo.agent import _checked_device
    from fino.algo.packing import check_pack_fits, estimate_pack_bytes

    device = _checked_device(configs[0].train.device)
    agent = configs[0].agent.resolved(action_dim)
    for size in range(len(configs), 1, -1):
        try:
            check_pack_fits(estimate_pack_bytes(obs_dim, action_dim, agent, size), device, size)
            return size
        except MemoryError:
            continue
    return 1


def _write_result(outcomes: dict[int, dict[str, object]]) -> None:
    path = os.environ.get(RESULT_ENV)
    if path:
        write_outcomes(Path(path), outcomes)
