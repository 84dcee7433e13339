"""Any registered Gymnasium env with an offline dataset: an OGBench-format .npz or a Minari id.

The .npz holds `observations`, `actions`, `terminals` (1 at each episode's end), `rewards` and
`masks` (1 - terminated), plus either `next_observations` (one transition per row) or none, in
which case rows follow OGBench's layout: each episode's final state is a row of its own with
`terminals = 1` and transitions pair consecutive rows. Observations must already be the flat
vectors that `spaces.flatten_one` makes of the env's observations; actions are in env units.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from fino.backends.base import (
    NPZ_READ_ERRORS,
    Dataset,
    DatasetMissingError,
    Task,
    TaskConfig,
    TaskError,
    TaskSpec,
    error_text,
    validate_dataset,
)
from fino.backends.minari import (
    canonical_id,
    check_options,
    episode_length,
    is_minari_id,
    minari_transitions,
    missing_dataset,
    open_dataset,
    reward_mapping,
    scoring,
)
from fino.backends.spaces import check_action_space, flat_dim, layout, to_unit_actions, wrap_env

OPTIONS = ("reward_shift", "reward_scale", "ref_min_score", "ref_max_score",
           "max_episode_steps")
# Packages that register their envs on import; tried when an id is not yet registered. The
# extra that installs each one, where it is optional.
ENV_PACKAGES = ("gymnasium_robotics", "ogbench")
ENV_EXTRAS = {"gymnasium_robotics": "d4rl"}
REQUIRED_KEYS = ("observations", "actions", "terminals", "rewards", "masks")


def find_env_spec(env_id: str) -> gymnasium.envs.registration.EnvSpec:
    """The registered spec for `env_id` (also `module:Id`); TaskError naming an unknown id."""
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise TaskError(f"env id {env_id!r}: cannot import {module!r} ({e})") from e
    try:
        return gymnasium.spec(name)
    except gymnasium.error.Error:
        pass
    missing = []
    for package in ENV_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    try:
        return gymnasium.spec(name)
    except gymnasium.error.Error as e:
        installs = "".join(f"; {p} is not installed (pip install 'fino[{ENV_EXTRAS[p]}]')"
                           for p in missing if p in ENV_EXTRAS)
        raise TaskError(f"unknown gymnasium env id {env_id!r}: {e} (also looked after importing "
                        f"{', '.join(ENV_PACKAGES)}; for another package's env write "
                        f"'module:EnvId'{installs})") from e


# A user's own file: we cannot say how it was made, only that it must be made again.
_REWRITE = "the file is corrupt or incomplete: delete it and write or copy it again"


def _array(file: Any, key: str, path: Path) -> np.ndarray:
    """One array read in full (a damaged compressed member fails only here)."""
    try:
        return np.asarray(file[key])
    except NPZ_READ_ERRORS as e:
        raise TaskError(f"{path}: cannot read array {key!r} ({error_text(e)}); "
                        f"{_REWRITE}") from e


def load_npz_transitions(path: Path) -> Dataset:
    """Transitions from an OGBench-format .npz (see the module docstring); actions unscaled."""
    if not path.is_file():
        raise DatasetMissingError(f"dataset file {path} does not exist")
    try:
        file = np.load(path, allow_pickle=False)
    except NPZ_READ_ERRORS as e:
        raise TaskError(f"{path}: not a readable .npz archive ({error_text(e)}); "
                        f"{_REWRITE}") from e
    if not isinstance(file, np.lib.npyio.NpzFile):
        raise TaskError(f"{path}: holds a single array, not an .npz archive of named arrays")
    with file:
        missing = [k for k in REQUIRED_KEYS if k not in file.files]
        if missing:
            raise TaskError(
                f"{path}: lacks {missing} (has {sorted(file.files)}). The gymnasium backend "
                f"needs {list(REQUIRED_KEYS)} (+ optional next_observations): rewards and "
                "masks (1 - terminated) cannot be derived for an arbitrary env; for OGBench "
                "datasets without them use the 'ogbench' backend, which relabels them.")
        data = {k: _array(file, k, path) for k in (*REQUIRED_KEYS, "next_observations")
                if k in file.files}
    for key in ("terminals", "rewards", "masks"):
        column = data[key].astype(np.float32)
        data[key] = column[:, 0] if column.ndim == 2 and column.shape[1] == 1 else column
    for key in ("observations", "next_observations", "actions"):
        if key in data:
            data[key] = data[key].astype(np.float32, copy=False)
    if "next_observations" in data:
        return data
    return _pair_consecutive_rows(data, path)


def _pair_consecutive_rows(data: Dataset, path: Path) -> Dataset:
    """OGBench's regular layout: drop each episode's final-state row (terminals = 1) and take
    next_observations from the following row; terminals move to each episode's last step."""
    terminals = data["terminals"]
    lengths = {k: len(v) for k, v in data.items()}
    if len(set(lengths.values())) != 1:
        raise TaskError(f"{path}: arrays differ in length: {lengths}")
    if len(terminals) == 0 or terminals[-1] != 1:
        raise TaskError(f"{path}: without next_observations the last row must end an episode "
                        "(terminals[-1] = 1, OGBench's layout)")
    keep = terminals == 0
    is_next = np.concatenate([[False], keep[:-1]])
    out = {k: data[k][keep] for k in ("observations", "actions", "rewards", "masks")}
    out["next_observations"] = data["observations"][is_next]
    out["terminals"] = np.concatenate([terminals[1:], [1.0]])[keep].astype(np.float32)
    return out


