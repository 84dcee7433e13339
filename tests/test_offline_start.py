"""Sharing an offline phase: an online variant started from another run's end-of-offline
checkpoint continues exactly as it does after training that offline phase itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fino.algo.config import ConfigError
from fino.backends.base import TaskConfig
from fino.cli.main import app
from fino.store.db import Store
from fino.store.queue import add_runs, get_run
from fino.train.checkpoint import load_checkpoint
from fino.train.offline_start import offline_difference
from fino.train.pack_trainer import PackTrainer
from fino.train.presets import build_run_config
from fino.train.trainer import Trainer
from tests.conftest import TASK
from tests.test_trainer import records, tiny_config

SCHEDULE = dict(offline_steps=40, online_steps=40, eval_interval=20, entropy_interval=20,
                log_interval=10, save_interval=40)
TIMING = ("time", "eval/seconds")


def _after(run_dir: Path, step: int) -> list[dict]:
    """The records of the online phase, and the evaluation at its start."""
    return [{k: v for k, v in r.items()
             if k not in TIMING and not k.startswith(("time/", "system/"))}
            for r in records(run_dir)
            if r["step"] > step or (r["step"] == step and "eval/score" in r)]


def _variant(source):
    """What FINO with balanced sampling and other online settings is to FINO: the same offline
    phase, another online phase."""
    return replace(source, agent=replace(source.agent, num_candidates=2, beta_init=5.0,
                                         entropy_samples=8),
                   train=replace(source.train, balanced=True, eval_interval=40))


def test_an_online_variant_started_from_a_shared_offline_phase_continues_as_alone(
        tmp_path, task, dataset_dir):
    source = tiny_config(dataset_dir, **SCHEDULE)
    Trainer(source, tmp_path / "source", task=task).run()
    offline = tmp_path / "source" / "offline.pt"
    assert load_checkpoint(offline)["step"] == 40
    variant = _variant(source)
    alone = Trainer(variant, tmp_path / "alone", task=task).run()
    shared = Trainer(replace(variant, from_offline=str(offline)), tmp_path / "shared",
                     task=task).run()
    assert _after(tmp_path / "shared", 40) == _after(tmp_path / "alone", 40)
    assert (shared.offline_score, shared.final_score) == (alone.offline_score, alone.final_score)
    mine, theirs = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in
                    ("shared", "alone"))
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for name, value in theirs["agent"][net].items():
            assert torch.equal(mine["agent"][net][name], value), (net, name)
    assert "online phase from the offline phase" in (tmp_path / "shared" / "events.log").read_text()
    # A pack of such members starts there too, each member as its single run.
    packed = [tmp_path / "p0", tmp_path / "p1"]
    results = PackTrainer([replace(variant, from_offline=str(offline))] * 1 +
                          [replace(variant, seed=0, from_offline=str(offline),
                                   agent=replace(variant.agent, noise_scale=0.1))],
                          packed, task=task).run()
    assert [r.status for r in results] == ["done", "done"]
    for got, want in zip(_after(packed[0], 40), _after(tmp_path / "alone", 40), strict=True):
        assert sorted(got) == sorted(want)
        for key, value in want.items():
            if isinstance(value, float):
                torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-5, msg=key)


def test_a_different_offline_phase_or_a_missing_checkpoint_is_refused_by_name(
        tmp_path, task, dataset_dir):
    source = tiny_config(dataset_dir, **SCHEDULE)
    assert offline_difference(source.to_dict(), _variant(source).to_dict()) is None
    other = replace(source, agent=replace(source.agent, alpha=30.0))
    assert offline_difference(source.to_dict(), other.to_dict())[0] == "agent.alpha"
    with pytest.raises(ConfigError, match="no end-of-offline checkpoint"):
        Trainer(replace(source, from_offline=str(tmp_path / "none" / "offline.pt")),
                tmp_path / "run", task=task)
    Trainer(source, tmp_path / "source", task=task).run()
    with pytest.raises(ConfigError, match=r"agent\.alpha is 300\.0 there and 30\.0 here"):
        Trainer(replace(other, from_offline=str(tmp_path / "source" / "offline.pt")),
                tmp_path / "run2", task=task)


SETS = ["train.offline_steps=40", "train.online_steps=40", "train.eval_interval=20",
        "train.eval_episodes=2", "train.eval_envs=2", "train.compile=false",
        "train.save_interval=40", "train.log_interval=10", "train.entropy_interval=20",
        "agent.actor_hidden_dims=[32, 32]", "agent.value_hidden_dims=[32, 32]",
        "agent.batch_size=32", "agent.entropy_samples=16", "agent.entropy_states=8",
        "task.options={max_episode_steps=40}"]


def test_queue_add_from_offline_checks_before_queueing(tmp_path, task, dataset_dir):
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    source = build_run_config(TaskConfig(TASK, backend="ogbench", dataset_dir=str(dataset_dir)),
                              overrides=SETS)
    [source_id] = add_runs(store, [source], runs_dir=tmp_path / "runs")
    source_dir = Path(get_run(store, source_id).run_dir)

    def add(*extra: str):
        command = ["queue", "add", "--task", TASK, "--backend", "ogbench", "--dataset-dir",
                   str(dataset_dir), "--db", store.url, "--from-offline", str(source_id)]
        for item in [*SETS, *extra]:
            command += ["--set", item]
        return CliRunner().invoke(app, command)

    result = add("agent.num_candidates=2", "train.balanced=true")
    assert result.exit_code == 1 and "no end-of-offline checkpoint" in result.output
    Trainer(source, source_dir, task=task).run()
    result = add("agent.alpha=30")
    assert result.exit_code == 1 and "trained another offline phase" in result.output
    assert "agent.alpha" in result.output
    result = add("agent.num_candidates=2", "train.balanced=true")
    assert result.exit_code == 0, result.output
    new = get_run(store, int(result.output.split()[-1]))
    assert new.config["from_offline"] == str(source_dir / "offline.pt")
    assert new.config["agent"]["num_candidates"] == 2
