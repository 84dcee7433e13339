"""The offline-to-online trainer on a real OGBench env with a tiny generated dataset."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import fino
from fino.algo.config import AgentConfig
from fino.backends.base import DatasetMissingError, TaskConfig, TaskError
from fino.backends.registry import load_task
from fino.cli.main import app
from fino.train.checkpoint import CheckpointError, kept_checkpoints, load_checkpoint
from fino.train.config import RunConfig, TrainConfig
from fino.train.trainer import Trainer, TrainingDiverged
from tests.conftest import TASK, task_config


def tiny_config(dataset_dir: Path, **train) -> RunConfig:
    agent = AgentConfig(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32), batch_size=32,
                        alpha=300.0, entropy_samples=16, entropy_states=8)
    schedule = dict(offline_steps=60, online_steps=60, eval_interval=40, eval_episodes=2,
                    eval_envs=2, log_interval=10, save_interval=40, entropy_interval=30,
                    compile=False)
    schedule.update(train)
    return RunConfig(task=task_config(dataset_dir),
                     agent=agent, train=TrainConfig(**schedule), seed=0)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class AtStep:
    """A sink that calls `action()` once, when it has logged `step` or later."""

    def __init__(self, step: int, action=lambda: None) -> None:
        self.step, self.action, self.done = step, action, False

    def write(self, step, metrics):
        if step >= self.step and not self.done:
            self.done = True
            self.action()

    def event(self, kind, message):
        pass

    def truncate_after(self, step):
        pass

    def close(self):
        pass


class StopAt(AtStep):
    """Asks `trainer` to stop once it has logged `step` (a user's Ctrl-C)."""

    def __init__(self, step: int) -> None:
        super().__init__(step, lambda: self.trainer.request_stop())
        self.trainer = None


def test_offline_then_online_run_evaluates_logs_updates_beta_and_checkpoints(
        tmp_path, task, dataset_dir):
    config = tiny_config(dataset_dir)
    summary = Trainer(config, tmp_path, task=task).run()
    assert summary.status == "done" and summary.step == 120 and summary.env_steps == 60
    assert [e["step"] for e in summary.evaluations] == [0, 40, 80, 120]
    assert summary.offline_score == summary.evaluations[1]["eval/score"]  # last eval <= 60
    rows = records(tmp_path)
    logged = {r["step"] for r in rows if "critic/loss" in r}
    assert logged == set(range(10, 121, 10))
    assert {r["step"] for r in rows if "system/rss_gib" in r} == logged  # machine, at log steps
    betas = [r["policy/beta"] for r in rows if "policy/beta" in r and r["step"] in (90, 120)]
    assert betas and all(b != config.agent.beta_init for b in betas)  # β moved online
    assert any("online/episode_return" in r for r in rows)  # 40-step episodes ended online
    csv_lines = (tmp_path / "eval.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,phase") and len(csv_lines) == 5
    times = [row["wall_time"] for row in csv.DictReader(csv_lines)]
    assert all(re.fullmatch(r"\d{10}\.\d{3}", t) for t in times), times  # Unix s, to the ms
    assert abs(float(times[-1]) - time.time()) < 600
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 120 and state["buffer"]["num_online_added"] == 60
    # The last train.keep_checkpoints (2) are kept, the newest being checkpoint.pt itself.
    kept = kept_checkpoints(tmp_path)
    assert [step for step, _ in kept] == [80, 120]
    assert os.path.samefile(kept[-1][1], tmp_path / "checkpoint.pt")
    assert load_checkpoint(kept[0][1])["step"] == 80
    assert load_checkpoint(tmp_path / "offline.pt")["step"] == 60
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["status"] == "done" and written["code"].startswith(fino.__version__)
    assert f"fino {written['code']}" in (tmp_path / "events.log").read_text()


def test_resume_after_an_interruption_continues_exactly(tmp_path, task, dataset_dir):
    config = tiny_config(dataset_dir, save_interval=20)
    straight = Trainer(config, tmp_path / "a", task=task)
    straight.run()

    stopper = StopAt(30)
    interrupted = Trainer(config, tmp_path / "b", task=task, sinks=[stopper])
    stopper.trainer = interrupted
    assert interrupted.run().status == "interrupted"
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 30
    resumed = Trainer(config, tmp_path / "b", task=task, resume=True)
    assert resumed.step == 30
    summary = resumed.run()
    assert summary.status == "done" and summary.step == 120 and summary.env_steps == 60

    for p, q in zip(straight.agent.onestep.parameters(), resumed.agent.onestep.parameters(),
                    strict=True):
        assert torch.equal(p, q)
    strip = [{k: v for k, v in r.items() if not k.startswith(("time", "eval/seconds", "system/"))}
             for r in records(tmp_path / "a")]
    again = [{k: v for k, v in r.items() if not k.startswith(("time", "eval/seconds", "system/"))}
             for r in records(tmp_path / "b")]
    assert again == strip  # nothing lost, nothing duplicated


def test_evaluation_never_moves_the_training_stream(tmp_path, task, dataset_dir):
    # Evaluating with 1 or 2 envs in lockstep (a different batch of greedy draws) must leave
    # training bit-identical: evaluation draws its candidates from a generator of its own.
    one = Trainer(tiny_config(dataset_dir, eval_envs=1), tmp_path / "one", task=task)
    two = Trainer(tiny_config(dataset_dir, eval_envs=2), tmp_path / "two", task=task)
    one.run()
    two.run()
    for p, q in zip(one.agent.onestep.parameters(), two.agent.onestep.parameters(), strict=True):
        assert torch.equal(p, q)


def test_methods_that_differ_in_acting_share_their_offline_phase(tmp_path, task, dataset_dir):
    # Every evaluation also measures the exploring policy's entropy; its draws (states, actions,
    # mixture init) come from a generator of their own, so FINO, its noise-only ablation and
    # Gaussian action noise (which draw different numbers of values when acting) train
    # bit-identically through the offline phase: the ablations start from the same policy.
    trained = []
    for mode in ("entropy_guided", "none", "action_noise"):
        config = tiny_config(dataset_dir, online_steps=0, eval_interval=20)
        config = replace(config, agent=replace(config.agent, exploration=mode))
        trainer = Trainer(config, tmp_path / mode, task=task)
        trainer.run()
        trained.append(trainer)
    assert {len(t.evaluations) for t in trained} == {4}  # steps 0, 20, 40, 60
    def weights(t):
        return [*t.agent.bc_flow.parameters(), *t.agent.onestep.parameters(),
                *t.agent.critic.parameters()]
    for other in trained[1:]:
        for p, q in zip(weights(trained[0]), weights(other), strict=True):
            assert torch.equal(p, q)


def test_how_often_entropy_is_measured_never_changes_training(tmp_path, task, dataset_dir):
    # Evaluating (greedy episodes + an entropy estimate on buffer states) every 20 or every 30
    # steps: different numbers of measurements, the same trained weights.
    trained = []
    for interval in (20, 30):
        trainer = Trainer(tiny_config(dataset_dir, online_steps=0, eval_interval=interval),
                          tmp_path / str(interval), task=task)
        trainer.run()
        trained.append([*trainer.agent.bc_flow.parameters(), *trainer.agent.onestep.parameters(),
                        *trainer.agent.critic.parameters()])
    for p, q in zip(*trained, strict=True):
        assert torch.equal(p, q)


def test_resume_in_the_online_phase_keeps_counters_and_online_data(tmp_path, task, dataset_dir):
    config = tiny_config(dataset_dir)
    stopper = StopAt(90)
    first = Trainer(config, tmp_path, task=task, sinks=[stopper])
    stopper.trainer = first
    first.run()
    assert (first.step, first.env_steps) == (90, 30)
    resumed = Trainer(config, tmp_path, task=task, resume=True)
    assert (resumed.step, resumed.env_steps, resumed.buffer.num_online_added) == (90, 30, 30)
    summary = resumed.run()
    assert (summary.step, summary.env_steps) == (120, 60)
    assert [e["step"] for e in summary.evaluations] == [0, 40, 80, 120]
    steps = [r["step"] for r in records(tmp_path) if "critic/loss" in r]
    assert steps == sorted(set(steps))


def _comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time", "eval/seconds", "system/"))}
            for r in records(run_dir)]


