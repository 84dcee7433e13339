"""`generate_dataset`: episodes in parallel processes, one seed per episode, an atomic write."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fino.backends.datagen.episode import Split, collect_episode
from fino.backends.datagen.recipes import (
    DEFAULT_DATASET_DIR,
    DatagenError,
    default_episodes,
    recipe_for,
)
from fino.backends.datagen.writer import dataset_paths, write_pair


@dataclass(frozen=True)
class GenerationProgress:
    """Where a generation stands; `steps` are raw env steps (rows of the files)."""

    dataset: str
    episodes_done: int
    episodes_total: int
    steps_done: int
    steps_total: int


ProgressCallback = Callable[[GenerationProgress], None]


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def val_episodes(episodes: int) -> int:
    """The published sets add a tenth of the train episodes as validation; at least one here."""
    return max(1, episodes // 10)


def generate_dataset(
    name: str,
    *,
    episodes: int | None = None,
    out_dir: str | Path = DEFAULT_DATASET_DIR,
    seed: int = 0,
    workers: int | None = None,
    episode_length: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Collect `episodes` train episodes (+ a tenth as val) with OGBench's recipe for `name`
    (a dataset or task name) and write `<out_dir>/<dataset>.npz` and `-val.npz`.

    Episode i of each split draws only from seeds derived from (seed, split, i), so the files
    are identical for any `workers`. Returns [train path, val path].
    """
    recipe = recipe_for(name)
    episodes = default_episodes(recipe) if episodes is None else episodes
    length = recipe.episode_length if episode_length is None else episode_length
    workers = default_workers() if workers is None else workers
    if episodes < 1:
        raise DatagenError(f"episodes={episodes}: must be at least 1")
    if length < 2:
        raise DatagenError(f"episode_length={length}: must be at least 2 (L steps give L - 1 "
                           f"transitions)")
    if workers < 1:
        raise DatagenError(f"workers={workers}: must be at least 1")

    out = Path(out_dir).expanduser()
    train_path, val_path = dataset_paths(out, recipe.dataset)
    existing = [str(p) for p in (train_path, val_path) if p.exists()]
    if existing and not overwrite:
        raise DatagenError(f"{' and '.join(existing)} already exist(s); use --force "
                           f"(overwrite=True) to replace")
    out.mkdir(parents=True, exist_ok=True)

    jobs: list[tuple[Split, int]] = [("train", i) for i in range(episodes)]
    jobs += [("val", i) for i in range(val_episodes(episodes))]
    report = _Reporter(recipe.dataset, len(jobs), len(jobs) * length, progress)
    results = _collect_all(recipe.dataset, length, seed, jobs, workers, report)
    write_pair(train_path, val_path, _concatenate(results[:episodes]),
               _concatenate(results[episodes:]))
    return [train_path, val_path]


class _Reporter:
    """Counts finished episodes and forwards the totals to the caller's callback."""

    def __init__(self, dataset: str, episodes: int, steps: int,
                 callback: ProgressCallback | None) -> None:
        self.state = GenerationProgress(dataset, 0, episodes, 0, steps)
        self.callback = callback
        self._emit()

    def episode_done(self, steps: int) -> None:
        s = self.state
        self.state = GenerationProgress(s.dataset, s.episodes_done + 1, s.episodes_total,
                                        s.steps_done + steps, s.steps_total)
        self._emit()

    def _emit(self) -> None:
        if self.callback is not None:
            self.callback(self.state)


def _quiet_worker() -> None:
    """Worker start-up: one BLAS thread per process (the processes already fill the cores),
    and no import-time chatter (GLFW without a display, gymnasium's Box precision notes)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    warnings.simplefilter("ignore", UserWarning)


def _collect_all(dataset: str, length: int, seed: int, jobs: list[tuple[Split, int]],
                 workers: int, report: _Reporter) -> list[dict[str, np.ndarray]]:
    results: list[dict[str, np.ndarray]] = [{} for _ in jobs]
    if workers == 1:  # in this process: no start-up cost, easy to debug
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for i, (split, index) in enumerate(jobs):
                results[i] = collect_episode(dataset, length, seed, split, index)
                report.episode_done(len(results[i]["terminals"]))
        return results

    # spawn, not fork: the parent may hold torch / OpenMP threads that a fork would copy broken.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_quiet_worker) as pool:
        futures = {pool.submit(collect_episode, dataset, length, seed, split, index): i
                   for i, (split, index) in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                report.episode_done(len(results[i]["terminals"]))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # don't run the queued episodes
            raise
    return results


def _concatenate(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([e[key] for e in episodes]) for key in episodes[0]}
