"""Envs stepped in parallel in worker processes: a pack's members' online envs (one per member)
and evaluation envs, spread over up to one process per core. Each env lives in one process and
sees exactly the resets and actions it would see in the trainer's process, so results do not
change.

Hand-written rather than gymnasium's AsyncVectorEnv: members reset at their own times with their
own seeds, members that left the pack must not be stepped, and an episode in progress is
replayed step by step on resume; a vector env steps every env at once.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

StepResult = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


def _serve(makers: list[Callable[[], Any]], connection: Connection) -> None:
    """A worker process: one env per maker, commands until the trainer closes its end."""
    envs = [make() for make in makers]
    try:
        while True:
            try:
                command, payload = connection.recv()
            except EOFError:  # the trainer's process is gone
                return
            if command == "reset":
                connection.send([(i, envs[i].reset(seed=seed)) for i, seed in payload])
            elif command == "step":
                connection.send([(i, envs[i].step(action)) for i, action in payload])
            elif command == "spaces":
                connection.send([(i, (envs[i].observation_space, envs[i].action_space))
                                 for i, _ in payload])
            elif command == "close":
                return
    finally:
        for env in envs:
            env.close()


class EnvPool:
    """One env per maker (each picklable) in up to `processes` worker processes; env i lives
    in process i % processes."""

    def __init__(self, makers: Sequence[Callable[[], Any]], processes: int) -> None:
        context = mp.get_context("spawn")  # no fork of a process holding torch's threads
        count = len(makers)
        self.processes = max(1, min(processes, count))
        self.count = count
        self._connections: list[Connection] = []
        self._workers = []
        for p in range(self.processes):
            mine, theirs = context.Pipe()
            local = list(makers[p::self.processes])
            worker = context.Process(target=_serve, args=(local, theirs),
                                     name=f"fino-envs-{p}", daemon=True)
            worker.start()
            theirs.close()
            self._connections.append(mine)
            self._workers.append(worker)

    def _where(self, index: int) -> tuple[Connection, int]:
        return self._connections[index % self.processes], index // self.processes

    def reset_many(self, seeds: dict[int, int]) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        """Reset env i with seed seeds[i] for every i given, all processes at once."""
        return self._all("reset", seeds)

    def step_many(self, actions: dict[int, np.ndarray]) -> dict[int, StepResult]:
        """Step env i with actions[i] for every i given, all processes at once."""
        return self._all("step", actions)

    def spaces(self, index: int) -> tuple[Any, Any]:
        """Env `index`'s observation and action spaces."""
        return self._all("spaces", {index: None})[index]

    def _all(self, command: str, payloads: dict[int, Any]) -> dict[int, Any]:
        batches: dict[int, list[tuple[int, Any]]] = {}
        for index, payload in payloads.items():
            batches.setdefault(index % self.processes, []).append(
                (index // self.processes, payload))
        for p, batch in batches.items():
            self._connections[p].send((command, batch))
        results: dict[int, Any] = {}
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
        self._spaces: tuple[Any, Any] | None = None

    @property
    def observation_space(self) -> Any:
        if self._spaces is None:
            self._spaces = self.pool.spaces(self.index)
        return self._spaces[0]

    @property
    def action_space(self) -> Any:
        if self._spaces is None:
            self._spaces = self.pool.spaces(self.index)
        return self._spaces[1]

    def reset(self, *, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        return self.pool.reset_many({self.index: seed})[self.index]

    def step(self, action: np.ndarray) -> StepResult:
        return self.pool.step_many({self.index: action})[self.index]

    def close(self) -> None:
        """The pool closes its envs."""


def step_envs(envs: Sequence[Any], actions: Sequence[np.ndarray]) -> list[StepResult]:
    """Step each env with its action: at once when all live in one pool, else in turn."""
    pool = _one_pool(envs)
    if pool is None:
        return [env.step(action) for env, action in zip(envs, actions, strict=True)]
    results = pool.step_many({env.index: a for env, a in zip(envs, actions, strict=True)})
    return [results[env.index] for env in envs]


def reset_envs(envs: Sequence[Any], seeds: Sequence[int]
               ) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Reset each env with its seed: at once when all live in one pool, else in turn."""
    pool = _one_pool(envs)
    if pool is None:
        return [env.reset(seed=seed) for env, seed in zip(envs, seeds, strict=True)]
    results = pool.reset_many({env.index: s for env, s in zip(envs, seeds, strict=True)})
    return [results[env.index] for env in envs]


def _one_pool(envs: Sequence[Any]) -> EnvPool | None:
    if envs and all(isinstance(env, PooledEnv) and env.pool is envs[0].pool for env in envs):
        return envs[0].pool
    return None


def env_pool_for(makers: Sequence[Callable[[], Any]], processes: int) -> EnvPool | None:
    """A pool when it is worth one (several envs, several processes) and the env factories
    can be sent to other processes; else None (the envs step in this process)."""
    import pickle

    if len(makers) < 2 or processes < 2:
        return None
    try:
        for make in set(makers):
            pickle.dumps(make)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    return EnvPool(makers, processes)

