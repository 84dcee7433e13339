"""The tuning orchestrator: Optuna's only writer (ask/tell). Each trial is a set of ordinary
queued runs (one per seed) that workers execute; results are told back when the runs end.

Optuna's storage lives apart from the experiments database (a journal file by default), as
Optuna advises against many writers on SQLite. Restarting the same command continues the study:
asked trials whose runs exist are followed again, trials asked without runs (a crash in between)
and trials whose runs were lost are failed and their parameters asked again. Ctrl-C parks the
queued runs of the trials in flight (cancelled, so that no worker starts them later); the same
command requeues them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fino.backends.base import TaskConfig
from fino.metric_keys import EVAL_SCORE
from fino.store import queries, queue
from fino.store.db import Store
from fino.store.models import Run, RunStatus, utcnow
from fino.store.queries import series_many
from fino.train.presets import build_run_config
from fino.tune.space import Param, overrides_for
from fino.tune.summary import TrialView, trial_state

optuna.logging.set_verbosity(optuna.logging.WARNING)
FAILURES_IN_A_ROW = 3  # trials failing one after another: a setup error, not bad luck
WORKER_PATIENCE_S = 5.0  # a trial's run queued longer than this without a claim: say why
HEARTBEAT_FRESH_S = 60.0  # a run heartbeating within this has a live worker (the expiry)
NO_WORKER = ("no worker is serving the queue: start `fino worker` in another terminal, or "
             "rerun with --workers N to run trials here")


class TuneError(ValueError):
    """A study that cannot be run as asked; the message says why."""


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """An RDB URL, or a journal file path (the default: one writer, no locking trouble)."""
    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    Path(spec).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(Path(spec).expanduser())))


def make_sampler(name: str, space: list[Param], seed: int, *, batch: bool = False
                 ) -> optuna.samplers.BaseSampler:
    """`batch`: trials are asked several at a time (packs, --parallel): TPE then counts the
    trials in flight as bad ones (constant liar), so a batch spreads over the space."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=batch)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler({p.name: p.grid_values() for p in space}, seed=seed)
    raise TuneError(f"unknown sampler {name!r}: use tpe, random or grid")


def make_pruner(name: str, warmup_steps: int) -> optuna.pruners.BasePruner:
    if name == "median":  # compare online evaluations only: offline scores rank nothing here
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup_steps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise TuneError(f"unknown pruner {name!r}: use median or none")