def _make_env(spec: gymnasium.envs.registration.EnvSpec, env_kwargs: Mapping[str, Any]
              ) -> gymnasium.Env:
    return wrap_env(gymnasium.make(spec, **env_kwargs))


class GymnasiumBackend:
    """A Gymnasium env id plus a dataset (`TaskConfig.dataset`); chosen explicitly, never auto."""

    name = "gymnasium"

    def owns(self, task_name: str) -> bool:
        return False

    def canonical_name(self, config: TaskConfig) -> str:
        check_options(config.options, OPTIONS, self.name)
        if not config.dataset:
            raise TaskError(f"gymnasium backend: task {config.name!r} needs a dataset: an "
                            "OGBench-format .npz path or a Minari id (--dataset)")
        return find_env_spec(config.name).id

    def missing_dataset(self, config: TaskConfig) -> str | None:
        """Why the task's dataset (a file or a Minari id) is not here, or None; reads nothing."""
        self.canonical_name(config)
        source = str(config.dataset)
        path = Path(source).expanduser()
        if source.endswith(".npz") or path.exists():
            return None if path.is_file() else f"dataset file {path} does not exist"
        if not is_minari_id(source):
            return f"dataset {source!r}: no such file, and not a Minari id (namespace/name-vN)"
        return missing_dataset(canonical_id(source))

    def load(self, config: TaskConfig) -> Task:
        self.canonical_name(config)
        options, source = config.options, str(config.dataset)
        spec = find_env_spec(config.name)
        env_kwargs = ({"max_episode_steps": options["max_episode_steps"]}
                      if "max_episode_steps" in options else {})
        env = gymnasium.make(spec, **env_kwargs)
        try:
            action_space = check_action_space(env.action_space, spec.id)
            length = episode_length(env, spec.id)
            raw, dataset_id = self._read_dataset(source, env)
        finally:
            env.close()
        if dataset_id is None:  # .npz actions are in env units, Minari's are already mapped
            raw["actions"] = to_unit_actions(raw["actions"], action_space)
        scale, shift = reward_mapping(options, dataset_id or "")
        raw["rewards"] = np.asarray(raw["rewards"], np.float32) * scale + shift
        train = validate_dataset(raw, source)
        self._check_dims(train, env, source)

        score_name, score_episode = scoring(options.get("ref_min_score"),
                                            options.get("ref_max_score"))
        task_spec = TaskSpec(name=spec.id, backend=self.name,
                             obs_dim=train["observations"].shape[1],
                             action_dim=train["actions"].shape[1], episode_length=length,
                             score_name=score_name)
        make_env = partial(_make_env, spec, env_kwargs)
        return Task(spec=task_spec, train_dataset=train, val_dataset=None, make_env=make_env,
                    make_eval_env=make_env, score_episode=score_episode, reward_scale=scale,
                    reward_shift=shift)

    @staticmethod
    def _read_dataset(source: str, env: gymnasium.Env) -> tuple[Dataset, str | None]:
        """(raw transitions, Minari id or None for a file)."""
        path = Path(source).expanduser()
        if source.endswith(".npz") or path.exists():
            return load_npz_transitions(path), None
        if not is_minari_id(source):
            raise DatasetMissingError(f"dataset {source!r}: no such file, and not a Minari id "
                                      "(namespace/name-vN)")
        dataset_id = canonical_id(source)
        dataset = open_dataset(dataset_id)
        if layout(dataset.observation_space) != layout(env.observation_space):
            raise TaskError(f"{source}: dataset observations {layout(dataset.observation_space)}"
                            f" do not match the env's {layout(env.observation_space)}")
        return minari_transitions(dataset), dataset_id

    @staticmethod
    def _check_dims(train: Dataset, env: gymnasium.Env, source: str) -> None:
        obs_dim, action_dim = train["observations"].shape[1], train["actions"].shape[1]
        env_obs = flat_dim(env.observation_space)
        env_actions = int(np.prod(env.action_space.shape))
        if (obs_dim, action_dim) != (env_obs, env_actions):
            raise TaskError(f"{source}: dataset has (obs, action) dims {(obs_dim, action_dim)}, "
                            f"the env {env.spec.id if env.spec else env} has "
                            f"{(env_obs, env_actions)}")
