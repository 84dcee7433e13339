"""Real small runs for queue and worker tests: Pendulum with a random-action dataset (no
MuJoCo, a few seconds per run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np

from fino.backends.base import TaskConfig
from fino.store.db import Store
from fino.store.queue import add_runs
from fino.train.presets import build_run_config


def pendulum_npz(path: Path, n: int = 600) -> Path:
    env = gymnasium.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards",
                                             "next_observations", "terminals")}
    obs, _ = env.reset(seed=0)
    for _ in range(n):
        action = rng.uniform(-2, 2, size=1).astype(np.float32)
        nxt, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(rows, (obs, action, reward, nxt, terminated or truncated),
                              strict=True):
            rows[key].append(value)
        obs = nxt if not (terminated or truncated) else env.reset()[0]
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in rows.items()},
             masks=np.ones(n, np.float32))
    return path


def tiny_sets(offline: int = 30, online: int = 30, save: int = 10, log: int = 10) -> list[str]:
    return [f"train.offline_steps={offline}", f"train.online_steps={online}",
            f"train.eval_interval={offline + online}", "train.eval_episodes=1",
            "train.eval_envs=1", "train.compile=false", f"train.save_interval={save}",
            f"train.log_interval={log}", "train.threads=1",
            "agent.actor_hidden_dims=[16]", "agent.value_hidden_dims=[16]",
            "agent.batch_size=16", "agent.entropy_samples=8", "agent.entropy_states=4",
            "task.options={max_episode_steps=20}"]


def queue_pendulum(store: Store, dataset: Path, runs_dir: Path, seeds: range,
                   sets: list[str] | None = None, **kwargs) -> list[int]:
    configs = [build_run_config(TaskConfig("Pendulum-v1", backend="gymnasium",
                                           dataset=str(dataset)),
                                seed=seed, overrides=sets or tiny_sets()) for seed in seeds]
    return add_runs(store, configs, runs_dir=runs_dir, **kwargs)


def start_worker(url: str, *args: str, cwd: Path) -> subprocess.Popen:
    """A real `fino worker` process."""
    env = {**os.environ, "FINO_DB_URL": url}
    return subprocess.Popen([sys.executable, "-m", "fino.cli.main", "worker", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
