"""The pack trainer: each member writes what a single Trainer of its config writes."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fino.algo.packing import PackError
from fino.data.buffer import ReplayBuffer, SharedOfflineReplay, dataset_rows
from fino.train.checkpoint import load_checkpoint
from fino.train.config import RunConfig
from fino.train.env_pool import PooledEnv
from fino.train.errors import RunDisowned
from fino.train.pack_trainer import PackTrainer, resume_step
from fino.train.trainer import Trainer, TrainingDiverged
from tests.test_trainer import AtStep, records, tiny_config

TOL = {"rtol": 1e-5, "atol": 1e-5}
SCHEDULE = dict(offline_steps=40, online_steps=40, eval_interval=40, entropy_interval=20,
                log_interval=10, save_interval=40)


def _comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl records without the timing keys (wall-clock, not training)."""
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "system/"))
             and k != "eval/seconds" and k not in ("time", "wall_time")}
            for r in records(run_dir)]


def _assert_same_run(pack_dir: Path, single_dir: Path) -> None:
    got, want = _comparable(pack_dir), _comparable(single_dir)
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for a, b in zip(got, want, strict=True):
        for key in b:
            if isinstance(b[key], float):
                torch.testing.assert_close(a[key], b[key], **TOL, msg=key)
            else:
                assert a[key] == b[key], key
    scores = [[row["step"], row["score"]] for row in csv.DictReader(
        (pack_dir / "eval.csv").read_text().splitlines())]
    expected = [[row["step"], row["score"]] for row in csv.DictReader(
        (single_dir / "eval.csv").read_text().splitlines())]
    assert scores == expected
    mine, theirs = load_checkpoint(pack_dir / "checkpoint.pt"), load_checkpoint(
        single_dir / "checkpoint.pt")
    for key in ("step", "env_steps", "episodes", "config"):
        assert mine[key] == theirs[key], key
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for name, value in theirs["agent"][net].items():
            torch.testing.assert_close(mine["agent"][net][name], value, **TOL)
    assert mine["agent"]["beta"] == pytest.approx(theirs["agent"]["beta"], rel=1e-5)
    assert torch.equal(mine["agent"]["generator"], theirs["agent"]["generator"])
    for key in ("index", "generator"):
        assert torch.equal(mine["buffer"][key], theirs["buffer"][key]), key
    for key, rows in theirs["buffer"]["rows"].items():
        torch.testing.assert_close(mine["buffer"]["rows"][key], rows, **TOL)
    assert (mine["episode"] is None) == (theirs["episode"] is None)
    summary = json.loads((pack_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["env_steps"] == 40
    assert [e["step"] for e in summary["evaluations"]] == [0, 40, 80]


def test_each_member_of_a_pack_writes_what_its_single_run_writes(tmp_path, task, dataset_dir):
    base = tiny_config(dataset_dir, **SCHEDULE)
    configs = [base, replace(base, seed=1),
               replace(base, seed=1, agent=replace(base.agent, alpha=100.0, noise_scale=0.3))]
    dirs = [tmp_path / f"pack{i}" for i in range(len(configs))]
    results = PackTrainer(configs, dirs, task=task).run()
    assert [r.status for r in results] == ["done"] * 3
    for i, config in enumerate(configs):
        Trainer(config, tmp_path / f"single{i}", task=task).run()
        _assert_same_run(dirs[i], tmp_path / f"single{i}")
        assert RunConfig.from_dict(json.loads((dirs[i] / "config.json").read_text())) == config
        events = (dirs[i] / "events.log").read_text()
        assert "started" in events and "finished" in events
    assert records(dirs[1]) != records(dirs[2])  # the alpha/noise pair really differ


def test_runs_that_differ_in_a_network_size_are_refused_by_name(tmp_path, dataset_dir):
    base = tiny_config(dataset_dir)
    wider = replace(base, seed=1, agent=replace(base.agent, value_hidden_dims=(64, 64)))
    with pytest.raises(PackError, match="value_hidden_dims"):
        PackTrainer([base, wider], [tmp_path / "a", tmp_path / "b"])
    longer = replace(base, seed=1, train=replace(base.train, online_steps=80))
    with pytest.raises(PackError, match=r"train\.online_steps"):
        PackTrainer([base, longer], [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists()  # refused before anything is written


def test_a_diverged_member_stops_alone_and_the_others_finish(tmp_path, task, dataset_dir):
    base = tiny_config(dataset_dir, **SCHEDULE)
    configs = [base, replace(base, seed=1)]
    dirs = [tmp_path / "good", tmp_path / "bad"]
    pack = PackTrainer(configs, dirs, task=task)
    with torch.no_grad():
        pack.agent._member_rows(next(pack.agent.critic.parameters()), 1).fill_(float("nan"))
    good_result, bad_result = pack.run()
    single = Trainer(configs[1], tmp_path / "single_bad", task=task)
    with torch.no_grad():
        next(single.agent.critic.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged) as single_error:
        single.run()
    assert isinstance(bad_result, TrainingDiverged)
    assert str(bad_result) == str(single_error.value).replace(str(single.run_dir), str(dirs[1]))
    assert "diverged" in (dirs[1] / "events.log").read_text()
    assert not (dirs[1] / "summary.json").exists()  # as a single diverged run leaves it
    assert not (dirs[1] / "checkpoint.pt").exists()
    assert good_result.status == "done"
    Trainer(base, tmp_path / "single_good", task=task).run()
    _assert_same_run(dirs[0], tmp_path / "single_good")


@pytest.mark.parametrize("balanced", [False, True])
def test_a_shared_offline_members_state_is_the_single_buffers_state(balanced):
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(50, 3)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(50, 2)).astype(np.float32),
            "rewards": np.arange(50, dtype=np.float32),
            "next_observations": rng.normal(size=(50, 3)).astype(np.float32),
            "masks": np.ones(50, dtype=np.float32)}
    shared = SharedOfflineReplay(dataset_rows(data), capacity=70, balanced=balanced, seed=3)
    single = ReplayBuffer(data, capacity=70, balanced=balanced, seed=3)
    for step in range(90):  # past 20 online rows: the offline rows start to go
        row = (np.full(3, step), np.zeros(2), float(step), np.ones(3), step % 7 == 0)
        shared.add(*row)
        single.add(*row)
        shared.sample(4)
        single.sample(4)
        if step in (0, 18, 19, 20, 89):
            mine, theirs = shared.state_dict(), single.state_dict()
            for key, value in theirs.items():
                if key == "rows":
                    for field, rows in value.items():
                        assert torch.equal(mine["rows"][field], rows), (step, field)
                elif isinstance(value, torch.Tensor):
                    assert torch.equal(mine[key], value), (step, key)
                else:
                    assert mine[key] == value, (step, key)
            # A single run's state loads into a fresh member, which then samples and adds
            # rows exactly as the single buffer does.
            restored = SharedOfflineReplay(dataset_rows(data), capacity=70, balanced=balanced,
                                           seed=99)
            restored.load_state_dict(theirs)
            copy = ReplayBuffer(data, capacity=70, balanced=balanced, seed=99)
            copy.load_state_dict(theirs)
            for extra in range(25):
                row = (np.full(3, -extra), np.ones(2), -1.0, np.zeros(3), False)
                restored.add(*row)
                copy.add(*row)
                a, b = restored.sample(6), copy.sample(6)
                for field in ("observations", "actions", "rewards", "next_observations",
                              "terminated"):
                    assert torch.equal(getattr(a, field), getattr(b, field)), (step, extra)


class _Fence:
    """A member's lease as the pack sees it: lost, or asked to stop."""

    def __init__(self):
        self.lost, self.cancel_requested = None, False

    def confirm(self):
        if self.lost:
            raise RunDisowned(self.lost)


def test_a_stopped_pack_resumes_exactly_and_a_member_resumes_alone_as_its_single_run(
        tmp_path, task, dataset_dir):
    base = tiny_config(dataset_dir, **{**SCHEDULE, "save_interval": 10})
    configs = [base, replace(base, seed=1, agent=replace(base.agent, noise_scale=0.2))]
    straight = [tmp_path / "a0", tmp_path / "a1"]
    PackTrainer(configs, straight, task=task).run()
    stopped = [tmp_path / "b0", tmp_path / "b1"]
    holder = {}
    stopper = AtStep(55, lambda: holder["pack"].request_stop())  # stops at the log step 60
    holder["pack"] = PackTrainer(configs, stopped, task=task, sinks_per_member=[[stopper], []])
    results = holder["pack"].run()
    assert [r.status for r in results] == ["interrupted"] * 2
    saved = load_checkpoint(stopped[1] / "checkpoint.pt")
    assert saved["step"] == 60 and saved["episode"]["length"] == 20  # mid online episode
    shutil.copytree(stopped[1], tmp_path / "alone")
    resumed = PackTrainer(configs, stopped, task=task, resume=True, env_processes=2).run()
    assert [r.status for r in resumed] == ["done"] * 2
    for b, a in zip(stopped, straight, strict=True):
        assert _comparable(b) == _comparable(a)
        assert "resumed" in (b / "events.log").read_text()
    # The member's checkpoint is a single run's: it resumes alone and ends as its single run.
    Trainer(configs[1], tmp_path / "alone", task=task, resume=True).run()
    Trainer(configs[1], tmp_path / "single", task=task).run()
    _assert_same_run(tmp_path / "alone", tmp_path / "single")


def test_a_member_asked_to_stop_or_disowned_leaves_alone(tmp_path, task, dataset_dir):
    base = tiny_config(dataset_dir, **SCHEDULE)
    configs = [base, replace(base, seed=1), replace(base, seed=2)]
    dirs = [tmp_path / f"m{i}" for i in range(3)]
    fences = [_Fence(), _Fence(), _Fence()]

    def cancel_and_reclaim():
        fences[1].cancel_requested = True
        fences[2].lost = "run 3 was claimed again by another attempt"

    sink = AtStep(50, cancel_and_reclaim)
    done, cancelled, disowned = PackTrainer(configs, dirs, task=task, fences=fences,
                                            sinks_per_member=[[sink], [], []]).run()
    assert done.status == "done"
    assert cancelled.status == "interrupted" and cancelled.step == 50
    assert load_checkpoint(dirs[1] / "checkpoint.pt")["step"] == 50
    assert isinstance(disowned, RunDisowned)
    assert load_checkpoint(dirs[2] / "checkpoint.pt")["step"] == 40  # nothing saved since
    assert not (dirs[2] / "summary.json").exists()
    Trainer(base, tmp_path / "single", task=task).run()
    _assert_same_run(dirs[0], tmp_path / "single")


def test_members_at_different_steps_are_not_resumed_as_one_pack(tmp_path, task, dataset_dir):
    base = tiny_config(dataset_dir, **SCHEDULE)
    configs = [base, replace(base, seed=1)]
    PackTrainer(configs, [tmp_path / "a", tmp_path / "b"], task=task).run()
    assert resume_step(tmp_path / "a") == 80 and resume_step(tmp_path / "c") == 0
    with pytest.raises(PackError, match=r"different steps \(a: 80, c: 0\)"):
        PackTrainer(configs, [tmp_path / "a", tmp_path / "c"], task=task, resume=True)


def test_envs_stepped_in_worker_processes_change_no_number(tmp_path, task, dataset_dir):
    base = tiny_config(dataset_dir, **SCHEDULE)
    configs = [base, replace(base, seed=1), replace(base, seed=2)]
    serial = [tmp_path / f"s{i}" for i in range(3)]
    pooled = [tmp_path / f"p{i}" for i in range(3)]
    PackTrainer(configs, serial, task=task).run()
    trainer = PackTrainer(configs, pooled, task=task, env_processes=2)
    assert trainer.env_pool is not None and trainer.env_pool.processes == 2
    assert all(isinstance(env, PooledEnv) for m in trainer.members
               for env in [m.online.env, *m.eval_envs])  # evaluation episodes step there too
    trainer.run()
    for s, p in zip(serial, pooled, strict=True):
        assert _comparable(p) == _comparable(s)
