"""One episode as a unit of work: its seeds, its rows, and the worker-side entry point."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

Split = Literal["train", "val"]
_SPLIT_KEY = {"train": 0, "val": 1}

# OGBench's file dtypes (generate_*.py): everything float32 except these.
_DTYPES = {"terminals": np.bool_, "button_states": np.int64}


@dataclass(frozen=True)
class EpisodeSeeds:
    """Independent seeds for the three random streams an episode draws from."""

    global_seed: int  # legacy np.random: the oracles and the action noise use it
    env_seed: int  # env.reset(seed=...): initial scene, new targets
    space_seed: int  # env.action_space: noisy sets' random actions, maze reset steps

    @classmethod
    def derive(cls, seed: int, split: Split, index: int) -> EpisodeSeeds:
        """Seeds that depend only on (seed, split, episode index), not on which worker runs it."""
        state = np.random.SeedSequence(seed, spawn_key=(_SPLIT_KEY[split], index))
        return cls(*(int(s) for s in state.generate_state(3)))


class Rows:
    """Per-step records of one episode, turned into OGBench-typed arrays at the end."""

    def __init__(self) -> None:
        self._rows: defaultdict[str, list[Any]] = defaultdict(list)

    def add(self, **values: Any) -> None:
        for key, value in values.items():
            self._rows[key].append(value)

    def array(self, key: str) -> np.ndarray:
        return np.asarray(self._rows[key], dtype=_DTYPES.get(key, np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: self.array(key) for key in self._rows}


class Collector(Protocol):
    def collect(self, seeds: EpisodeSeeds) -> Rows: ...


_collectors: dict[tuple[str, int], Collector] = {}  # per process: envs are reused across episodes


def _collector(dataset: str, episode_length: int) -> Collector:
    key = (dataset, episode_length)
    if key not in _collectors:
        from fino.backends.datagen.recipes import RECIPES

        recipe = RECIPES[dataset]
        if recipe.family == "pointmaze":
            from fino.backends.datagen.pointmaze import PointmazeCollector as cls
        else:
            from fino.backends.datagen.manipspace import ManipspaceCollector as cls
        _collectors[key] = cls(recipe, episode_length)
    return _collectors[key]


def collect_episode(dataset: str, episode_length: int, seed: int, split: Split,
                    index: int) -> dict[str, np.ndarray]:
    """Collect one episode; picklable, so a process pool can run it."""
    collector = _collector(dataset, episode_length)
    seeds = EpisodeSeeds.derive(seed, split, index)
    saved = np.random.get_state()  # the oracles use the global stream; leave the caller's alone
    np.random.seed(seeds.global_seed)
    try:
        return collector.collect(seeds).arrays()
    finally:
        np.random.set_state(saved)
