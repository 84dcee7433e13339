"""`fino tune`: a real small study on the queue, resumption, pruning, search-space errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import select
from typer.testing import CliRunner

from fino.backends.base import TaskConfig
from fino.cli.main import app
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Metric, Run
from fino.store.queue import claim_next
from fino.tune.space import SpaceError, default_space, load_space, make_param
from fino.tune.study import NO_WORKER, Orchestrator, Parked, StudySpec, open_storage
from fino.tune.summary import snapshot, study_run_status
from tests.queue_fixtures import queue_pendulum, start_worker, tiny_sets

SPACE = [make_param("noise_scale", {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                    "test"),
         make_param("num_candidates", {"type": "int", "low": 1, "high": 4}, "test")]


def spec(dataset: Path, tmp_path: Path, trials: int, sets: list[str], **kw) -> StudySpec:
    return StudySpec(name="s", task=TaskConfig("Pendulum-v1", backend="gymnasium",
                                                dataset=str(dataset)),
                     space=SPACE, trials=trials, seeds=[0], overrides=sets,
                     runs_dir=tmp_path / "runs", **kw)


def final_scores(store: Store, run_ids: list[int]) -> list[float]:
    with store.read() as session:
        return [session.execute(select(Metric.value).where(
            Metric.run_id == i, Metric.key == "eval/score").order_by(Metric.step.desc())
            .limit(1)).scalar_one() for i in run_ids]


def test_a_small_study_completes_with_two_workers(tmp_path, dataset):
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    storage = open_storage(str(tmp_path / "optuna.journal"))
    orchestrator = Orchestrator(store, spec(dataset, tmp_path, 3, tiny_sets(), parallel=2),
                                storage, sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.NopPruner(), poll_interval=0.3)
    workers = [start_worker(store.url, "--heartbeat", "0.5", cwd=tmp_path) for _ in range(2)]
    try:
        progress = orchestrator.run()
    finally:
        for w in workers:
            w.send_signal(signal.SIGINT)
            w.communicate(timeout=60)
    assert progress.complete == 3 and progress.running == 0
    study = optuna.load_study(study_name="s", storage=storage)
    with store.read() as session:
        runs = session.execute(select(Run).where(Run.study == "s")).scalars().all()
    assert sorted(r.trial for r in runs) == [0, 1, 2] and {r.status for r in runs} == {"done"}
    for trial in study.trials:
        ids = trial.user_attrs["run_ids"]
        assert trial.value == pytest.approx(sum(final_scores(store, ids)) / len(ids))
        run = next(r for r in runs if r.trial == trial.number)
        assert run.config["agent"]["noise_scale"] == pytest.approx(trial.params["noise_scale"])
        assert run.config["agent"]["num_candidates"] == trial.params["num_candidates"]
    assert study.best_value == max(t.value for t in study.trials)


def _tune_command(tmp_path: Path, dataset: Path, trials: int) -> list[str]:
    args = [sys.executable, "-m", "fino.cli.main", "tune", "--task", "Pendulum-v1",
            "--trials", str(trials), "--sampler", "random", "--pruner", "none",
            "--study", "resume", "--poll", "0.3", "--optuna-storage",
            str(tmp_path / "optuna.journal"), "--db", str(tmp_path / "experiments.db"),
            "--space", str(tmp_path / "space.toml")]
    args += ["--backend", "gymnasium", "--dataset", str(dataset)]
    for item in tiny_sets():
        args += ["--set", item]
    return args


def test_killing_the_orchestrator_and_rerunning_continues_the_study(tmp_path, dataset):
    (tmp_path / "space.toml").write_text(
        "[params.noise_scale]\ntype = 'float'\nlow = 0.01\nhigh = 0.5\nlog = true\n")
    command = _tune_command(tmp_path, dataset, trials=3)
    worker = start_worker(f"sqlite:///{tmp_path / 'experiments.db'}", "--heartbeat", "0.5",
                          cwd=tmp_path)
    try:
        first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        store = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if (tmp_path / "experiments.db").exists():
                store = store or Store(f"sqlite:///{tmp_path / 'experiments.db'}")
                with store.read() as session:
                    if session.execute(select(Run.id).where(Run.status == "done")).first():
                        break
            time.sleep(0.3)
        assert first.poll() is None, first.communicate()[0]
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=60)
    study = optuna.load_study(study_name="resume",
                              storage=open_storage(str(tmp_path / "optuna.journal")))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    with store.read() as session:
        runs = session.execute(select(Run).where(Run.study == "resume")).scalars().all()
    per_trial = {}
    for run in runs:
        per_trial.setdefault(run.trial, []).append(run)
    assert all(len(v) == 1 for v in per_trial.values())  # one seed: one run per trial
    for trial in complete:
        [run] = per_trial[trial.number]
        assert run.status == "done"
        assert trial.value == pytest.approx(final_scores(store, [run.id])[0])


def test_pruned_trials_stop_their_runs(tmp_path, dataset):
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    long_runs = tiny_sets(offline=5000, online=100, save=500, log=50)
    long_runs[2] = "train.eval_interval=20"  # an early report to prune on
    orchestrator = Orchestrator(
        store, spec(dataset, tmp_path, 2, long_runs), open_storage(str(tmp_path / "j")),
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.ThresholdPruner(lower=1e9),  # prunes at the first report
        poll_interval=0.3)
    worker = start_worker(store.url, "--heartbeat", "0.5", cwd=tmp_path)
    try:
        started = time.monotonic()
        progress = orchestrator.run()
        assert progress.pruned == 2 and progress.complete == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            orchestrator.reconcile()
            with store.read() as session:
                statuses = set(session.execute(select(Run.status)).scalars())
            if statuses == {"pruned"}:
                break
            time.sleep(0.3)
        assert statuses == {"pruned"}
        assert time.monotonic() - started < 120
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=60)


@pytest.mark.parametrize(("text", "message"), [
    ("[params.noise_scale\n", "not valid TOML"),
    ("[params.bogus]\ntype = 'float'\nlow = 0.1\nhigh = 1.0\n", "unknown parameter 'bogus'"),
    ("[params.noise_scale]\ntype = 'float'\nlow = 0.5\nhigh = 0.5\n", "empty range"),
    ("[params.noise_scale]\ntype = 'float'\nlow = 0.0\nhigh = 0.5\nlog = true\n", "low > 0"),
    ("[params.num_candidates]\ntype = 'int'\nlow = 1.5\nhigh = 4\n", "integers"),
    ("[params.noise_schedule]\ntype = 'categorical'\nchoices = []\n", "non-empty"),
    ("[params.alpha]\ntype = 'gaussian'\n", "type must be"),
    ("[space]\n", "unknown top-level"),
])
def test_bad_search_space_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message):
        load_space(path)


def test_default_space_and_alpha_range():
    names = [p.name for p in default_space(alpha=300.0, schedule=True)]
    assert names == ["noise_scale", "num_candidates", "alpha", "noise_schedule"]
    alpha = default_space(alpha=300.0)[2]
    assert (alpha.low, alpha.high, alpha.log) == (100.0, 900.0, True)
    assert make_param("train.balanced", {"type": "categorical", "choices": [True, False]},
                      "t").path == "train.balanced"


def _orchestrator(store: Store, dataset: Path, tmp_path: Path, **kw) -> Orchestrator:
    trials, parallel = kw.pop("trials", 5), kw.pop("parallel", 1)
    return Orchestrator(store, spec(dataset, tmp_path, trials, tiny_sets(), parallel=parallel),
                        open_storage(str(tmp_path / "optuna.journal")),
                        sampler=optuna.samplers.RandomSampler(seed=0),
                        pruner=optuna.pruners.NopPruner(), **kw)


def test_a_waiting_trial_is_queued_and_the_tuner_says_why(tmp_path, dataset):
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    other = queue_pendulum(store, dataset, tmp_path / "runs", range(1))  # not the study's
    assert _orchestrator(store, dataset, tmp_path, worker_patience=60.0).step().hint is None
    orchestrator = _orchestrator(store, dataset, tmp_path, worker_patience=0.0)
    progress = orchestrator.step()
    assert (progress.queued, progress.running, progress.hint) == (1, 0, NO_WORKER)
    assert claim_next(store, host="h", pid=1, among=other)  # a worker busy with other work
    progress = orchestrator.step()
    assert progress.hint is not None and progress.hint.startswith(
        "1 trial run(s) wait in the queue while the workers run 1 run(s)")
    [mine] = orchestrator.run_ids()
    assert claim_next(store, host="h", pid=1, among=[mine])
    progress = orchestrator.step()
    assert (progress.queued, progress.running, progress.hint) == (0, 1, None)


def test_parking_cancels_queued_runs_and_the_same_command_requeues_them(tmp_path, dataset):
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    first = _orchestrator(store, dataset, tmp_path, parallel=2)
    assert first.step().queued == 2
    waiting, claimed = first.run_ids()
    assert claim_next(store, host="h", pid=1, among=[claimed])
    first.request_stop()
    assert first.park() == Parked(cancelled=[waiting], running=[claimed])
    assert claim_next(store, host="h", pid=2) is None  # a later worker starts nothing of it
    run_status = study_run_status(store, "s")
    assert run_status == {waiting: "cancelled", claimed: "running"}
    shot = snapshot(open_storage(str(tmp_path / "optuna.journal")), "s", run_status)
    assert [t.state for t in shot.trials] == ["parked", "running"]
    second = _orchestrator(store, dataset, tmp_path, parallel=2)
    progress = second.step()
    assert study_run_status(store, "s") == {waiting: "queued", claimed: "running"}
    assert (progress.queued, progress.running, progress.failed) == (1, 1, 0)
    assert second.run_ids() == [waiting, claimed]  # the same trials, none asked anew


def test_ctrl_c_in_fino_tune_cancels_its_queued_runs_and_says_how_to_continue(tmp_path,
                                                                              dataset):
    (tmp_path / "space.toml").write_text(
        "[params.noise_scale]\ntype = 'float'\nlow = 0.01\nhigh = 0.5\nlog = true\n")
    tune = subprocess.Popen(_tune_command(tmp_path, dataset, trials=3), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(tune.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any("no worker is serving the queue" in line for line in list(lines)):
        assert tune.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    tune.send_signal(signal.SIGINT)
    assert tune.wait(timeout=60) == 130
    reader.join(timeout=10)
    said = " ".join("".join(lines).split())
    assert "cancelled the queued run(s) 1 so that no worker starts them; the same command " \
           "requeues them and continues study resume" in said
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    assert study_run_status(store, "resume") == {1: "cancelled"}


def test_workers_run_the_studys_trials_here_and_nothing_else(tmp_path, dataset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    [other] = queue_pendulum(store, dataset, tmp_path / "runs", range(1))
    (tmp_path / "space.toml").write_text(
        "[params.num_candidates]\ntype = 'int'\nlow = 1\nhigh = 4\n")
    command = [*_tune_command(tmp_path, dataset, trials=2)[3:], "--workers", "1"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert result.output.count(f"optuna-dashboard {tmp_path / 'optuna.journal'} (pip "
                               "install optuna-dashboard)") == 1
    assert set(study_run_status(store, "resume").values()) == {"done"}
    assert queue.get_run(store, other).status == "queued"
    study = optuna.load_study(study_name="resume",
                              storage=open_storage(str(tmp_path / "optuna.journal")))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_trials_failing_in_a_row_stop_the_study_with_the_runs_error(tmp_path, dataset):
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    orchestrator = _orchestrator(store, dataset, tmp_path, trials=10)
    for _ in range(3):
        progress = orchestrator.step()
        assert orchestrator.gave_up is None and progress.queued == 1
        [run_id] = [i for i in orchestrator.run_ids()
                    if queue.get_run(store, i).status == "queued"]
        claim = claim_next(store, host="h", pid=1, among=[run_id])
        queue.transition(store, run_id, ("running",), "failed", token=claim.token,
                         error="OGBench dataset cube-single-play-v0 not found")
    progress = orchestrator.step()
    assert orchestrator.gave_up.startswith("3 trials in a row failed")
    assert "dataset cube-single-play-v0 not found" in orchestrator.gave_up
    assert progress.failed == 3 and progress.queued == 0  # nothing asked after the third


def test_trials_asked_for_a_pack_share_what_a_pack_cannot_vary_and_train_as_one(
        tmp_path, dataset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    (tmp_path / "space.toml").write_text(
        "[params.noise_scale]\ntype = 'float'\nlow = 0.01\nhigh = 0.5\nlog = true\n"
        "[params.num_candidates]\ntype = 'int'\nlow = 1\nhigh = 8\n")
    command = [*_tune_command(tmp_path, dataset, trials=4)[3:], "--workers", "1",
               "--parallel", "4", "--pack", "4"]
    command[command.index("random")] = "tpe"
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    with store.read() as session:
        runs = session.execute(select(Run).where(Run.study == "resume")).scalars().all()
    assert len(runs) == 4 and {r.status for r in runs} == {"done"}
    assert len({r.pack_id for r in runs}) == 1 and runs[0].pack_id is not None
    assert len({r.config["agent"]["num_candidates"] for r in runs}) == 1
    assert len({r.config["agent"]["noise_scale"] for r in runs}) == 4
    study = optuna.load_study(study_name="resume",
                              storage=open_storage(str(tmp_path / "optuna.journal")))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