def test_resume_in_the_middle_of_an_online_episode_equals_an_uninterrupted_run(
        tmp_path, task, dataset_dir):
    """MuJoCo replays the episode in progress (same seed, same actions): the resumed run's
    logs, online data and weights equal the uninterrupted run's."""
    config = tiny_config(dataset_dir, save_interval=10)
    straight = Trainer(config, tmp_path / "a", task=task)
    straight.run()
    stopper = StopAt(85)  # stops at the log step 90: 30 steps into the first online episode
    first = Trainer(config, tmp_path / "b", task=task, sinks=[stopper])
    stopper.trainer = first
    first.run()
    saved = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["episode"]
    assert saved is not None and saved["length"] == first.step - 60 == 30
    resumed = Trainer(config, tmp_path / "b", task=task, resume=True)
    resumed.run()
    assert _comparable(tmp_path / "b") == _comparable(tmp_path / "a")
    assert torch.equal(resumed.buffer.state_dict()["rows"]["observations"],
                       straight.buffer.state_dict()["rows"]["observations"])
    for p, q in zip(straight.agent.critic.parameters(), resumed.agent.critic.parameters(),
                    strict=True):
        assert torch.equal(p, q)


class _Unseeded(gymnasium.Wrapper):
    """An env whose dynamics draw from an unseeded source: its episodes cannot be replayed."""

    def step(self, action):
        noise = np.random.default_rng().normal(scale=0.1, size=np.shape(action))
        return self.env.step(np.asarray(action) + noise.astype(np.float32))


