"""What a backend gives the trainer: a `Task` (envs, offline data, score) for a `TaskConfig`."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

# TaskConfig and TaskError live in the leaf `fino.config` (no environment library); re-exported.
from fino.config import TaskConfig, TaskError

if TYPE_CHECKING:
    import gymnasium

__all__ = ["DATASET_KEYS", "NPZ_READ_ERRORS", "Backend", "Dataset", "DatasetMissingError",
           "Task", "TaskConfig", "TaskError", "TaskSpec", "error_text", "npz_problem",
           "validate_dataset"]

Dataset = dict[str, np.ndarray]
"""Offline transitions: observations, actions, rewards, terminals, masks, next_observations."""

DATASET_KEYS = ("observations", "actions", "rewards", "terminals", "masks", "next_observations")

NPZ_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
"""What numpy raises for a corrupt, truncated or crafted .npz: a damaged member fails only when
its array is read (zlib.error, BadZipFile's CRC check); object arrays are refused (ValueError)."""


class DatasetMissingError(TaskError, FileNotFoundError):
    """The task's offline dataset is not on disk; the message names the file and the fetch."""


@dataclass(frozen=True)
class TaskSpec:
    """A task's metadata."""

    name: str  # canonical name (e.g. cube-single-play-singletask-task2-v0, D4RL/pen/cloned-v2)
    backend: str
    obs_dim: int
    action_dim: int
    episode_length: int  # the env's time limit
    score_name: Literal["success", "normalized_score", "return"]  # success rate in %, D4RL x100


@dataclass
class Task:
    """Everything the trainer needs from a backend.

    `make_env` / `make_eval_env` build fresh envs whose observations match the dataset's layout
    (flat float vectors) and whose rewards are the raw env rewards; `reward_scale` and
    `reward_shift` map raw rewards to training rewards (`r * scale + shift`, e.g. antmaze - 1)
    and are already applied to the datasets. `score_episode(raw_return, final_info)` gives one
    evaluation episode's score (100 x success, or the normalised return x 100).
    """

    spec: TaskSpec
    train_dataset: Dataset
    val_dataset: Dataset | None
    make_env: Callable[[], gymnasium.Env]
    make_eval_env: Callable[[], gymnasium.Env]
    score_episode: Callable[[float, Mapping[str, Any]], float]
    reward_scale: float = 1.0
    reward_shift: float = 0.0

    def training_reward(self, raw_reward: float) -> float:
        return raw_reward * self.reward_scale + self.reward_shift


class Backend(Protocol):
    """A source of tasks, registered under the entry-point group `fino.backends`. Optionally
    `missing_dataset(config) -> str | None`: why the task's dataset is not on this machine and
    how to get it, from file checks alone (what `fino queue add` asks before queueing)."""

    name: str

    def owns(self, task_name: str) -> bool:
        """Whether this backend recognises the name (used when the backend is `auto`)."""

    def canonical_name(self, config: TaskConfig) -> str:
        """The full task name (aliases resolved); raises TaskError for an unknown task.
        Cheap: no env is built and no dataset read, so configs can be validated up front."""

    def load(self, config: TaskConfig) -> Task:
        """Build the envs and load the offline datasets; DatasetMissingError when absent."""


def validate_dataset(dataset: Mapping[str, np.ndarray], source: str) -> Dataset:
    """Check a backend's arrays: all keys present, equal lengths, finite, 2-d obs/actions."""
    missing = [k for k in DATASET_KEYS if k not in dataset]
    if missing:
        raise TaskError(f"{source}: dataset lacks {missing} (has {sorted(dataset)})")
    out = {k: np.asarray(dataset[k]) for k in DATASET_KEYS}
    n = len(out["observations"])
    bad = {k: len(v) for k, v in out.items() if len(v) != n}
    if bad:
        raise TaskError(f"{source}: arrays differ in length from observations ({n}): {bad}")
    if n == 0:
        raise TaskError(f"{source}: dataset is empty")
    for k in ("observations", "actions", "next_observations"):
        if out[k].ndim != 2:
            raise TaskError(f"{source}: {k} has shape {out[k].shape}, expected (N, dim)")
    for k in ("observations", "actions", "rewards", "next_observations"):
        if not np.isfinite(out[k]).all():
            raise TaskError(f"{source}: {k} contains NaN or inf; the file is corrupt")
    return out


def error_text(exc: BaseException) -> str:
    """`Kind: message`, the kind qualified outside builtins (zlib.error, zipfile.BadZipFile)."""
    kind = type(exc)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"{name}: {exc}"


def npz_problem(path: Path, keys: Sequence[str] = ()) -> str | None:
    """Why `path` is not an .npz of plain arrays holding `keys`, or None; reads every array in
    full, so it costs a load: call it to name the bad file once loading has failed."""
    try:
        file = np.load(path, allow_pickle=False)
    except NPZ_READ_ERRORS as exc:
        return f"not a readable .npz archive ({error_text(exc)})"
    if not isinstance(file, np.lib.npyio.NpzFile):
        return "holds a single array, not an .npz archive of named arrays"
    with file:
        missing = [k for k in keys if k not in file.files]
        if missing:
            return f"lacks {missing} (has {sorted(file.files)})"
        for key in file.files:
            try:
                file[key]
            except NPZ_READ_ERRORS as exc:
                return f"cannot read array {key!r} ({error_text(exc)})"
    return None