@dataclass
class StudySpec:
    """What a `fino tune` command asks for."""

    name: str
    task: TaskConfig
    space: list[Param]
    trials: int
    seeds: list[int]
    preset: str | None = None
    parallel: int = 1
    overrides: list[str] = field(default_factory=list)
    key: str = EVAL_SCORE
    runs_dir: Path = Path("runs")
    pack: int = 1  # runs per pack: trials are asked in batches that can share one

    @property
    def batch(self) -> int:
        """Trials asked together, sharing every setting a pack cannot vary (the candidate
        count, the schedule, ...): a pack's worth of runs, at most `parallel` trials."""
        return max(1, min(self.pack // len(self.seeds), self.parallel))

    def signature(self) -> dict[str, Any]:
        """What must not change when a study is continued (JSON-normalised: Optuna stores it
        as JSON)."""
        return json.loads(json.dumps({
                "task": self.task.name, "preset": self.preset, "seeds": self.seeds,
                "key": self.key, "overrides": self.overrides,
                "space": [(p.name, p.path, p.kind, p.low, p.high, p.log, list(p.choices))
                          for p in self.space]}))


@dataclass
class Progress:
    """Trials by state; those in flight by where their runs are (see summary.trial_state)."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0  # in flight, a run claimed by a worker (or settling)
    queued: int = 0  # in flight, its runs waiting for a worker
    parked: int = 0  # in flight, its queued runs cancelled by Ctrl-C
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_trial: int | None = None
    hint: str | None = None  # why trials wait, once they have waited WORKER_PATIENCE_S

    @property
    def in_flight(self) -> int:
        return self.running + self.queued + self.parked


@dataclass(frozen=True)
class Parked:
    """What Ctrl-C did to the trials in flight."""

    cancelled: list[int]  # queued runs, now cancelled (requeued when the study continues)
    running: list[int]  # runs left to their workers (the study follows them when continued)


class Orchestrator:
    """Asks trials, queues their runs, reports intermediate scores, tells results."""

    def __init__(self, store: Store, spec: StudySpec, storage: optuna.storages.BaseStorage, *,
                 sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
                 poll_interval: float = 2.0, worker_patience: float = WORKER_PATIENCE_S,
                 on_update: Callable[[Progress], None] | None = None) -> None:
        if spec.trials < 1 or spec.parallel < 1 or spec.pack < 1 or not spec.seeds:
            raise TuneError("trials, parallel and pack must be >= 1 and seeds non-empty")
        self.store, self.spec = store, spec
        self.poll_interval, self.on_update = poll_interval, on_update
        self.worker_patience = worker_patience
        self._stop = False
        self.gave_up: str | None = None  # why the study stopped itself (failures in a row)
        self._failures_in_a_row = 0
        self._unparked = False
        self._queued_since: dict[int, float] = {}  # run id -> when first seen waiting
        self.study = optuna.create_study(study_name=spec.name, storage=storage,
                                         direction="maximize", sampler=sampler, pruner=pruner,
                                         load_if_exists=True)
        saved = self.study.user_attrs.get("fino")
        if saved is None:
            self.study.set_user_attr("fino", spec.signature())
        elif saved != spec.signature():
            raise TuneError(f"study {spec.name!r} exists with other settings ({saved}); use "
                            "another --study name or the same task, preset, seeds and space")
        # Validate the runs a trial will create before asking anything.
        self._configs({p.name: p.grid_values()[0] for p in spec.space})

    def request_stop(self) -> None:
        self._stop = True

    # ---- the loop ----

    def run(self) -> Progress:
        """Until `trials` trials are complete or pruned (failed ones are asked again), or until
        stopped (trials in flight stay RUNNING; the next run of the command follows them)."""
        while True:
            progress = self.step()
            if self._stop or self.done(progress):
                return progress
            time.sleep(self.poll_interval)

    def step(self) -> Progress:
        """One check: requeue what an earlier Ctrl-C parked (first time only), follow the
        trials in flight, ask new ones while there is room."""
        if not self._unparked:
            self.unpark()
            self._unparked = True
        self.reconcile()
        progress = self.progress()
        while not self._stop:
            left = self.spec.trials - progress.complete - progress.pruned - progress.in_flight
            # Trials waiting in Optuna's queue (retries) come out first, one at a time: a batch
            # enqueues its own fixed settings behind them.
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            batch = min(1 if waiting else self.spec.batch, left)
            if batch < 1 or self.spec.parallel - progress.in_flight < batch:
                break
            self.ask_batch(batch)
            progress = self.progress()
        if self.on_update:
            self.on_update(progress)
        return progress

    def done(self, progress: Progress) -> bool:
        return progress.in_flight == 0 and \
            progress.complete + progress.pruned >= self.spec.trials

    def run_ids(self) -> list[int]:
        """Every run the study has queued (what a local worker may serve)."""
        with self.store.read() as session:
            return list(queries.study_statuses(session, self.spec.name))

    def park(self) -> Parked:
        """After Ctrl-C: cancel the queued runs of the trials in flight, so that no worker
        starts them later, and note them on their trials; running runs are left to their
        workers."""
        runs = self._runs_by_trial()
        out = Parked([], [])
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            parked = [r.id for r in runs.get(frozen.number, []) if r.status == RunStatus.QUEUED
                      and queue.transition(self.store, r.id, (RunStatus.QUEUED,),
                                           RunStatus.CANCELLED,
                                           message=f"parked: `fino tune` of study "
                                                   f"{self.spec.name} stopped; the same command "
                                                   "requeues it")]
            out.running.extend(r.id for r in runs.get(frozen.number, [])
                               if r.status == RunStatus.RUNNING)
            if parked:
                earlier = frozen.user_attrs.get("parked", [])
                optuna.trial.Trial(self.study, frozen._trial_id).set_user_attr(
                    "parked", sorted({*earlier, *parked}))
                out.cancelled.extend(parked)
        return out

    def unpark(self) -> list[int]:
        """Requeue the runs an earlier Ctrl-C parked (they resume from their checkpoints)."""
        requeued = []
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            parked = frozen.user_attrs.get("parked")
            if parked:
                outcome = queue.retry(self.store, parked)
                requeued += [i for i, change in outcome.items()
                             if change.outcome is queue.Outcome.REQUEUED]
                optuna.trial.Trial(self.study, frozen._trial_id).set_user_attr("parked", [])
        return requeued

    def ask_batch(self, size: int) -> list[int]:
        """`size` trials whose runs can share a pack: the first as the sampler likes, the
        others with its values of every setting a pack cannot vary (enqueued, so that the
        sampler draws the rest)."""
        first = self.ask()
        fixed = {p.name: value for p in self.spec.space if not p.packable
                 for value in [self.study.trials[first].params.get(p.name)] if value is not None}
        numbers = [first]
        for _ in range(size - 1):
            if fixed:
                self.study.enqueue_trial(fixed, user_attrs={"batch_of": first})
            numbers.append(self.ask())
        return numbers

    def ask(self) -> int:
        trial = self.study.ask()
        values = {p.name: p.suggest(trial) for p in self.spec.space}
        try:
            ids = queue.add_runs(self.store, self._configs(values), runs_dir=self.spec.runs_dir,
                                 tags=[f"study:{self.spec.name}"], study=self.spec.name,
                                 trial=trial.number)
        except Exception:
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr("run_ids", ids)
        return trial.number

    def _configs(self, values: dict[str, Any]) -> list:
        sets = [*self.spec.overrides, *overrides_for(self.spec.space, values)]
        return [build_run_config(self.spec.task, preset=self.spec.preset, seed=seed,
                                 overrides=sets) for seed in self.spec.seeds]

    def reconcile(self) -> None:
        """Follow every trial in flight: report, prune, tell; settle runs of pruned trials."""
        runs = self._runs_by_trial()
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial_runs = runs.get(frozen.number, [])
            if not trial_runs:  # asked, but the orchestrator died before queueing its runs
                self._fail_and_reask(frozen, "no runs were queued for it")
                continue
            statuses = {r.status for r in trial_runs}
            if RunStatus.LOST in statuses:
                queue.request_cancel(self.store, [r.id for r in trial_runs])
                self._fail_and_reask(frozen, "a run was lost")
            elif statuses & {RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PRUNED}:
                queue.request_cancel(self.store, [r.id for r in trial_runs])
                self.study.tell(frozen.number, state=TrialState.FAIL)
                self._count_failure(frozen.number, trial_runs)
            else:
                self._follow(frozen, trial_runs)
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
            for run in runs.get(frozen.number, []):
                if run.status in (RunStatus.QUEUED, RunStatus.CANCELLED):
                    queue.transition(self.store, run.id, (run.status,), RunStatus.PRUNED,
                                     message=f"pruned by study {self.spec.name} "
                                             f"trial {frozen.number}")

    def _follow(self, frozen: optuna.trial.FrozenTrial, trial_runs: list[Run]) -> None:
        ids = [r.id for r in trial_runs]
        with self.store.read() as session:
            curves = series_many(session, ids, self.spec.key)
        by_step: dict[int, list[float]] = {}
        for steps, values in curves.values():
            for step, value in zip(steps.tolist(), values.tolist(), strict=True):
                by_step.setdefault(int(step), []).append(value)
        trial = optuna.trial.Trial(self.study, frozen._trial_id)
        reported = set(frozen.intermediate_values)
        for step in sorted(by_step):
            if len(by_step[step]) == len(ids) and step not in reported:
                trial.report(sum(by_step[step]) / len(ids), step)
                if trial.should_prune():
                    self._prune(frozen.number, trial_runs)
                    return
        if all(r.status == RunStatus.DONE for r in trial_runs):
            finals = [curves[r.id][1][-1] for r in trial_runs if r.id in curves
                      and len(curves[r.id][1])]
            if len(finals) == len(ids):
                self.study.tell(frozen.number, sum(finals) / len(finals))
                self._failures_in_a_row = 0
            else:
                self.study.tell(frozen.number, state=TrialState.FAIL)

    def _count_failure(self, number: int, trial_runs: list[Run]) -> None:
        """After FAILURES_IN_A_ROW failed trials without a success the study stops itself
        (asking again would queue the same failure forever), naming the last run's error."""
        self._failures_in_a_row += 1
        if self._failures_in_a_row < FAILURES_IN_A_ROW:
            return
        failed = next((r for r in trial_runs if r.status == RunStatus.FAILED), trial_runs[0])
        error = (failed.error or failed.status).strip().splitlines()[-1]
        self.gave_up = (f"{self._failures_in_a_row} trials in a row failed (the last, trial "
                        f"{number}: run {failed.id}: {error}); fix the cause and rerun the same "
                        "command: the study continues")
        self._stop = True

    def _prune(self, number: int, trial_runs: list[Run]) -> None:
        queue.request_cancel(self.store, [r.id for r in trial_runs])
        self.study.tell(number, state=TrialState.PRUNED)
        for run in trial_runs:  # queued ones are cancelled at once: mark them pruned now
            queue.transition(self.store, run.id, (RunStatus.CANCELLED, RunStatus.QUEUED),
                             RunStatus.PRUNED,
                             message=f"pruned by study {self.spec.name} trial {number}")

    def _fail_and_reask(self, frozen: optuna.trial.FrozenTrial, why: str) -> None:
        self.study.tell(frozen.number, state=TrialState.FAIL)
        if frozen.params:
            self.study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number,
                                                                "reason": why})

    def _runs_by_trial(self) -> dict[int, list[Run]]:
        with self.store.read() as session:
            rows = queries.runs_of_study(session, self.spec.name)
        out: dict[int, list[Run]] = {}
        for run in rows:
            out.setdefault(run.trial, []).append(run)
        return out

    def progress(self) -> Progress:
        trials = self.study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in TrialState}
        out = Progress(complete=count[TrialState.COMPLETE], pruned=count[TrialState.PRUNED],
                       failed=count[TrialState.FAIL])
        runs = self._runs_by_trial()
        for t in trials:
            if t.state != TrialState.RUNNING:
                continue
            state = trial_state(TrialView.RUNNING, [r.status for r in runs.get(t.number, [])],
                                parked=bool(t.user_attrs.get("parked")))
            if state == TrialView.QUEUED:
                out.queued += 1
            elif state == TrialView.PARKED:
                out.parked += 1
            else:
                out.running += 1
        out.hint = self._waiting_hint([r for rs in runs.values() for r in rs])
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete:
            best = max(complete, key=lambda t: t.value)
            out.best_value, out.best_params, out.best_trial = best.value, best.params, \
                best.number
        return out

    def _waiting_hint(self, runs: list[Run]) -> str | None:
        """Why the study's queued runs wait, once one has waited `worker_patience` seconds:
        no worker at all (no run anywhere heartbeats), or workers busy with other runs."""
        now = time.monotonic()
        waiting = {r.id for r in runs if r.status == RunStatus.QUEUED}
        self._queued_since = {i: self._queued_since.get(i, now) for i in waiting}
        stuck = [i for i, since in self._queued_since.items()
                 if now - since >= self.worker_patience]
        if not stuck:
            return None
        busy = live_runs(self.store)
        if not busy:
            return NO_WORKER
        return (f"{len(stuck)} trial run(s) wait in the queue while the workers run {busy} "
                "run(s); start another `fino worker` to run more at once")


def live_runs(store: Store, fresh_s: float = HEARTBEAT_FRESH_S) -> int:
    """Runs anywhere in the store whose worker heartbeats: none means no worker is busy (and an
    idle one would have claimed a queued run already)."""
    since = utcnow() - timedelta(seconds=fresh_s)
    with store.read() as session:
        return queries.heartbeating(session, since)