def test_an_env_that_cannot_replay_its_episode_starts_a_new_one(tmp_path, task, dataset_dir):
    config = tiny_config(dataset_dir, save_interval=10)
    noisy = replace(task, make_env=lambda: _Unseeded(task.make_env()))
    stopper = StopAt(85)
    first = Trainer(config, tmp_path, task=noisy, sinks=[stopper])
    stopper.trainer = first
    first.run()
    resumed = Trainer(config, tmp_path, task=noisy, resume=True)
    summary = resumed.run()
    assert (summary.step, summary.env_steps) == (120, 60)
    assert "did not replay the episode in progress" in (tmp_path / "events.log").read_text()


def test_a_non_finite_loss_stops_with_the_step_and_the_loss(tmp_path, task, dataset_dir):
    trainer = Trainer(tiny_config(dataset_dir), tmp_path, task=task)
    with torch.no_grad():
        next(trainer.agent.critic.parameters()).fill_(float("nan"))
    # Read on the device at the first log step, named by the step it first happened at.
    with pytest.raises(TrainingDiverged,
                       match=r"step 1 \(offline phase; found at step \d+\).*critic/loss=nan"):
        trainer.run()
    assert not trainer.checkpoint_path.exists()  # diverged weights are never saved
    assert "diverged" in (tmp_path / "events.log").read_text()


