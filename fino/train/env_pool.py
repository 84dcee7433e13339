"""Envs stepped in parallel in worker processes: a pack's members' online envs, one per member,
spread over up to one process per core. Each env lives in one process and sees exactly the
resets and actions it would see in the trainer's process, so results do not change.

Hand-written rather than gymnasium's AsyncVectorEnv: members reset at their own times with their
own seeds, members that left the pack must not be stepped, and an episode in progress is
replayed step by step on resume; a vector env steps every env at once.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

StepResult = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


def _serve(make_env: Callable[[], Any], count: int, connection: Connection) -> None:
    """A worker process: `count` envs, commands until the trainer closes its end."""
    envs = [make_env() for _ in range(count)]
    try:
        while True:
            try:
                command, payload = connection.recv()
            except EOFError:  # the trainer's process is gone
                return
            if command == "reset":
                index, seed = payload
                connection.send(envs[index].reset(seed=seed))
            elif command == "step":
                connection.send([(i, envs[i].step(action)) for i, action in payload])
            elif command == "close":
                return
    finally:
        for env in envs:
            env.close()


class EnvPool:
    """`count` envs made by `make_env` (picklable) in up to `processes` worker processes;
    env i lives in process i % processes."""

    def __init__(self, make_env: Callable[[], Any], count: int, processes: int) -> None:
        context = mp.get_context("spawn")  # no fork of a process holding torch's threads
        self.processes = max(1, min(processes, count))
        self.count = count
        self._connections: list[Connection] = []
        self._workers = []
        for p in range(self.processes):
            mine, theirs = context.Pipe()
            local = len(range(p, count, self.processes))
            worker = context.Process(target=_serve, args=(make_env, local, theirs),
                                     name=f"fino-envs-{p}", daemon=True)
            worker.start()
            theirs.close()
            self._connections.append(mine)
            self._workers.append(worker)

    def _where(self, index: int) -> tuple[Connection, int]:
        return self._connections[index % self.processes], index // self.processes

    def reset(self, index: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        connection, local = self._where(index)
        connection.send(("reset", (local, seed)))
        return connection.recv()

    def step_many(self, actions: dict[int, np.ndarray]) -> dict[int, StepResult]:
        """Step env i with actions[i] for every i given, all processes at once."""
        batches: dict[int, list[tuple[int, np.ndarray]]] = {}
        for index, action in actions.items():
            batches.setdefault(index % self.processes, []).append(
                (index // self.processes, action))
        for p, batch in batches.items():
            self._connections[p].send(("step", batch))
        results: dict[int, StepResult] = {}
        for p in batches:
            for local, result in self._connections[p].recv():
                results[local * self.processes + p] = result
        return results

    def env(self, index: int) -> PooledEnv:
        """Env `index` as an env object (one step at a time: resets and replays)."""
        return PooledEnv(self, index)

    def close(self) -> None:
        for connection in self._connections:
            try:
                connection.send(("close", None))
                connection.close()
            except OSError:
                pass
        for worker in self._workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()


class PooledEnv:
    """One env of a pool, with the gymnasium calls `OnlineEpisodes` makes."""

    def __init__(self, pool: EnvPool, index: int) -> None:
        self.pool, self.index = pool, index

    def reset(self, *, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        return self.pool.reset(self.index, seed)

    def step(self, action: np.ndarray) -> StepResult:
        return self.pool.step_many({self.index: action})[self.index]

    def close(self) -> None:
        """The pool closes its envs."""


def env_pool_for(make_env: Callable[[], Any], count: int, processes: int
                 ) -> EnvPool | None:
    """A pool when it is worth one (several envs, several processes) and the env factory can
    be sent to other processes; else None (the envs step in this process)."""
    import pickle

    if count < 2 or processes < 2:
        return None
    try:
        pickle.dumps(make_env)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    return EnvPool(make_env, count, processes)