def test_a_failing_sink_is_dropped_and_training_goes_on(tmp_path, task, dataset_dir, capsys):
    class Broken(StopAt):
        def write(self, step, metrics):
            raise OSError("disk full")

    summary = Trainer(tiny_config(dataset_dir), tmp_path, task=task, sinks=[Broken(0)]).run()
    assert summary.status == "done"
    assert "Broken failed and was disabled" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path, task, dataset_dir):
    Trainer(tiny_config(dataset_dir, online_steps=0, offline_steps=20), tmp_path,
            task=task).run()
    other = replace(tiny_config(dataset_dir, online_steps=0, offline_steps=20), seed=1)
    with pytest.raises(ValueError, match="another run config"):
        Trainer(other, tmp_path, task=task, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(other, tmp_path / "empty", task=task, resume=True)


@pytest.mark.parametrize("timing", ["pre", "post"])
def test_success_timing_reaches_the_training_and_evaluation_envs(dataset_dir, timing):
    task = load_task(replace(task_config(dataset_dir), success_timing=timing))
    for env in (task.make_env(), task.make_eval_env()):
        assert env.unwrapped._success_timing == timing
        assert env.spec.max_episode_steps == 40


def test_balanced_sampling_runs_offline_to_online(tmp_path, task, dataset_dir):
    trainer = Trainer(tiny_config(dataset_dir, balanced=True, offline_steps=20, online_steps=20),
                      tmp_path, task=task)
    assert trainer.buffer.balanced
    assert trainer.run().status == "done" and trainer.buffer.online.size == 20


def test_a_missing_dataset_names_the_files_and_the_command(tmp_path):
    with pytest.raises(DatasetMissingError) as info:
        load_task(TaskConfig("cube-double", dataset_dir=str(tmp_path)))
    message = str(info.value)
    assert str(tmp_path / "cube-double-play-v0.npz") in message
    assert "fino data generate cube-double-play-v0" in message
    with pytest.raises(DatasetMissingError, match=r"cannot be regenerated.*fino data download"):
        load_task(TaskConfig("humanoidmaze", dataset_dir=str(tmp_path)))


def test_a_corrupt_dataset_file_is_a_clear_error(tmp_path, dataset_dir):
    for name in ("cube-single-play-v0.npz", "cube-single-play-v0-val.npz"):
        (tmp_path / name).write_bytes((dataset_dir / name).read_bytes())
    (tmp_path / "cube-single-play-v0.npz").write_bytes(np.random.bytes(1000))
    with pytest.raises(TaskError, match="corrupt or incomplete"):
        load_task(TaskConfig(TASK, dataset_dir=str(tmp_path)))
    truncated = (dataset_dir / "cube-single-play-v0.npz").read_bytes()
    (tmp_path / "cube-single-play-v0.npz").write_bytes(truncated[: len(truncated) // 2])
    with pytest.raises(TaskError, match="corrupt or incomplete"):
        load_task(TaskConfig(TASK, dataset_dir=str(tmp_path)))
    assert not zipfile.is_zipfile(tmp_path / "cube-single-play-v0.npz")


def test_fino_run_cli_trains_resumes_and_reports_errors(tmp_path, dataset_dir):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["run", "--task", "cube-single", "--task-id", "2", "--dataset-dir", str(dataset_dir),
            "--set", "task.options={max_episode_steps=20}", "--offline-steps", "20",
            "--online-steps", "20", "--eval-interval", "20",
            "--eval-episodes", "2", "--set", "train.eval_envs=2", "--set", "train.compile=false",
            "--set", "agent.actor_hidden_dims=[16]", "--set", "agent.value_hidden_dims=[16]",
            "--set", "agent.entropy_samples=8", "--set", "agent.entropy_states=4",
            "--set", "agent.batch_size=16", "--out", str(out), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "curves.png").stat().st_size > 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["name"] == TASK and config["preset"] == "cube.toml:paper"
    again = runner.invoke(app, ["run", "--resume", str(out), "--quiet"])
    assert again.exit_code == 0, again.output  # already complete: nothing left to do

    bad = runner.invoke(app, ["run", "--task", "cube-sigle"])
    assert bad.exit_code == 1 and "unknown task" in bad.output
    missing = runner.invoke(app, ["run", "--resume", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "not a run folder" in missing.output
    bad_set = runner.invoke(app, ["run", "--task", "cube-single", "--set", "agent.alpha=-1"])
    assert bad_set.exit_code == 1 and "alpha" in bad_set.output


def test_a_run_resumed_at_step_0_does_not_repeat_its_step_0_evaluation(tmp_path, task,
                                                                       dataset_dir):
    config = tiny_config(dataset_dir)
    straight = Trainer(config, tmp_path / "a", task=task)
    straight.run()
    stopper = StopAt(0)  # stops right after the step-0 evaluation
    first = Trainer(config, tmp_path / "b", task=task, sinks=[stopper])
    stopper.trainer = first
    assert first.run().status == "interrupted" and first.step == 0
    summary = Trainer(config, tmp_path / "b", task=task, resume=True).run()
    assert [e["step"] for e in summary.evaluations] == [0, 40, 80, 120]
    written = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert [e["step"] for e in written["evaluations"]] == [0, 40, 80, 120]
    rows = list(csv.DictReader((tmp_path / "b" / "eval.csv").read_text().splitlines()))
    assert [row["step"] for row in rows] == ["0", "40", "80", "120"]
    assert _comparable(tmp_path / "b") == _comparable(tmp_path / "a")


class _StopsTheTrainer(gymnasium.Wrapper):
    """An evaluation env that asks the trainer to stop at the first step of its second
    episode (a user's Ctrl-C mid-evaluation), counting what it is asked to do after that."""

    def __init__(self, env: gymnasium.Env, trainer: list[Trainer]) -> None:
        super().__init__(env)
        self.trainer, self.resets, self.steps_after_stop = trainer, 0, 0

    def reset(self, **kwargs):
        self.resets += 1
        return self.env.reset(**kwargs)

    def step(self, action):
        if self.trainer[0].stop_requested:
            self.steps_after_stop += 1
        elif self.resets == 2:
            self.trainer[0].request_stop()
        return self.env.step(action)


def test_a_stop_during_an_evaluation_ends_it_at_once_and_resume_redoes_it(tmp_path, task,
                                                                          dataset_dir):
    config = tiny_config(dataset_dir, offline_steps=40, online_steps=0, eval_episodes=5,
                         eval_envs=1)
    straight = Trainer(config, tmp_path / "a", task=task)
    straight.run()
    holder: list[Trainer] = []
    envs: list[_StopsTheTrainer] = []

    def make_eval_env() -> gymnasium.Env:
        envs.append(_StopsTheTrainer(task.make_eval_env(), holder))
        return envs[-1]

    stopped = Trainer(config, tmp_path / "b", task=replace(task, make_eval_env=make_eval_env))
    holder.append(stopped)
    summary = stopped.run()
    assert summary.status == "interrupted" and summary.evaluations == []
    assert [(e.resets, e.steps_after_stop) for e in envs] == [(2, 0)]  # not 5 episodes
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 0
    assert (tmp_path / "b" / "eval.csv").read_text().splitlines() == [
        (tmp_path / "a" / "eval.csv").read_text().splitlines()[0]]  # the header only
    assert "evaluation at step 0 stopped" in (tmp_path / "b" / "events.log").read_text()
    resumed = Trainer(config, tmp_path / "b", task=task, resume=True).run()
    assert resumed.status == "done" and [e["step"] for e in resumed.evaluations] == [0, 40]
    assert _comparable(tmp_path / "b") == _comparable(tmp_path / "a")


class _CtrlCTwiceWhileSaving:
    """A fence whose check before a checkpoint's rename is where the user presses Ctrl-C
    twice, on the run's second checkpoint."""

    lost = None

    def __init__(self) -> None:
        self.saves, self.handler = 0, None

    def confirm(self) -> None:
        self.saves += 1
        if self.saves == 2:
            self.handler(signal.SIGINT, None)
            self.handler(signal.SIGINT, None)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, task,
                                                                      dataset_dir):
    from fino.cli.run import StopOnSignal, forced_stop_message

    config = tiny_config(dataset_dir, save_interval=20)
    fence = _CtrlCTwiceWhileSaving()
    trainer = Trainer(config, tmp_path, task=task, fence=fence)
    fence.handler = StopOnSignal(trainer)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20  # the first, intact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert f"fino run --resume {tmp_path}" in forced_stop_message(tmp_path)
    resumed = Trainer(config, tmp_path, task=task, resume=True)
    assert resumed.run().status == "done"


def test_a_repeated_sigterm_only_asks_again(tmp_path, task, dataset_dir):
    from fino.cli.run import StopOnSignal

    trainer = Trainer(tiny_config(dataset_dir), tmp_path, task=task)
    handler = StopOnSignal(trainer)
    handler(signal.SIGTERM, None)
    handler(signal.SIGTERM, None)  # a worker's stop, repeated: still a clean stop
    assert trainer.stop_requested and trainer.run().status == "interrupted"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 0


def test_the_progress_bar_says_it_is_stopping_until_the_run_returns():
    from rich.progress import Progress

    from fino.cli.run import STOPPING, RichProgress

    bar = RichProgress(Progress(), "fino seed 0", 100)
    bar.on_progress(10, 100, "offline", None)
    bar.on_stop(STOPPING)
    bar.on_progress(20, 100, "offline", 1.0)
    bar.on_message("evaluating at step 20")
    [task] = bar.progress.tasks
    assert task.fields["phase"] == STOPPING and "Ctrl-C again" in STOPPING
    assert task.completed == 20
